"""Phase 1 of `wmeval train`: fit the frame codec on the store's frames, then encode every episode once."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from wmeval.checkpoint import load_optimizer, load_weights, read_config, save_checkpoint
from wmeval.data.safetensors_io import locate
from wmeval.data.store import EpisodeStore
from wmeval.data.windows import EpisodeArrays, cache_writer
from wmeval.model.codec import CodecConfig, FrameCodec, psnr_from_mse
from wmeval.model.value import value_labels
from wmeval.train.common import Logger, latest_step_dir


class FrameSampler:
    """Random frames of the given episodes; the batch depends only on (seed, step). Frames are read with
    plain file reads (nothing stays mapped), so memory does not grow with the number of episodes."""

    def __init__(self, store: EpisodeStore, keys: list[str], seed: int) -> None:
        self.frames = [locate(store.path(k), "frames") for k in keys]
        self.lengths = np.array([f.shape[0] for f in self.frames])
        self.seed = seed

    def batch(self, step: int, size: int) -> torch.Tensor:
        g = np.random.default_rng([self.seed, step, 7])
        eps = g.integers(0, len(self.frames), size)
        ts = (g.random(size) * self.lengths[eps]).astype(int)
        return torch.from_numpy(np.stack([self.frames[e].rows([t])[0] for e, t in zip(eps, ts, strict=True)]))


def train_codec(cfg, codec_cfg: CodecConfig, store: EpisodeStore, train_keys, val_keys, device, progress: bool):
    """Train (or resume, or skip if finished) the codec; returns it frozen, in eval mode."""
    out = Path(cfg.out) / "codec"
    codec = FrameCodec(codec_cfg).to(device)
    opt = torch.optim.AdamW(codec.parameters(), lr=cfg.codec_lr, weight_decay=0.0)
    start = 0
    last = latest_step_dir(out)
    if last is not None:
        codec.load_state_dict(load_weights(last))
        saved = read_config(last)
        start = saved["step"]
        if start < cfg.codec_steps:
            load_optimizer(opt, {k: v.to(device) for k, v in load_weights(last, "optim.safetensors").items()},
                           saved["optimizer"])  # fmt: skip
    if start < cfg.codec_steps:
        sampler = FrameSampler(store, train_keys, cfg.seed)
        val = FrameSampler(store, val_keys or train_keys, cfg.seed + 1)
        log = Logger(out, "codec", enabled=True)
        bar = tqdm(range(start, cfg.codec_steps), initial=start, total=cfg.codec_steps, desc="codec",
                   disable=not progress, dynamic_ncols=True)  # fmt: skip
        t0 = time.perf_counter()
        save_every = min(cfg.save_every, max(100, cfg.codec_steps // 5))  # an interrupted codec loses little
        for step in bar:
            frames = sampler.batch(step, cfg.codec_batch).to(device)
            loss, m = codec.loss(frames)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            done = step + 1
            bar.set_postfix(loss=f"{m['mse']:.4f}", psnr=f"{m['psnr']:.1f}", refresh=False)
            if done % cfg.eval_every == 0 or done == cfg.codec_steps:
                m["val_psnr"] = codec_psnr(codec, val, device)
                m["step_s"] = (time.perf_counter() - t0) / (done - start)
                log.scalars(done, m)
            if done % save_every == 0 or done == cfg.codec_steps:
                save_checkpoint(out / f"step_{done:06d}", {"kind": "codec", "codec": codec_cfg.to_json(), "step": done,
                                                           "val_psnr": m.get("val_psnr")}, codec, opt)  # fmt: skip
        bar.close()
        log.close()
    codec.eval().requires_grad_(False)
    return codec


@torch.no_grad()
def codec_psnr(codec: FrameCodec, sampler: FrameSampler, device, batches: int = 4, size: int = 64) -> float:
    codec.eval()
    mse = 0.0
    for i in range(batches):
        frames = sampler.batch(10_000 + i, size).to(device)
        recon = codec.decode(codec.encode(frames))
        mse += ((recon.clamp(-1, 1) - (frames.float() / 127.5 - 1)) ** 2).mean().item() / 4
    codec.train()
    return psnr_from_mse(mse / batches)


@torch.no_grad()
def encode_episodes(codec: FrameCodec, store: EpisodeStore, keys: list[str], path: Path, meta: dict, device,
                    value_scheme: str, progress: bool, reuse: EpisodeArrays | None = None) -> None:  # fmt: skip
    """Every frame of every episode through the frozen codec (raw, un-normalised latents), written to the
    latent cache at `path` one episode at a time: memory holds one episode, whatever the store's size.
    The episodes of `reuse` (an older cache of the same codec) are copied in first, not encoded again."""
    L, c = store.layout, codec.cfg
    done = list(reuse.keys) if reuse is not None else []
    lens = [int(n) for n in (reuse.lens if reuse is not None else [])] + [store.meta(k).length for k in keys]
    shapes = (len(L.views), c.latent_channels, c.grid, c.grid), (L.state_dim,), (L.frame_skip, L.action_dim)
    with cache_writer(path, lens, *shapes, meta, done + list(keys)) as put:
        for i in range(len(done)):
            put(i, reuse.episode(i), bool(reuse.outcome[i]))
        for i, k in enumerate(tqdm(keys, desc="encode", unit="ep", disable=not progress, dynamic_ncols=True),
                              start=len(done)):  # fmt: skip
            ep = store.load(k, verify=False)
            frames = torch.from_numpy(np.array(ep.frames))
            z = torch.cat([codec.encode(frames[j : j + 64].to(device)).float().cpu()
                           for j in range(0, len(frames), 64)])  # fmt: skip
            success = np.asarray(ep.success)
            value, flags = value_labels(success, value_scheme), success.astype(np.float32)
            if ep.meta.outcome is None:  # unknown: NaN labels, which the value and success losses skip
                value, flags = np.full_like(value, np.nan), np.full_like(flags, np.nan)
            put(i, {"latents": z.numpy(), "proprio": np.asarray(ep.proprio, np.float32),
                    "actions": np.asarray(ep.actions, np.float32), "value": value,
                    "success": flags}, bool(ep.meta.outcome))  # fmt: skip
