"""Closed-loop evaluation throughput: imagined episodes/s and frames/s against the number of episodes run in
parallel, with the zoo's learned policies acting on generated frames and, for comparison, with a free
constant policy (the world model alone); then wall time against the number of episodes at a fixed batch
(cost should grow linearly).

    python benchmarks/evaluate_throughput.py --model runs/wm-heldout/model --zoo runs/learned-zoo/zoo.toml \
        --store data/metaworld-default --batches 1,4,16,64,128 --episodes 128
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass

import numpy as np
import torch

from wmeval.data.store import EpisodeStore
from wmeval.eval.imagination import Job, imagine, recorded_starts
from wmeval.model.world_model import load_world_model
from wmeval.zoo import load_zoo


@dataclass(frozen=True)
class Still:
    """A policy that costs nothing: the world model's share of the loop."""

    name: str = "still"

    def build(self, task, layout):
        return self

    def reset(self, seed: int) -> None:
        pass

    def act(self, obs) -> np.ndarray:
        return np.zeros((4, 4), np.float32)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--zoo", required=True)
    ap.add_argument("--store", required=True)
    ap.add_argument("--policies", default="bc-*-n40-*")
    ap.add_argument("--batches", default="1,4,16,64,128")
    ap.add_argument("--episodes", type=int, default=128, help="episodes per measurement (batch 1: a quarter)")
    ap.add_argument(
        "--rounds",
        type=int,
        default=0,
        help="if > 0, at most this many batches per measurement (a GPU at batch 1 is slow)",
    )
    ap.add_argument("--scaling", default="64,128,256", help="episode counts for the linear-cost check ('' skips it)")
    ap.add_argument("--seed", type=int, default=1000, help="first of the recorded starts used per task")
    ap.add_argument("--starts", type=int, default=50, help="recorded starts per task, from --seed on")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    model, meta = load_world_model(args.model, args.device)
    store = EpisodeStore(args.store)
    specs = load_zoo(args.zoo).select(args.policies.split(",")).policies
    scaling = [int(n) for n in args.scaling.split(",") if n]
    n_max = max([args.episodes, *scaling])
    k = args.starts
    starts = {t: recorded_starts(store, t, range(args.seed, args.seed + k)) for t in {s.tasks[0] for s in specs}}
    jobs = []
    for i in range(n_max):  # policies round-robin, each on the next of the recorded starts
        spec = specs[i % len(specs)]
        jobs.append(Job(spec, spec.tasks[0], starts[spec.tasks[0]][i % k]))
    L = store.layout
    dev = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU ({torch.get_num_threads()} threads)"
    print(f"device: {dev}; {os.cpu_count()} cores; torch {torch.__version__}; model {args.model} "
          f"(preset window {model.cfg.window}); {L.horizon} frames per episode")  # fmt: skip

    def run(js, b) -> float:
        t0 = time.perf_counter()
        eps = imagine(model, L, js, batch_size=b, progress=False)
        assert not any(e.error for e in eps), [e.error for e in eps if e.error]
        return time.perf_counter() - t0

    print("| parallel episodes | episodes | learned policies: episodes/s | frames/s | world model alone: frames/s |")
    print("|---|---|---|---|---|")
    for b in map(int, args.batches.split(",")):
        n = max(b, args.episodes // 4 if b == 1 else args.episodes)
        n = min(n, b * args.rounds) if args.rounds > 0 else n
        s_pol = run(jobs[:n], b)
        s_wm = run([Job(Still(), j.task, j.start) for j in jobs[:n]], b)
        print(f"| {b} | {n} | {n / s_pol:.2f} | {n * L.horizon / s_pol:,.0f} | {n * L.horizon / s_wm:,.0f} |",
              flush=True)  # fmt: skip
    if not scaling:
        return
    b = max(map(int, args.batches.split(",")))
    print(f"\nlinear cost at batch {b}:\n| episodes | seconds | seconds per episode |\n|---|---|---|")
    for n in scaling:
        s = run(jobs[:n], b)
        print(f"| {n} | {s:.1f} | {s / n:.3f} |", flush=True)


if __name__ == "__main__":
    main()
