"""`wmeval quality`: how well a trained world model predicts held-out episodes, open loop.

From the first `context` real frames of each held-out episode, the logged actions are replayed in the
model. Reported against the real episode: PSNR and SSIM of the frames and proprio error as a function of
the horizon, and how well the value head separates successes from failures (AUROC), read both on the
real frames and on the imagined final frame.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from wmeval.data.store import EpisodeStore, atomic_write_text
from wmeval.metrics import auroc, psnr, ssim
from wmeval.model.world_model import WorldModel, load_world_model, predict


def held_out_keys(meta: dict, store: EpisodeStore) -> list[str]:
    """The model's validation episodes when evaluated on its own store, else every episode of the given
    store (the checkpoint records only its validation keys, so another store is assumed to be unseen)."""
    if Path(meta["data"]["store"]).resolve() == store.root.resolve():
        return list(meta["data"]["val_keys"])
    return store.keys()


@torch.no_grad()
def last_frame_value(model: WorldModel, episodes) -> torch.Tensor:
    """The readout (value or success head) on the real (clean, teacher-forced) last `window` frames of each
    episode: (B,)."""
    W = model.cfg.window
    frames = torch.from_numpy(np.stack([np.array(e.frames[-W:]) for e in episodes]))
    proprio = torch.from_numpy(np.stack([np.array(e.proprio[-W:]) for e in episodes]))
    a_in = torch.from_numpy(np.stack([np.array(e.actions[-W - 1 : -1]) for e in episodes]))
    B, T = frames.shape[:2]
    has = torch.ones(B, T, dtype=torch.bool)
    if a_in.shape[1] < T:  # an episode no longer than the window: its first frame has no action into it
        a_in = torch.cat([torch.zeros_like(a_in[:, :1]), a_in], dim=1)
        has[:, 0] = False
    z, p = torch.stack([model.encode(frames[:, t]) for t in range(T)], 1), model.norm_proprio(proprio.float())
    prev = tuple(torch.cat([torch.zeros_like(x[:, :1]), x[:, :-1]], 1) for x in (z, p))  # frame t - 1 (zeros first)
    out = model.dynamics(z, p, a_in.float(), has, torch.ones(B, T), prev=prev)
    return model.readout(out)[:, -1]


def evaluate_quality(model_path: str, store_path: str | None = None, episodes: int = 64, horizon: int = 32,
                     batch: int = 16, seed: int = 0, videos: int = 4, out: str | None = None,
                     progress: bool = True) -> dict:  # fmt: skip
    model, meta = load_world_model(model_path)
    store = EpisodeStore(store_path or meta["data"]["store"])
    keys = held_out_keys(meta, store)[:episodes]
    if not keys:
        raise ValueError(f"no held-out episodes to evaluate in {store.root}; train with --val-fraction > 0")
    Tc = model.cfg.context
    H = min(horizon, min(store.meta(k).length for k in keys) - Tc)
    if H < 1:
        raise ValueError(f"episodes are too short for {Tc} context frames plus a horizon of 1")
    g = torch.Generator().manual_seed(seed)
    ps, ss, pe, v_img, v_last, outcomes, samples = [], [], [], [], [], [], []
    base_ps, base_pe = [], []  # "nothing moves": the last context frame and proprio, repeated
    for i in tqdm(range(0, len(keys), batch), desc="quality", disable=not progress):
        eps = [store.load(k) for k in keys[i : i + batch]]
        frames = torch.from_numpy(np.stack([np.array(e.frames[: Tc + H]) for e in eps]))
        proprio = torch.from_numpy(np.stack([np.array(e.proprio[: Tc + H]) for e in eps]))
        actions = torch.from_numpy(np.stack([np.array(e.actions[: Tc + H - 1]) for e in eps]))
        pred = predict(model, frames[:, :Tc], proprio[:, :Tc], actions, g)
        real = frames[:, Tc:]
        B, V = real.shape[0], real.shape[2]
        flat = lambda x: x.flatten(0, 2)  # noqa: E731  (B, H, V, ...) -> (B*H*V, ...)
        ps.append(psnr(flat(pred.frames), flat(real)).view(B, H, V).mean(-1))
        ss.append(ssim(flat(pred.frames), flat(real)).view(B, H, V).mean(-1))
        pe.append((pred.proprio - proprio[:, Tc:]).abs().mean(-1))
        still = frames[:, Tc - 1 : Tc].expand_as(real)
        base_ps.append(psnr(flat(still.contiguous()), flat(real)).view(B, H, V).mean(-1))
        base_pe.append((proprio[:, Tc - 1 : Tc] - proprio[:, Tc:]).abs().mean(-1))
        v_img.append(pred.value[:, -1])
        v_last.append(last_frame_value(model, eps))
        outcomes += [e.meta.outcome for e in eps]
        if len(samples) < videos:
            samples.append((real[: videos - len(samples)], pred.frames[: videos - len(samples)]))
    psnr_h, ssim_h, prop_h, bpsnr_h, bprop_h = (torch.cat(x).mean(0) for x in (ps, ss, pe, base_ps, base_pe))
    at = [h for h in (1, 8, 32) if h <= H]
    y = np.array(outcomes)
    report = {
        "model": str(model_path), "store": str(store.root), "episodes": len(keys), "context": Tc, "horizon": H,
        "successes": int(y.sum()),
        "psnr": {h: float(psnr_h[h - 1]) for h in at}, "ssim": {h: float(ssim_h[h - 1]) for h in at},
        "proprio_mae": {h: float(prop_h[h - 1]) for h in at},
        "still_baseline": {"psnr": {h: float(bpsnr_h[h - 1]) for h in at},
                           "proprio_mae": {h: float(bprop_h[h - 1]) for h in at}},
        "value_auroc_real_last_frame": auroc(torch.cat(v_last).numpy(), y),
        "value_auroc_imagined_final_frame": auroc(torch.cat(v_img).numpy(), y),
        "psnr_by_horizon": psnr_h.tolist(), "ssim_by_horizon": ssim_h.tolist(),
        "proprio_mae_by_horizon": prop_h.tolist(),
    }  # fmt: skip
    if out:
        outp = Path(out)
        atomic_write_text(outp / "quality.json", json.dumps(report, indent=2) + "\n")
        write_side_by_side(outp, samples, fps=meta["layout"]["fps"])
    return report


def write_side_by_side(out: Path, samples, fps: float) -> None:
    """GIFs of real | imagined for a few episodes (first view)."""
    import imageio.v2 as imageio

    n = 0
    for real, imag in samples:
        for r, m in zip(real, imag, strict=True):
            frames = torch.cat([r[:, 0], m[:, 0]], dim=2).numpy()  # (H, Hpx, 2*Wpx, 3)
            frames = frames.repeat(2, axis=1).repeat(2, axis=2)
            imageio.mimsave(out / f"real_vs_imagined_{n:02d}.gif", list(frames), duration=1 / fps, loop=0)
            n += 1
