"""Where a task's outcome lives in the observations, and so what a world model must get right to rank the
policies that solve it. For each kind of input, a logistic readout is fitted on the training episodes of a
bench run (every policy not judged, each task apart) and applied to the judged policies' *real* episodes;
its within-task Spearman between the judged policies' mean readout and their true success says how much of
the ranking that input carries when it is exactly right. Inputs: the arm (proprio) over the episode, the
arm in the last frame, the actions over the episode, the last frame's pixels (16 x 16), the arm and the
pixels together. An input that ranks well alone is one whose imagined version the verdict can lean on; an
outcome that only the pixels carry must be rendered.

    python scripts/outcome_location.py runs/bench-cpu [--preset cpu] [--out docs/results/outcome_location.json]
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


def features(store: EpisodeStore, key: str) -> dict[str, np.ndarray]:
    ep = store.load(key, verify=False)
    T = len(ep.proprio)
    idx = np.linspace(0, T - 1, max(2, T // EVERY)).round().astype(int)
    last = torch.from_numpy(ep.frames[-1].astype(np.float32) / 255).permute(0, 3, 1, 2)  # V, 3, H, W
    pixels = F.adaptive_avg_pool2d(last, 16).flatten().numpy()
    return {
        "arm over the episode": ep.proprio[idx].ravel(),
        "arm, last frame": ep.proprio[-1],
        "actions over the episode": ep.actions[idx].reshape(len(idx), -1).ravel(),
        "pixels, last frame": pixels,
        "arm + pixels, last frame": np.concatenate([ep.proprio[idx].ravel(), pixels]),
    }


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path, help="a `wmeval bench` run directory (its store and judged patterns)")
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--out", type=Path, help="also write the table as JSON")
    args = ap.parse_args()
    cfg = make_config(args.preset, str(args.run))
    store = EpisodeStore(args.run / "store")
    last_eval_seed = cfg.seed + cfg.episodes - 1
    rows = defaultdict(dict)
    for task in cfg.tasks:
        metas = [m for m in store.index() if m.task == task and m.outcome is not None]
        train = [m for m in metas if not matches_any(m.policy, cfg.judged)]
        judged = [m for m in metas if matches_any(m.policy, cfg.judged) and cfg.seed <= m.seed <= last_eval_seed]
        feats = {m.key: features(store, m.key) for m in train + judged}
        y, yt = np.array([m.outcome for m in train], float), np.array([m.outcome for m in judged], float)
        policies = sorted({m.policy for m in judged})
        true = np.array([yt[[m.policy == p for m in judged]].mean() for p in policies])
        for name in next(iter(feats.values())):
            X = np.stack([feats[m.key][name] for m in train])
            Xt = np.stack([feats[m.key][name] for m in judged])
            p = fit_predict(X, y, Xt)
            pred = np.array([p[[m.policy == q for m in judged]].mean() for q in policies])
            rows[name][task] = (spearman(true, pred), auroc(p, yt))
        n = len(judged) // len(policies)
        print(f"{task}: {len(train)} training episodes, {len(policies)} judged policies x {n} real episodes; "
              f"true success {true.min():.2f}-{true.max():.2f}", flush=True)
    print("\n| input (readout fitted on the training policies) | " + " | ".join(cfg.tasks) + " | mean Spearman |")
    print("|---|" + "---|" * (len(cfg.tasks) + 1))
    for name, per in rows.items():
        cells = [f"{per[t][0]:.2f} (AUROC {per[t][1]:.2f})" for t in cfg.tasks]
        print(f"| {name} | " + " | ".join(cells) + f" | {np.nanmean([per[t][0] for t in cfg.tasks]):.2f} |")
    if args.out:
        inputs = {name: {t: {"spearman": s, "auroc": a} for t, (s, a) in per.items()} for name, per in rows.items()}
        res = {"command": "python scripts/outcome_location.py " + " ".join(sys.argv[1:]), "inputs": inputs}
        atomic_write_text(args.out, json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
