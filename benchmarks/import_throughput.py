"""Import throughput: `wmeval import` of a LeRobot v3.0 dataset (AV1 mp4, decoded with PyAV) and of a
robomimic HDF5 file (raw uint8 frames), both made here from the same synthetic episodes at a camera size
typical of robot datasets, into a store at the world model's size (64 px).

    python benchmarks/import_throughput.py [--episodes 20] [--steps 100] [--size 224] [--frame-skip 1,4]

Prints source steps/s and stored frames/s per format and frame skip (decoding a video costs every frame
whatever the skip; HDF5 reads only the kept frames) and the time to write the sources (`wmeval export
lerobot` encoding AV1).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def synthetic_store(root: Path, episodes: int, steps: int, size: int):
    """A store of moving-square episodes at `size` px (frame_skip 1: one frame per step)."""
    from wmeval.data.store import Episode, EpisodeMeta, EpisodeStore, episode_key
    from wmeval.reality.base import Layout
    from wmeval.types import Start

    layout = Layout("bench", ("cam",), size, 1, steps - 1, 7, 9, 20.0)
    store = EpisodeStore.create(root, layout)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    for e in range(episodes):
        frames = np.empty((steps, 1, size, size, 3), np.uint8)
        cx, cy = rng.uniform(0.2, 0.8, 2) * size
        for t in range(steps):
            x, y = cx + 0.3 * size * np.sin(t / 15), cy + 0.2 * size * np.cos(t / 11)
            square = (np.abs(xx - x) < size / 10) & (np.abs(yy - y) < size / 10)
            frames[t, 0] = np.stack([80 + 100 * square, 90 + 40 * (xx / size), 60 + 150 * square], -1).astype(np.uint8)
        success = np.zeros(steps, bool)
        success[-5:] = e % 2 == 0
        key = episode_key("bench", "synthetic", e)
        meta = EpisodeMeta(key, "bench", "bench", "synthetic", {}, e, Start("bench", "bench", e).to_json(),
                           bool(success.any()), steps, layout.fps, 1)  # fmt: skip
        store.append(Episode(frames, rng.normal(size=(steps, 1, 7)).astype(np.float32),
                             rng.normal(size=(steps, 9)).astype(np.float32), success, meta))  # fmt: skip
    return store


def write_hdf5(store, path: Path) -> None:
    import h5py

    with h5py.File(path, "w") as f:
        f.create_group("data").attrs["env_args"] = json.dumps({"env_kwargs": {"control_freq": 20}})
        for i, k in enumerate(store.keys()):
            ep = store.load(k)
            g = f.create_group(f"data/demo_{i}")
            g["obs/agentview_image"] = np.asarray(ep.frames[:, 0])
            g["obs/robot0_joint_pos"] = np.asarray(ep.proprio)
            g["actions"] = np.asarray(ep.actions[:, 0])
            g["rewards"] = np.asarray(ep.success, np.float64)


def timed_import(fmt: str, src: Path, out: Path, frame_skip: int) -> dict:
    from wmeval.data.importers import ImportConfig, import_episodes, read_source

    t0 = time.perf_counter()
    source, cams = read_source(fmt, str(src))
    rep = import_episodes(source, ImportConfig(out=str(out), frame_skip=frame_skip, image_size=64), cams, False)
    dt = time.perf_counter() - t0
    steps = sum(source.lengths)
    return {"format": fmt, "frame_skip": frame_skip, "episodes": rep.imported, "source_steps": steps,
            "stored_frames": rep.frames, "seconds": round(dt, 2), "steps_per_s": round(steps / dt, 1),
            "frames_per_s": round(rep.frames / dt, 1)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--episodes", type=int, default=20)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--size", type=int, default=224, help="source camera size in px")
    ap.add_argument("--frame-skip", default="1,4")
    args = ap.parse_args()
    import torch

    from wmeval.data.importers.lerobot_export import export_lerobot

    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        store = synthetic_store(d / "src", args.episodes, args.steps, args.size)
        t0 = time.perf_counter()
        export_lerobot(store.root, d / "lerobot", progress=False)
        t_export = time.perf_counter() - t0
        t0 = time.perf_counter()
        write_hdf5(store, d / "demo.hdf5")
        t_hdf5 = time.perf_counter() - t0
        frames = args.episodes * args.steps
        print(f"{args.episodes} episodes x {args.steps} steps, {args.size} px source frames; torch "
              f"{torch.__version__}, {torch.get_num_threads()} threads")
        print(f"write sources: LeRobot AV1 export {frames / t_export:.0f} frames/s, "
              f"HDF5 {frames / t_hdf5:.0f} frames/s")
        print("| format | frame skip | episodes | source steps | stored frames | s | source steps/s | "
              "stored frames/s |\n|---|---|---|---|---|---|---|---|")
        for k in (int(x) for x in args.frame_skip.split(",")):
            for fmt, src in (("lerobot", d / "lerobot"), ("hdf5", d / "demo.hdf5")):
                r = timed_import(fmt, src, d / f"out-{fmt}-{k}", k)
                print(f"| {fmt} | {k} | {r['episodes']} | {r['source_steps']} | {r['stored_frames']} | "
                      f"{r['seconds']} | {r['steps_per_s']} | {r['frames_per_s']} |")


if __name__ == "__main__":
    main()
