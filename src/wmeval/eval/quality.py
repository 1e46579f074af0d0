"""`wmeval quality`: how well a trained world model predicts held-out episodes, open loop.

From the first `context` real frames of each held-out episode, the logged actions are replayed in the
model. Reported against the real episode: PSNR and SSIM of the frames and proprio error as a function of
the horizon, and how well the value head separates successes from failures (AUROC), read both on the
real frames and on the imagined final frame.

Where a model loses an episode's outcome (`--policies` picks the episodes, e.g. the judged policies'):
- the readout (success or value head) over whole episodes, teacher-forced on the real frames against open
  loop from the first frame (AUROC of its maximum and final value, per task): a low first number is the
  readout, a drop from the first to the second is the dynamics;
- one-step prediction from `window - 1` real frames against two baselines that ignore the actions, the
  previous frame repeated ("still") and, for proprio, constant velocity: a model worse than them cannot
  hold a scene or a hand trajectory over a rollout.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from wmeval.data.store import EpisodeStore, atomic_write_text
from wmeval.eval.videos import write_gif
from wmeval.metrics import auroc, psnr, sharpness, ssim
from wmeval.model.flow import euler_schedule
from wmeval.model.rollout import predict
from wmeval.model.world_model import WorldModel, load_world_model
from wmeval.zoo import matches_any

MOVED = 25  # a pixel moved if a channel changed by more than this (of 255) since the last context frame


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


def select_keys(meta: dict, store: EpisodeStore, policies: tuple[str, ...] | None, episodes: int) -> list[str]:
    """`episodes` keys spread evenly over the held-out episodes, or over the episodes of `policies` (names or
    glob patterns) on the model's tasks."""
    if not policies:
        keys = held_out_keys(meta, store)
    else:
        tasks = set(meta["data"]["tasks"])
        keys = sorted(m.key for m in store.index() if m.task in tasks and matches_any(m.policy, policies))
        if not keys:
            raise ValueError(f"no episode of {', '.join(policies)} on {', '.join(sorted(tasks))} in {store.root}")
    if len(keys) > episodes:
        keys = [keys[int(i * len(keys) / episodes)] for i in range(episodes)]
    return keys


def evaluate_quality(model_path: str, store_path: str | None = None, episodes: int = 64, horizon: int = 32,
                     batch: int = 16, seed: int = 0, videos: int = 4, out: str | None = None,
                     policies: tuple[str, ...] | None = None, progress: bool = True) -> dict:  # fmt: skip
    model, meta = load_world_model(model_path)
    store = EpisodeStore(store_path or meta["data"]["store"])
    keys = select_keys(meta, store, policies, episodes)
    if not keys:
        raise ValueError(f"no held-out episodes to evaluate in {store.root}; train with --val-fraction > 0")
    Tc = model.cfg.context
    H = min(horizon, min(store.meta(k).length for k in keys) - Tc)
    if H < 1:
        raise ValueError(f"episodes are too short for {Tc} context frames plus a horizon of 1")
    g = torch.Generator().manual_seed(seed)
    ps, ss, pe, v_img, v_last, outcomes, samples = [], [], [], [], [], [], []
    base_ps, base_pe = [], []  # "nothing moves": the last context frame and proprio, repeated
    sharp_img, sharp_real, sharp_codec = [], [], []  # detail kept: imagined, real, real through the codec
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
        moved = flat((real.int() - still.int()).abs().amax(-1) > MOVED)  # where reality changed since the context
        with torch.no_grad():
            through = model.decode(model.encode(real.flatten(0, 1))).view_as(real)
        for acc, x in ((sharp_img, pred.frames), (sharp_real, real), (sharp_codec, through)):
            acc.append(sharpness(flat(x), moved).view(B, H, V).mean(-1))
        base_ps.append(psnr(flat(still.contiguous()), flat(real)).view(B, H, V).mean(-1))
        base_pe.append((proprio[:, Tc - 1 : Tc] - proprio[:, Tc:]).abs().mean(-1))
        v_img.append(pred.value[:, -1])
        v_last.append(last_frame_value(model, eps))
        outcomes += [e.meta.outcome for e in eps]
        if len(samples) < videos:
            samples.append((real[: videos - len(samples)], pred.frames[: videos - len(samples)]))
    psnr_h, ssim_h, prop_h, bpsnr_h, bprop_h = (torch.cat(x).mean(0) for x in (ps, ss, pe, base_ps, base_pe))
    real_sharp = torch.cat(sharp_real).mean(0)  # 0 where nothing moved yet in any episode: no ratio (None)
    sharp_h = [float(a / b) if b > 0 else None for a, b in zip(torch.cat(sharp_img).mean(0), real_sharp, strict=True)]
    codec_sharp = float(torch.cat(sharp_codec).mean() / real_sharp.mean()) if real_sharp.mean() > 0 else None
    at = [h for h in (1, 8, 32) if h <= H]
    known = np.array([o is not None for o in outcomes])  # imported episodes may have no outcome
    y = np.array([bool(o) for o in outcomes])
    report = {
        "model": str(model_path), "store": str(store.root), "episodes": len(keys), "context": Tc, "horizon": H,
        "successes": int(y.sum()),
        "psnr": {h: float(psnr_h[h - 1]) for h in at}, "ssim": {h: float(ssim_h[h - 1]) for h in at},
        "proprio_mae": {h: float(prop_h[h - 1]) for h in at},
        # imagined / real sharpness where reality moved (1: as much detail), and what the codec's round trip keeps
        "sharpness": {h: sharp_h[h - 1] for h in at}, "sharpness_codec": codec_sharp,
        "still_baseline": {"psnr": {h: float(bpsnr_h[h - 1]) for h in at},
                           "proprio_mae": {h: float(bprop_h[h - 1]) for h in at}},
        "value_auroc_real_last_frame": auroc(torch.cat(v_last).numpy()[known], y[known]),
        "value_auroc_imagined_final_frame": auroc(torch.cat(v_img).numpy()[known], y[known]),
        "psnr_by_horizon": psnr_h.tolist(), "ssim_by_horizon": ssim_h.tolist(),
        "proprio_mae_by_horizon": prop_h.tolist(), "sharpness_by_horizon": sharp_h,
        "policies": list(policies or []),
        "readout": readout_report(model, store, keys, batch, seed, progress),
        "one_step": one_step_report(model, store, keys, batch, seed),
    }  # fmt: skip
    if out:
        outp = Path(out)
        atomic_write_text(outp / "quality.json", json.dumps(report, indent=2) + "\n")
        write_side_by_side(outp, samples, fps=meta["layout"]["fps"])
    return report


@torch.no_grad()
def real_readouts(model: WorldModel, store: EpisodeStore, keys: list[str], batch: int) -> np.ndarray:
    """The readout of every frame of each episode on its real frames, teacher-forced through the same
    sliding cache a rollout uses: float[N, T] (a shorter episode's row is padded with its last value).
    Episodes are batched by length."""
    lengths = [store.meta(k).length for k in keys]
    out = np.zeros((len(keys), max(lengths)), np.float32)
    dyn, dev = model.cfg.dynamics, model.latent_mean.device
    order = sorted(range(len(keys)), key=lambda i: lengths[i])
    while order:
        n = lengths[order[0]]
        idx = [i for i in order[:batch] if lengths[i] == n]
        order = order[len(idx) :]
        eps = [store.load(keys[i], verify=False) for i in idx]
        frames = torch.from_numpy(np.stack([np.array(e.frames) for e in eps])).to(dev)
        z = torch.stack([model.encode(frames[:, t]) for t in range(n)], 1)
        p = model.norm_proprio(torch.from_numpy(np.stack([np.array(e.proprio) for e in eps])).float().to(dev))
        a_in = torch.zeros(len(eps), n, dyn.chunk_len, dyn.action_dim, device=dev)
        a_in[:, 1:] = torch.from_numpy(np.stack([np.array(e.actions[: n - 1]) for e in eps])).float()
        has = torch.ones(len(eps), n, dtype=torch.bool, device=dev)
        has[:, 0] = False
        r = model.start(z, p, a_in, has)[1].float().cpu().numpy()
        out[idx, :n], out[idx, n:] = r, r[:, -1:]
    return out


def readout_report(model: WorldModel, store: EpisodeStore, keys: list[str], batch: int, seed: int,
                   progress: bool) -> dict:  # fmt: skip
    """AUROC of the readout's maximum and final value over whole episodes, on the real frames and open loop
    from the first frame, overall and per task."""
    from wmeval.eval.success import replay_values

    metas = [store.meta(k) for k in keys]
    real = real_readouts(model, store, keys, batch)
    imagined = replay_values(model, store, metas, batch_size=batch, seed=seed, progress=progress)
    lengths = np.array([m.length for m in metas])
    stats = {"max": lambda v: v.max(1), "final": lambda v: v[np.arange(len(v)), lengths - 1]}
    y = np.array([bool(m.outcome) for m in metas])
    known = np.array([m.outcome is not None for m in metas])
    groups = {"all": known}
    groups |= {t: known & np.array([m.task == t for m in metas]) for t in sorted({m.task for m in metas})}
    report = {}
    for group, sel in groups.items():
        row = {"episodes": int(sel.sum()), "successes": int(y[sel].sum())}
        for name, values in (("real", real), ("imagined", imagined)):
            for stat, f in stats.items():
                row[f"{name}_{stat}"] = auroc(f(values)[sel], y[sel])
        report[group] = row
    return report


@torch.no_grad()
def one_step_report(model: WorldModel, store: EpisodeStore, keys: list[str], batch: int, seed: int) -> dict:
    """One-step prediction of frame t from the `window - 1` real frames before it (every 8th t), against the
    previous frame repeated and, for proprio, constant velocity. Latent MSE in normalised units; proprio
    MAE in the store's units."""
    W, dev = model.cfg.window, model.latent_mean.device
    g = torch.Generator().manual_seed(seed)
    sums: dict[str, list[float]] = {k: [] for k in ("latent_mse", "latent_mse_still", "proprio_mae",
                                                    "proprio_mae_still", "proprio_mae_constant_velocity")}  # fmt: skip
    for i in range(0, len(keys), batch):
        eps = [store.load(k, verify=False) for k in keys[i : i + batch]]
        for end in range(W, min(len(e.frames) for e in eps), 8):
            sl = slice(end - W, end + 1)  # W + 1 frames: frame end - W is the first frame's previous frame
            frames = torch.from_numpy(np.stack([np.array(e.frames[sl]) for e in eps])).to(dev)
            z = torch.stack([model.encode(frames[:, t]) for t in range(W + 1)], 1)
            p_raw = torch.from_numpy(np.stack([np.array(e.proprio[sl]) for e in eps])).float().to(dev)
            p = model.norm_proprio(p_raw)
            a_in = torch.from_numpy(np.stack([np.array(e.actions[end - W : end]) for e in eps])).float().to(dev)
            prev, (z, p) = (z[:, :-1], p[:, :-1]), (z[:, 1:], p[:, 1:])
            has = torch.ones(len(eps), W, dtype=torch.bool, device=dev)
            zz, pp = z.clone(), p.clone()
            zz[:, -1] = torch.randn(zz[:, -1].shape, generator=g).to(dev)
            pp[:, -1] = torch.randn(pp[:, -1].shape, generator=g).to(dev)
            taus = euler_schedule(model.cfg.sample_steps)
            for t0, t1 in zip(taus[:-1], taus[1:], strict=True):
                tau = torch.ones(len(eps), W, device=dev)
                tau[:, -1] = float(t0)
                out = model.dynamics(zz, pp, a_in, has, tau, prev=prev)
                zz[:, -1] += (t1 - t0) * out.latent_velocity[:, -1]
                pp[:, -1] += (t1 - t0) * out.proprio_velocity[:, -1]
            real_p = p_raw[:, -1]
            sums["latent_mse"].append(float((zz[:, -1] - z[:, -1]).pow(2).mean()))
            sums["latent_mse_still"].append(float((z[:, -2] - z[:, -1]).pow(2).mean()))
            sums["proprio_mae"].append(float((model.denorm_proprio(pp[:, -1]) - real_p).abs().mean()))
            sums["proprio_mae_still"].append(float((p_raw[:, -2] - real_p).abs().mean()))
            sums["proprio_mae_constant_velocity"].append(float((2 * p_raw[:, -2] - p_raw[:, -3] - real_p).abs().mean()))
    return {k: float(np.mean(v)) if v else float("nan") for k, v in sums.items()}


def write_side_by_side(out: Path, samples, fps: float) -> None:
    """GIFs of real | imagined for a few episodes (first view)."""
    n = 0
    for real, imag in samples:
        for r, m in zip(real, imag, strict=True):
            frames = torch.cat([r[:, 0], m[:, 0]], dim=2).numpy()  # (H, Hpx, 2*Wpx, 3)
            frames = frames.repeat(2, axis=1).repeat(2, axis=2)
            write_gif(out / f"real_vs_imagined_{n:02d}.gif", frames, fps)
            n += 1
