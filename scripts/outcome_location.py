"""Where a task's outcome lives in the observations, and so what a world model must get right to rank the
policies that solve it. For each kind of input, a logistic readout is fitted on the training episodes of a
bench run (every policy not judged, each task apart) and applied to the judged policies' *real* episodes;
its within-task Spearman between the judged policies' mean readout and their true success says how much of
the ranking that input carries when it is exactly right. Inputs: the arm (proprio) over the episode, the
arm in the last frame, the actions over the episode, the last frame's pixels (16 x 16), the arm and the
pixels together. An input that ranks well alone is one whose imagined version the verdict can lean on; an
outcome that only the pixels carry must be rendered. On a store rendered from more cameras (`--store`, e.g.
`wmeval collect --views corner,topview` of the same policies), each view's pixels apart and all together:
which camera shows the outcome.

    python scripts/outcome_location.py runs/bench-cpu [--preset cpu] [--out docs/results/outcome_location.json]
    python scripts/outcome_location.py runs/bench-cpu --store runs/views --tasks button-press-topdown,window-open
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from wmeval.align.metrics import spearman
from wmeval.data.store import EpisodeStore, atomic_write_text
from wmeval.metrics import auroc
from wmeval.pipeline import make_config
from wmeval.zoo import matches_any

EVERY = 5  # frames between the samples of a trajectory input


def features(store: EpisodeStore, key: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per-episode inputs (name -> vector), and per-frame ones (name -> (T, D), plus "success": (T,))."""
    ep = store.load(key, verify=False)
    T = len(ep.proprio)
    idx = np.linspace(0, T - 1, max(2, T // EVERY)).round().astype(int)
    frames = torch.from_numpy(ep.frames.astype(np.float32) / 255).permute(0, 1, 4, 2, 3)  # T, V, 3, H, W
    every = F.adaptive_avg_pool2d(frames.flatten(0, 1), 16).reshape(T, len(store.layout.views), -1).numpy()  # T, V, 768
    pixels = every[-1]  # V, 768
    arm = ep.proprio[idx].ravel()
    per_frame = {"success": np.asarray(ep.success, float)}
    for v, name in enumerate(store.layout.views):
        at = "" if len(store.layout.views) == 1 else f" ({name})"
        per_frame[f"arm + pixels, every frame{at}"] = np.concatenate([ep.proprio, every[:, v]], axis=1)
    out = {
        "arm over the episode": arm,
        "arm, last frame": ep.proprio[-1],
        "actions over the episode": ep.actions[idx].reshape(len(idx), -1).ravel(),
    }
    views = store.layout.views
    for v, name in enumerate(views):
        at = "" if len(views) == 1 else f" ({name})"
        out[f"pixels, last frame{at}"] = pixels[v]
        out[f"arm + pixels, last frame{at}"] = np.concatenate([arm, pixels[v]])
    if len(views) > 1:
        out["arm + pixels, last frame (all views)"] = np.concatenate([arm, pixels.ravel()])
    return out, per_frame


def fit_predict(X: np.ndarray, y: np.ndarray, Xt: np.ndarray, l2: float = 1e-2) -> np.ndarray:
    """L2-regularised logistic regression on standardised features (L-BFGS); probabilities for Xt."""
    mu, sd = X.mean(0), X.std(0) + 1e-6
    Xs, Xts = torch.tensor((X - mu) / sd, dtype=torch.float64), torch.tensor((Xt - mu) / sd, dtype=torch.float64)
    yt = torch.tensor(y, dtype=torch.float64)
    w = torch.zeros(X.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=500, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(Xs @ w + b, yt) + l2 * (w @ w) / 2
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return torch.sigmoid(Xts @ w + b).numpy()


def ranking(judged: list, p: np.ndarray) -> tuple[float, float]:
    """(within-task Spearman of the policies' mean score against their true success, per-episode AUROC)."""
    y = np.array([m.outcome for m in judged], float)
    policies = sorted({m.policy for m in judged})
    of = [np.array([m.policy == q for m in judged]) for q in policies]
    return spearman(np.array([y[i].mean() for i in of]), np.array([p[i].mean() for i in of])), auroc(p, y)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path, help="a `wmeval bench` run directory (its store and judged patterns)")
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--store", type=Path, help="another store of the same policies (e.g. with more cameras)")
    ap.add_argument("--tasks", help="comma-separated; default: the preset's")
    ap.add_argument("--out", type=Path, help="also write the table as JSON")
    args = ap.parse_args()
    cfg = make_config(args.preset, str(args.run))
    store = EpisodeStore(args.store or args.run / "store")
    tasks = tuple(args.tasks.split(",")) if args.tasks else cfg.tasks
    last_eval_seed = cfg.seed + cfg.episodes - 1
    rows = defaultdict(dict)
    for task in tasks:
        metas = [m for m in store.index() if m.task == task and m.outcome is not None]
        train = [m for m in metas if not matches_any(m.policy, cfg.judged)]
        judged = [m for m in metas if matches_any(m.policy, cfg.judged) and cfg.seed <= m.seed <= last_eval_seed]
        both = {m.key: features(store, m.key) for m in train + judged}
        feats, frames = {k: f for k, (f, _) in both.items()}, {k: f for k, (_, f) in both.items()}
        y = np.array([m.outcome for m in train], float)
        for name in next(iter(feats.values())):
            X = np.stack([feats[m.key][name] for m in train])
            rows[name][task] = ranking(judged, fit_predict(X, y, np.stack([feats[m.key][name] for m in judged])))
        # is the task succeeded in this frame? (per-frame labels); an episode scores its most certain frame
        for name in (n for n in next(iter(frames.values())) if n != "success"):
            X = np.concatenate([frames[m.key][name] for m in train])
            fy = np.concatenate([frames[m.key]["success"] for m in train])
            lens = [len(frames[m.key][name]) for m in judged]
            p = fit_predict(X, fy, np.concatenate([frames[m.key][name] for m in judged]))
            best = np.array([c.max() for c in np.split(p, np.cumsum(lens)[:-1])])
            rows[f"{name}: succeeded now?, max over the episode"][task] = ranking(judged, best)
        policies = sorted({m.policy for m in judged})
        true = np.array([np.mean([m.outcome for m in judged if m.policy == q]) for q in policies])
        n = len(judged) // len(policies)
        print(f"{task}: {len(train)} training episodes, {len(policies)} judged policies x {n} real episodes; "
              f"true success {true.min():.2f}-{true.max():.2f}", flush=True)
    print("\n| input (readout fitted on the training policies) | " + " | ".join(tasks) + " | mean Spearman |")
    print("|---|" + "---|" * (len(tasks) + 1))
    for name, per in rows.items():
        cells = [f"{per[t][0]:.2f} (AUROC {per[t][1]:.2f})" for t in tasks]
        print(f"| {name} | " + " | ".join(cells) + f" | {np.nanmean([per[t][0] for t in tasks]):.2f} |")
    if args.out:
        inputs = {name: {t: {"spearman": s, "auroc": a} for t, (s, a) in per.items()} for name, per in rows.items()}
        res = {"command": "python scripts/outcome_location.py " + " ".join(sys.argv[1:]), "inputs": inputs}
        atomic_write_text(args.out, json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
