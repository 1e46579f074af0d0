"""Do the judged policies act on imagined frames as they act on real ones?

Closed-loop verdicts rank the judged policies worse than open-loop replays of their real actions: closing
the loop loses something. This diagnostic isolates the policy's side of it. Each judged policy's recorded
episodes are replayed open loop (the logged actions, from the recorded first frame, the world model's own
noise) and, at every frame, shadow copies of the policy are asked what they would do on four views of that
frame: the real frame and proprio (which reproduces the logged action: a check), the codec's round trip of
the real frame, the imagined frame with the imagined proprio (what a policy sees in imagination), and the
imagined frame with the real proprio. Each shadow keeps its own state along its own stream, as in an episode.
The error of a view is the mean absolute difference between the shadow's chunk and the logged one (actions in
[-1, 1]). If the imagined view misleads good checkpoints more than weak ones, closed loop inverts their order
before any outcome is rendered. Example (seconds per policy):

    python scripts/policy_perception.py runs/bench-cpu --model runs/bench-cpu/wm-heldout/model --episodes 10
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from wmeval.align.metrics import spearman
from wmeval.data.store import EpisodeStore, atomic_write_text
from wmeval.eval.imagination import BatchedImagination, start_frame
from wmeval.model.proprio import load_proprio_net
from wmeval.model.world_model import load_world_model
from wmeval.rollout import ask_policy
from wmeval.types import Observation
from wmeval.zoo import load_zoo

VIEWS = ("real", "codec", "imagined", "imagined_frames_real_proprio")


def perceive(model, store, spec, metas, layout, seed: int) -> np.ndarray:
    """float[N, T, len(VIEWS)]: each view's action error at every replayed frame of `metas` (one policy)."""
    L = layout
    eps = [store.load(m.key, verify=False) for m in metas]
    T = min(len(e.frames) for e in eps)
    env = BatchedImagination(model, L, seed)
    obs, _ = env.reset([start_frame(store, m) for m in metas])
    shadows = [[spec.build(m.task, L) for _ in VIEWS] for m in metas]
    for m, row in zip(metas, shadows, strict=True):
        for p in row:
            p.reset(m.seed)
    pending = [[np.zeros((0, L.action_dim), np.float32) for _ in VIEWS] for _ in metas]
    err = np.full((len(metas), T - 1, len(VIEWS)), np.nan, np.float32)
    for t in range(T - 1):
        real = np.stack([e.frames[t] for e in eps])
        with torch.inference_mode():
            codec = model.decode(model.encode(torch.from_numpy(real))).numpy()
        for i, e in enumerate(eps):
            views = (Observation(real[i], e.proprio[t]), Observation(codec[i], e.proprio[t]), obs[i],
                     Observation(obs[i].images, e.proprio[t]))  # fmt: skip
            for v, ob in enumerate(views):
                if not len(pending[i][v]):
                    pending[i][v] = ask_policy(shadows[i][v], ob, L, f"{spec.name} {e.meta.key} ({VIEWS[v]})")
                chunk, pending[i][v] = pending[i][v][: L.frame_skip], pending[i][v][L.frame_skip :]
                err[i, t, v] = np.abs(chunk - e.actions[t]).mean()
        obs, _, _ = env.step(np.stack([e.actions[t] for e in eps]))
    return err


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", help="a `wmeval bench` run directory (store, policies/zoo.toml)")
    ap.add_argument("--model", required=True, help="world model whose imagination the policies see")
    ap.add_argument("--policies", default="bc-*-n40-*", help="judged policies (glob)")
    ap.add_argument("--episodes", type=int, default=10, help="recorded episodes per policy (seeds from --seed)")
    ap.add_argument("--seed", type=int, default=1000, help="first recorded seed (the evaluation starts)")
    ap.add_argument("--noise-seed", type=int, default=0)
    ap.add_argument("--proprio-net", help="a proprio net (`wmeval train-proprio`) predicts the imagined proprio")
    ap.add_argument("--out", help="JSON file to write")
    args = ap.parse_args()
    torch.set_num_threads(1)
    run = Path(args.run)
    store = EpisodeStore(run / "store")
    model, _ = load_world_model(args.model)
    if args.proprio_net:
        model.proprio_with(load_proprio_net(args.proprio_net)[0])
    zoo = load_zoo(run / "policies" / "zoo.toml").select([args.policies])
    by = defaultdict(list)
    for m in store.index():
        if args.seed <= m.seed < args.seed + args.episodes:
            by[(m.task, m.policy)].append(m)
    rows = []
    for spec in tqdm(zoo.policies, desc="policies", unit="policy"):
        for task in spec.tasks or ():
            metas = sorted(by[(task, spec.name)], key=lambda m: m.seed)
            if not metas:
                continue
            err = perceive(model, store, spec, metas, store.layout, args.noise_seed)
            truth = np.mean([m.outcome for m in store.index() if m.task == task and m.policy == spec.name
                             and m.seed >= args.seed])  # fmt: skip
            rows.append({"task": task, "policy": spec.name, "true": float(truth),
                         **{v: float(np.nanmean(err[..., k])) for k, v in enumerate(VIEWS)},
                         **{f"{v}_first5": float(np.nanmean(err[:, :5, k])) for k, v in enumerate(VIEWS)}})  # fmt: skip
    tasks = sorted({r["task"] for r in rows})
    summary = {}
    for task in tasks:
        rs = [r for r in rows if r["task"] == task]
        truth = np.array([r["true"] for r in rs])
        summary[task] = {v: spearman(truth, np.array([r[v] for r in rs])) for v in VIEWS[1:]}
    for r in sorted(rows, key=lambda r: (r["task"], r["true"])):
        print(f"{r['task'][:14]:14s} {r['policy'][-36:]:36s} true {r['true']:.2f}  " +
              "  ".join(f"{v[:8]} {r[v]:.3f}" for v in VIEWS))  # fmt: skip
    print("Spearman(true rate, action error) per task:", json.dumps(summary, indent=1))
    if args.out:
        atomic_write_text(Path(args.out), json.dumps({"args": vars(args), "summary": summary, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
