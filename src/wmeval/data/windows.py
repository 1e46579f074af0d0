"""Training windows for the world model: episode splits, the latent cache and window sampling.

Frames are encoded once by the frozen codec and kept as a flat array of all frames plus per-episode
offsets; a window is `W` consecutive frames of one episode (windows never cross episodes).
"""

from __future__ import annotations

import hashlib
import json
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from wmeval.data.store import EpisodeMeta, EpisodeStore
from wmeval.model.world_model import Window


def is_validation(key: str, val_fraction: float) -> bool:
    """Deterministic split by episode: a hash of the key, so adding episodes never moves old ones."""
    h = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16)
    return h % 10_000 < val_fraction * 10_000


def validates(m: EpisodeMeta, val_fraction: float, seeds: tuple[int, int] | None = None) -> bool:
    """Whether a world model validates on (never trains on) this episode: its key's hash split, or a start
    seed in `seeds` (first, last), e.g. calibration episodes collected for the success rule."""
    return is_validation(m.key, val_fraction) or (seeds is not None and seeds[0] <= m.seed <= seeds[1])


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


TENSORS = ("latents", "proprio", "actions", "value", "success")  # per frame, flat along time


@dataclass
class EpisodeArrays:
    """Frames of a set of episodes, flat along time: episode i is frames starts[i] : starts[i] + lens[i].
    The flat tensors may hold more episodes than the set (a `subset` shares them, it never copies) and may
    be memory maps of the latent cache, so holding them costs no memory until frames are read."""

    keys: list[str]
    starts: np.ndarray  # (N,) int64
    lens: np.ndarray  # (N,) int64
    latents: torch.Tensor  # (F, V, C, h, w) float32, raw codec latents (normalised per batch, see Normalisation)
    proprio: torch.Tensor  # (F, S) float32, raw
    actions: torch.Tensor  # (F, K, A) float32: actions[f] executed after frame f
    value: torch.Tensor  # (F,) float32 labels
    outcome: torch.Tensor  # (N,) bool
    success: torch.Tensor | None = None  # (F,) float32: 1.0 where the task is succeeded in that frame

    def lengths(self) -> np.ndarray:
        return self.lens

    def subset(self, idx: list[int]) -> EpisodeArrays:
        """Episodes `idx`, sharing this set's tensors."""
        return replace(self, keys=[self.keys[i] for i in idx], starts=self.starts[idx], lens=self.lens[idx],
                       outcome=self.outcome[torch.as_tensor(idx, dtype=torch.long)])  # fmt: skip

    def frames(self, episodes: np.ndarray | None = None) -> np.ndarray:
        """Indices into the flat tensors of every frame of `episodes` (positions in this set; all if None)."""
        e = np.arange(len(self.keys)) if episodes is None else np.asarray(episodes)
        if not len(e):
            return np.zeros(0, np.int64)
        return np.concatenate([np.arange(self.starts[i], self.starts[i] + self.lens[i]) for i in e])

    def save(self, path: Path, meta: dict) -> None:
        """Write the set as a latent cache (one tensor per field, episodes in order, offsets)."""
        keys = list(self.keys)
        with cache_writer(path, self.lens, self.latents.shape[1:], self.proprio.shape[1:], self.actions.shape[1:],
                          meta, keys) as put:  # fmt: skip
            for i in range(len(keys)):
                put(i, self.episode(i), bool(self.outcome[i]))

    def episode(self, i: int) -> dict[str, np.ndarray]:
        """Episode i's per-frame tensors (copies), as `cache_writer`'s `put` takes them."""
        f = torch.from_numpy(self.frames([i]))
        return {k: getattr(self, k)[f].numpy() for k in TENSORS if getattr(self, k) is not None}

    @classmethod
    def load(cls, path: Path) -> tuple[EpisodeArrays, dict]:
        """The latent cache, memory-mapped copy-on-write (changes stay in memory, the file never changes)."""
        from wmeval.data.safetensors_io import memmap_tensors

        arrays, raw = memmap_tensors(path, mode="c")
        meta = json.loads(raw["wmeval"])
        keys = meta.pop("keys")
        offsets = np.asarray(arrays.pop("offsets"), np.int64)
        t = {k: torch.from_numpy(v) for k, v in arrays.items()}
        return cls(keys=keys, starts=offsets[:-1], lens=np.diff(offsets), **t), meta


@contextmanager
def cache_writer(path: Path, lens, latent_shape, proprio_shape, action_shape, meta: dict, keys: list[str]):
    """Write a latent cache episode by episode without holding it in memory: yields `put(i, tensors,
    outcome)` for episode i (dict of the per-frame TENSORS); the cache appears atomically when all are put."""
    from wmeval.data.safetensors_io import stream_write
    from wmeval.data.store import atomic_write_text

    lens = np.asarray(lens, np.int64)
    offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    n = int(offsets[-1])
    f32 = np.dtype(np.float32)
    specs = {"latents": (f32, (n, *latent_shape)), "proprio": (f32, (n, *proprio_shape)),
             "actions": (f32, (n, *action_shape)), "value": (f32, (n,)), "success": (f32, (n,)),
             "outcome": (np.dtype(np.bool_), (len(lens),)),
             "offsets": (np.dtype(np.int64), (len(lens) + 1,))}  # fmt: skip
    outcome = np.zeros(len(lens), np.bool_)
    with stream_write(path, specs, {"wmeval": json.dumps({**meta, "keys": keys})}) as write:

        def put(i: int, tensors: dict[str, np.ndarray], won: bool) -> None:
            for name, rows in tensors.items():
                write(name, int(offsets[i]), rows)
            outcome[i] = won

        yield put
        write("outcome", 0, outcome)
        write("offsets", 0, offsets)
    atomic_write_text(path.with_suffix(".json"), json.dumps(meta, indent=2) + "\n")


@dataclass(frozen=True)
class Normalisation:
    """Per-channel latent and per-dimension proprio statistics, applied to each batch as it is gathered."""

    latent_mean: torch.Tensor  # (C,)
    latent_std: torch.Tensor
    proprio_mean: torch.Tensor  # (S,)
    proprio_std: torch.Tensor

    def latents(self, z: torch.Tensor) -> torch.Tensor:  # (..., C, h, w)
        return (z - self.latent_mean[:, None, None]) / self.latent_std[:, None, None]

    def proprio(self, p: torch.Tensor) -> torch.Tensor:
        return (p - self.proprio_mean) / self.proprio_std

    @classmethod
    def of(cls, model) -> Normalisation:
        """The statistics a world model carries (its buffers), on the CPU."""
        return cls(*(getattr(model, k).cpu() for k in ("latent_mean", "latent_std", "proprio_mean", "proprio_std")))

    @classmethod
    def fit(cls, arrays: EpisodeArrays, chunk: int = 64) -> Normalisation:
        """Mean and (unbiased) std over every frame of `arrays`, accumulated `chunk` episodes at a time in
        float64, so the statistics of a memory-mapped cache never need it all in memory."""
        C = arrays.latents.shape[-3]
        zs, zss, ps, pss, nz, n = torch.zeros(C, dtype=torch.float64), torch.zeros(C, dtype=torch.float64), 0, 0, 0, 0
        for lo in range(0, len(arrays.keys), chunk):
            f = torch.from_numpy(arrays.frames(np.arange(lo, min(lo + chunk, len(arrays.keys)))))
            z = arrays.latents[f].double()  # (frames, V, C, h, w)
            p = arrays.proprio[f].double()
            zs, zss, nz = zs + z.sum((0, 1, 3, 4)), zss + z.square().sum((0, 1, 3, 4)), nz + z.numel() // C
            ps, pss, n = ps + p.sum(0), pss + p.square().sum(0), n + len(p)

        def mean_std(s, ss, k):
            mean = s / k
            return mean.float(), ((ss - k * mean * mean) / max(k - 1, 1)).clamp_min(0).sqrt().float().clamp_min(1e-3)

        return cls(*mean_std(zs, zss, nz), *mean_std(ps, pss, n))


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
    """Uniform over all valid window starts; the batch depends only on (seed, step), so runs resume exactly.
    Batches are normalised with `norm` as they are gathered (raw values when None)."""

    def __init__(self, arrays: EpisodeArrays, window: int, seed: int = 0, norm: Normalisation | None = None) -> None:
        self.a, self.W, self.seed, self.norm = arrays, window, seed, norm
        self.episodes = check_long_enough(arrays, window, "window sampler")
        self.starts_per_ep = arrays.lengths()[self.episodes] - window + 1
        self.cum = np.concatenate([[0], np.cumsum(self.starts_per_ep)])

    def __len__(self) -> int:
        return int(self.cum[-1])

    def window_index(self, j: int) -> tuple[int, int]:
        """The j-th valid window: (episode index, start frame within the episode)."""
        e = int(np.searchsorted(self.cum, j, side="right") - 1)
        return int(self.episodes[e]), int(j - self.cum[e])

    def batch(self, step: int, batch_size: int) -> Window:
        return self.batch_with_keys(step, batch_size)[0]

    def batch_with_keys(self, step: int, batch_size: int) -> tuple[Window, list[str]]:
        """The step's batch and the episode key of each window in it."""
        g = np.random.default_rng([self.seed, step])
        items = [self.window_index(int(j)) for j in g.integers(0, len(self), batch_size)]
        return self.gather(items), [self.a.keys[e] for e, _ in items]

    def gather(self, items: list[tuple[int, int]]) -> Window:
        W, a = self.W, self.a
        frames = torch.as_tensor(np.stack([a.starts[e] + s + np.arange(W) for e, s in items]))  # (B, W)
        starts = torch.as_tensor([s for _, s in items])
        has = (starts[:, None] + torch.arange(W)[None]) > 0  # an episode's first frame has no action into it
        prev = torch.where(has, frames - 1, frames)  # never reaches into the previous episode
        actions_in = a.actions[prev] * has[..., None, None]
        mask = has.float()
        z, p, z_prev, p_prev = a.latents[frames], a.proprio[frames], a.latents[prev], a.proprio[prev]
        if self.norm is not None:
            z, p, z_prev, p_prev = (self.norm.latents(z), self.norm.proprio(p), self.norm.latents(z_prev),
                                    self.norm.proprio(p_prev))  # fmt: skip
        return Window(
            latents=z, proprio=p, actions_in=actions_in, has_action=has, value=a.value[frames],
            success=None if a.success is None else a.success[frames],
            prev_latents=z_prev * mask.reshape(*mask.shape, *[1] * (z.dim() - 2)),
            prev_proprio=p_prev * mask[..., None],
        )  # fmt: skip
