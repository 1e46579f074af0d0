"""GIFs of imagined episodes beside the real ones: which episodes an evaluation keeps, where they go, and how
they are written (atomically: a reader never finds half a GIF)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from wmeval.data.store import EpisodeStore, episode_key
from wmeval.eval.calibration import spread


def write_gif(path: Path, frames: np.ndarray, fps: float) -> None:
    """(T, H, W, 3) uint8 frames as a looping GIF at `path`, written to a temporary name and renamed."""
    import imageio.v2 as imageio

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.gif")
    imageio.mimsave(tmp, list(frames), duration=1 / fps, loop=0)
    os.replace(tmp, path)


def video_picks(specs, runs: dict[str, list[str]], seeds: list[int], store: EpisodeStore,
                n: int) -> set[tuple[str, str, int]]:  # fmt: skip
    """A few (policy, task, seed) to keep frames of: spread over policies, preferring recorded ones."""
    cands = [(s.name, t, seeds[i % len(seeds)]) for i, s in enumerate(specs) for t in runs[s.name]]
    recorded = [c for c in cands if store.has(episode_key(c[1], c[0], c[2]))]
    return set(spread(recorded or cands, n))


def video_path(folder: Path, task: str, policy: str, seed: int) -> Path:
    return folder / f"{task}__{policy}__{seed:06d}.gif"


def write_episode_video(folder: Path, episode, store: EpisodeStore, fps: float) -> None:
    """GIF of an imagined episode's first view: real | imagined when the real episode is recorded, else imagined
    alone."""
    frames = episode.frames[:, 0]
    key = episode_key(episode.task, episode.policy, episode.seed)
    if store.has(key):
        real = np.array(store.load(key, verify=False).frames[:, 0])
        T = min(len(real), len(frames))
        frames = np.concatenate([real[:T], frames[:T]], axis=2)
    write_gif(video_path(folder, episode.task, episode.policy, episode.seed), frames, fps)
