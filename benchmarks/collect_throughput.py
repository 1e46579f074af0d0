"""Collection throughput (stored frames/s) by worker count and image size, and store read throughput.

    python benchmarks/collect_throughput.py [--suite metaworld|humanoid] [--episodes 12] [--sizes 64,128]
                                            [--workers 1,2]

Each setting collects the same jobs into a fresh temporary store (process start-up and simulator
construction included, as a user would see them) and prints one Markdown row.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from wmeval.collect import collect
from wmeval.data.store import EpisodeStore
from wmeval.reality import default_tasks, default_zoo, make_config
from wmeval.zoo import load_zoo


def read_rate(root: Path, verify: bool) -> float:
    store = EpisodeStore(root)
    t0, frames = time.perf_counter(), 0
    for key in store:
        ep = store.load(key, verify=verify)
        frames += int(np.asarray(ep.frames).shape[0])
        np.asarray(ep.frames).sum()  # touch every byte, as a data loader would
    return frames / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--suite", default="metaworld", help="metaworld (push, drawer-open; the expert with noise 1.0) or "
                    "humanoid (its first two default tasks; the IK expert, noise 0.3)")
    ap.add_argument("--episodes", type=int, default=12, help="episodes per task (2 tasks, 1 policy)")
    ap.add_argument("--sizes", default="64,128")
    ap.add_argument("--workers", default="1,2")
    args = ap.parse_args()
    if args.suite == "metaworld":
        zoo, tasks = load_zoo("tiny").select(["noise-1.0"]), ("push", "drawer-open")
    else:
        zoo, tasks = load_zoo(default_zoo(args.suite)).select(["noise-0.3"]), default_tasks(args.suite)[:2]
    print(
        f"suite {args.suite}, tasks {', '.join(tasks)}, policy {zoo.policies[0].name}; "
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, MUJOCO_GL="
        f"{os.environ.get('MUJOCO_GL', 'egl')}"
    )
    print(
        "| image px | workers | episodes | frames | wall s | frames/s | episodes/s | read frames/s (verified / not) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for size in map(int, args.sizes.split(",")):
        for workers in map(int, args.workers.split(",")):
            with tempfile.TemporaryDirectory() as tmp:
                cfg = make_config(args.suite, image_size=size)
                t0 = time.perf_counter()
                res = collect(Path(tmp) / "s", zoo, tasks, args.episodes, cfg, workers=workers, progress=False)
                wall = time.perf_counter() - t0
                n = res.new
                frames = n * cfg.layout().n_frames
                r1, r2 = read_rate(Path(tmp) / "s", True), read_rate(Path(tmp) / "s", False)
                print(
                    f"| {size} | {workers} | {n} | {frames} | {wall:.1f} | {frames / wall:.0f} | {n / wall:.2f} "
                    f"| {r1:,.0f} / {r2:,.0f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
