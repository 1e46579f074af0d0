"""The data of a world-model run: which episodes train and validate, the codec's phase, and the latent cache
(every selected episode encoded once, kept across runs by episode digest)."""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from wmeval.checkpoint import read_config
from wmeval.data.store import EpisodeStore
from wmeval.data.windows import (
    EpisodeArrays,
    check_long_enough,
    require_window,
    select_episodes,
    validates,
)
from wmeval.model.codec import FrameCodec
from wmeval.train.codec import encode_episodes, train_codec
from wmeval.train.common import latest_step_dir

if TYPE_CHECKING:
    from wmeval.train.world_model import WMTrainConfig


def latent_cache(cfg, codec, store, keys, device, progress) -> tuple[EpisodeArrays, dict]:
    """Phase 2: encode every selected episode once (cached in OUT/latents.safetensors). The cache knows each
    episode by its digest, so a store that grew, or a run that selects more of it, encodes only the episodes
    the cache lacks; the result may hold more episodes than `keys` (callers pick theirs by key)."""
    path = Path(cfg.out) / "latents.safetensors"
    codec_step = read_config(latest_step_dir(Path(cfg.out) / "codec"))["step"]
    want = {"codec_step": codec_step, "value_scheme": cfg.value_scheme}
    digests = {k: store.meta(k).digest for k in keys}
    old, have = None, {}
    if path.is_file():
        old, meta = EpisodeArrays.load(path)
        if {k: meta.get(k) for k in want} == want and old.success is not None:
            # caches written before digests were kept name the whole store's fingerprint instead
            have = meta.get("digests") or (
                {k: store.meta(k).digest for k in old.keys} if meta.get("store_fingerprint") == store.fingerprint()
                else {})  # fmt: skip
        if "digests" in meta and all(have.get(k) == d for k, d in digests.items()):
            return old, meta
    kept = [k for k in (old.keys if old is not None else []) if k in have and store.has(k)
            and store.meta(k).digest == have[k]]  # fmt: skip
    new = [k for k in keys if k not in set(kept)]
    meta = want | {"digests": {k: store.meta(k).digest for k in kept + new}, "store_fingerprint": store.fingerprint()}
    encode_episodes(codec, store, new, path, meta, device, cfg.value_scheme, progress,
                    reuse=(old.subset([old.keys.index(k) for k in kept]) if kept else None))  # fmt: skip
    del old  # unmapped before the new cache is read
    return EpisodeArrays.load(path)


@dataclass
class Data:
    keys: list[str]
    train_keys: list[str]
    val_keys: list[str]
    tasks: list[str]
    policies: list[str]
    train: EpisodeArrays
    val: EpisodeArrays | None
    store_fingerprint: str


def prepare_data(cfg, wm_cfg, store, device, rank, world, progress) -> tuple[FrameCodec, Data]:
    """Phases 1 (codec) and 2 (latent cache) run on rank 0; the other ranks wait, then read the results."""
    metas, extra = training_pool(store, cfg)
    keys = [m.key for m in metas]
    val_keys = [m.key for m in metas if m.key not in extra and validates(m, cfg.val_fraction, cfg.validate_seeds)]
    train_keys = training_subset([m for m in metas if m.key not in set(val_keys)], cfg.train_policies,
                                 cfg.train_episodes, store.root, first=extra)  # fmt: skip
    train_set = set(train_keys)
    require_window([m.length for m in metas if m.key in train_set], wm_cfg.window, f"{store.root} (training episodes)")
    if rank == 0:
        if cfg.codec_from:
            reuse_codec(Path(cfg.codec_from), Path(cfg.out), cfg.codec_steps)
        codec = train_codec(cfg, wm_cfg.codec, store, train_keys, val_keys, device, progress)
        arrays, cache_meta = latent_cache(cfg, codec, store, keys, device, progress)
    if world > 1:
        torch.distributed.barrier()
    if rank != 0:
        codec = train_codec(cfg, wm_cfg.codec, store, train_keys, val_keys, device, False)
        arrays, cache_meta = EpisodeArrays.load(Path(cfg.out) / "latents.safetensors")
    index = {k: i for i, k in enumerate(arrays.keys)}
    train = arrays.subset([index[k] for k in train_keys])
    check_long_enough(train, wm_cfg.window, f"{store.root} (training episodes)")
    val = arrays.subset([index[k] for k in val_keys]) if val_keys else None
    data = Data(keys, train_keys, val_keys, sorted({m.task for m in metas}), sorted({m.policy for m in metas}),
                train, val, store.fingerprint())  # fmt: skip
    return codec, data


def training_pool(store: EpisodeStore, cfg: WMTrainConfig) -> tuple[list, set[str]]:
    """The episodes a run may use (train or validate), and those of held-out policies among them (on starts
    in `train_seeds`), which only ever train."""
    from wmeval.zoo import matches_any

    if cfg.train_seeds is None:
        return select_episodes(store, cfg.tasks, cfg.exclude_policies), set()
    lo, hi = cfg.train_seeds
    metas = [m for m in select_episodes(store, cfg.tasks)
             if not matches_any(m.policy, cfg.exclude_policies) or lo <= m.seed <= hi]  # fmt: skip
    return metas, {m.key for m in metas if matches_any(m.policy, cfg.exclude_policies)}


def training_subset(metas: list, policies: tuple[str, ...], n: int | None, where, first: set[str] = frozenset()
                    ) -> list[str]:  # fmt: skip
    """The training keys: episodes of `policies` (all when empty), at most `n` of them. The cap keeps the
    episodes `first` (e.g. a few rollouts of held-out policies), then the rest first in hash order, so a
    smaller subset is inside every larger one (a data-size curve adds data, it never swaps it)."""
    from wmeval.zoo import matches_any

    keys = [m.key for m in metas if not policies or matches_any(m.policy, policies)]
    if not keys:
        raise ValueError(f"{where}: no training episode of policies {', '.join(policies)} (--train-policies)")
    if n is not None and n < len(keys):
        order = sorted(keys, key=lambda k: (k not in first, hashlib.sha256(f"train:{k}".encode()).hexdigest()))
        keep = set(order[:n])
        keys = [k for k in keys if k in keep]
    return keys


def reuse_codec(src: Path, out: Path, codec_steps: int) -> None:
    """Start a run from another run's finished codec and latent cache (e.g. world models that differ only in
    the dynamics' seed), so the codec is trained and every episode encoded once. Copies, never moves."""
    if latest_step_dir(out / "codec") is not None:
        return
    last = latest_step_dir(src / "codec")
    if last is None or read_config(last)["step"] < codec_steps:
        raise ValueError(f"{src} has no codec trained for {codec_steps} steps to reuse; train it first")
    (out / "codec").mkdir(parents=True, exist_ok=True)
    tmp = out / "codec" / f".{last.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(last, tmp)
    tmp.rename(out / "codec" / last.name)
    if (src / "latents.safetensors").is_file() and not (out / "latents.safetensors").is_file():
        shutil.copyfile(src / "latents.safetensors", out / ".latents.safetensors.tmp")
        (out / ".latents.safetensors.tmp").rename(out / "latents.safetensors")
