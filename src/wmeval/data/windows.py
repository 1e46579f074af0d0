"""Training windows for the world model: episode splits, the latent cache and window sampling.

Frames are encoded once by the frozen codec and kept as a flat array of all frames plus per-episode
offsets; a window is `W` consecutive frames of one episode (windows never cross episodes).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from wmeval.data.store import EpisodeMeta, EpisodeStore
from wmeval.model.world_model import Window


def is_validation(key: str, val_fraction: float) -> bool:
    """Deterministic split by episode: a hash of the key, so adding episodes never moves old ones."""
    h = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16)
    return h % 10_000 < val_fraction * 10_000


def select_episodes(
    store: EpisodeStore, tasks: tuple[str, ...] | None = None, exclude_policies: tuple[str, ...] = ()
) -> list[EpisodeMeta]:
    """The store's episodes on `tasks` (all when None), minus those of policies matching `exclude_policies`
    (names or glob patterns)."""
    from wmeval.zoo import matches_any

    metas = [
        m for m in store.index() if (tasks is None or m.task in tasks) and not matches_any(m.policy, exclude_policies)
    ]
    if not metas:
        which = ", ".join(tasks) if tasks else "all tasks"
        held = ", ".join(exclude_policies) or "-"
        raise ValueError(
            f"{store.root}: no episode left to train on ({which}, --exclude-policies {held}); "
            f"see `wmeval table {store.root}` for the store's tasks and policies"
        )
    return metas


@dataclass
class EpisodeArrays:
    """All frames of a set of episodes, flat along time, with offsets[i]:offsets[i+1] for episode i."""

    keys: list[str]
    offsets: np.ndarray  # (N + 1,) int64
    latents: torch.Tensor  # (F, V, C, h, w) float32, normalised
    proprio: torch.Tensor  # (F, S) float32, raw
    actions: torch.Tensor  # (F, K, A) float32: actions[f] executed after frame f
    value: torch.Tensor  # (F,) float32 labels
    outcome: torch.Tensor  # (N,) bool
    success: torch.Tensor | None = None  # (F,) float32: 1.0 where the task is succeeded in that frame

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def subset(self, idx: list[int]) -> EpisodeArrays:
        frames = np.concatenate([np.arange(self.offsets[i], self.offsets[i + 1]) for i in idx])
        lens = self.lengths()[idx]
        f = torch.from_numpy(frames)
        return EpisodeArrays(
            keys=[self.keys[i] for i in idx], offsets=np.concatenate([[0], np.cumsum(lens)]),
            latents=self.latents[f], proprio=self.proprio[f], actions=self.actions[f], value=self.value[f],
            outcome=self.outcome[torch.as_tensor(idx)], success=None if self.success is None else self.success[f],
        )  # fmt: skip

    def save(self, path: Path, meta: dict) -> None:
        from safetensors.torch import save_file

        from wmeval.data.safetensors_io import os_errors
        from wmeval.data.store import atomic_write_text

        tmp = path.with_suffix(".tmp")
        names = ("latents", "proprio", "actions", "value", "outcome", "success")
        tensors = {k: getattr(self, k).contiguous() for k in names if getattr(self, k) is not None}
        tensors["offsets"] = torch.from_numpy(self.offsets)
        try:
            save_file(tensors, tmp, metadata={"wmeval": json.dumps({**meta, "keys": self.keys})})
        except BaseException:
            tmp.unlink(missing_ok=True)
            with os_errors(path):
                raise
        tmp.replace(path)
        atomic_write_text(path.with_suffix(".json"), json.dumps(meta, indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> tuple[EpisodeArrays, dict]:
        from safetensors import safe_open

        with safe_open(path, framework="pt") as f:
            meta = json.loads(f.metadata()["wmeval"])
            t = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
        keys = meta.pop("keys")
        arrays = cls(keys=keys, offsets=t.pop("offsets").numpy(), **t)
        return arrays, meta


def long_enough(arrays: EpisodeArrays, window: int) -> np.ndarray:
    """Indices of the episodes with at least `window` frames."""
    return np.flatnonzero(arrays.lengths() >= window)


def check_long_enough(arrays: EpisodeArrays, window: int, where: str) -> np.ndarray:
    """Indices of episodes with at least `window` frames; refuse if there are none."""
    return require_window(arrays.lengths(), window, where)


def require_window(lengths: np.ndarray, window: int, where: str) -> np.ndarray:
    """Indices of the `lengths` that hold a `window`; refuse (before any work is done) if none does."""
    lengths = np.asarray(lengths)
    ok = np.flatnonzero(lengths >= window)
    if not len(ok):
        raise ValueError(
            f"{where}: no episode has the {window} frames a training window needs (longest: "
            f"{lengths.max(initial=0)} frames); use a smaller window/preset or collect longer episodes (--max-steps)"
        )
    return ok


class WindowSampler:
    """Uniform over all valid window starts; the batch depends only on (seed, step), so runs resume exactly."""

    def __init__(self, arrays: EpisodeArrays, window: int, seed: int = 0) -> None:
        self.a, self.W, self.seed = arrays, window, seed
        self.episodes = check_long_enough(arrays, window, "window sampler")
        self.starts_per_ep = arrays.lengths()[self.episodes] - window + 1
        self.cum = np.concatenate([[0], np.cumsum(self.starts_per_ep)])

    def __len__(self) -> int:
        return int(self.cum[-1])

    def window_index(self, j: int) -> tuple[int, int]:
        """The j-th valid window: (episode index, start frame within the episode)."""
        e = int(np.searchsorted(self.cum, j, side="right") - 1)
        return int(self.episodes[e]), int(j - self.cum[e])

    def batch(self, step: int, batch_size: int, proprio_mean, proprio_std) -> Window:
        return self.batch_with_keys(step, batch_size, proprio_mean, proprio_std)[0]

    def batch_with_keys(self, step: int, batch_size: int, proprio_mean, proprio_std) -> tuple[Window, list[str]]:
        """The step's batch and the episode key of each window in it."""
        g = np.random.default_rng([self.seed, step])
        items = [self.window_index(int(j)) for j in g.integers(0, len(self), batch_size)]
        return self.gather(items, proprio_mean, proprio_std), [self.a.keys[e] for e, _ in items]

    def gather(self, items: list[tuple[int, int]], proprio_mean, proprio_std) -> Window:
        W, a = self.W, self.a
        frames = torch.as_tensor(np.stack([a.offsets[e] + s + np.arange(W) for e, s in items]))  # (B, W)
        starts = torch.as_tensor([s for _, s in items])
        prev = (frames - 1).clamp_min(0)
        has = (starts[:, None] + torch.arange(W)[None]) > 0  # an episode's first frame has no action into it
        actions_in = a.actions[prev] * has[..., None, None]
        mask = has.float()
        return Window(
            latents=a.latents[frames], proprio=(a.proprio[frames] - proprio_mean) / proprio_std,
            actions_in=actions_in, has_action=has, value=a.value[frames],
            success=None if a.success is None else a.success[frames],
            prev_latents=a.latents[prev] * mask.reshape(*mask.shape, *[1] * (a.latents.dim() - 1)),
            prev_proprio=(a.proprio[prev] - proprio_mean) / proprio_std * mask[..., None],
        )  # fmt: skip
