"""Train a proprio net (wmeval.model.proprio) for a trained world model, on that model's own latent cache: its
training episodes (never its validation episodes, never a held-out policy's) and normalisation. Validation:
the world model's validation episodes, one-step error in the store's units against constant velocity.
With `imagined`, the net reads the frames the world model imagines for its training episodes (open loop
from the first frame with the recorded actions, `wmeval.train.judge.imagine_arrays`) with their real
proprio: a rollout shows it imagined frames, and after contact those are what tell it the hand is blocked.

    wmeval train-proprio --model runs/bench-cpu/wm-heldout/model --out runs/bench-cpu/proprio [--imagined]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from wmeval.checkpoint import save_checkpoint
from wmeval.data.windows import EpisodeArrays, Normalisation
from wmeval.model.flow import interpolate
from wmeval.model.proprio import ProprioNet, ProprioNetConfig
from wmeval.train.common import link_latest, resolve_device
from wmeval.train.judge import imagine_arrays, judge_episodes


@dataclass(frozen=True)
class ProprioTrainConfig:
    model: str  # the world model whose latent cache, normalisation and training episodes the net uses
    out: str
    steps: int = 6000
    batch_size: int = 256
    lr: float = 1e-3
    history: int = 3
    hidden: int = 256
    noise: float = 0.1
    imagined: bool = False  # read the frames the world model imagines for its training episodes, not the real ones
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "hidden"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    def to_json(self) -> dict:
        return asdict(self)


class Transitions:
    """Every frame-to-frame transition of `arrays` with the H frames before it, padded at an episode's start as
    imagination pads it (`pad_history`: the first proprio repeated, zero chunks); normalised with `norm`."""

    def __init__(self, arrays: EpisodeArrays, H: int, norm: Normalisation) -> None:
        self.a, self.H, self.norm = arrays, H, norm
        ends = [(s, n) for s, n in zip(arrays.starts, arrays.lens, strict=True) if n > 1]
        if not ends:
            raise ValueError("a proprio net needs episodes of at least 2 frames")
        self.first = np.concatenate([np.full(n - 1, s) for s, n in ends])  # each transition's episode start
        self.now = np.concatenate([np.arange(s, s + n - 1) for s, n in ends])  # its current frame

    def batch(self, idx: np.ndarray, noise: float, g: torch.Generator):
        """Inputs (proprio (B, H + 1, S), chunks (B, H + 1, K, A), latents (B, V, C, h, w)) and target (B, S)."""
        first, now = self.first[idx], self.now[idx]
        back = now[:, None] + np.arange(-self.H, 1)[None]  # frames now - H .. now
        frames = torch.as_tensor(np.maximum(back, first[:, None]))
        into = torch.as_tensor(back[:, 1:] - 1)  # chunks into frames now - H + 1 .. now: executed after frame - 1
        chunks = self.a.actions[into.clamp_min(0)] * (into >= torch.as_tensor(first)[:, None])[..., None, None]
        chunks = torch.cat([chunks, self.a.actions[torch.as_tensor(now)][:, None]], 1)  # and the one executed now
        p = self.norm.proprio(self.a.proprio[frames])
        z = self.norm.latents(self.a.latents[torch.as_tensor(now)])
        if noise > 0:
            tau = 1 - noise * torch.rand(len(z), generator=g)
            z = interpolate(z, torch.randn(z.shape, generator=g), tau)
        return p, chunks, z, self.norm.proprio(self.a.proprio[torch.as_tensor(now + 1)])


def imagined_frames(real: EpisodeArrays, imagined: EpisodeArrays) -> EpisodeArrays:
    """The episodes of `real` with the latents the world model imagined for them (`imagine_arrays`); proprio
    and actions stay real: the net learns the real motion while reading imagined frames."""
    if imagined.keys != real.keys or not np.array_equal(imagined.lens, real.lens):
        raise ValueError("the imagined episodes do not match the real ones; delete the imagined cache and retry")
    proprio = torch.cat([real.proprio[s : s + n] for s, n in zip(real.starts, real.lens, strict=True)])
    return replace(imagined, proprio=proprio)


@torch.no_grad()
def validate(net: ProprioNet, data: Transitions, device) -> dict:
    """One-step mean absolute error per proprio dimension over every transition, in the store's units,
    against constant velocity."""
    net.eval()
    err, cv, std = [], [], data.norm.proprio_std
    for lo in range(0, len(data.now), 1024):
        p, a, z, target = data.batch(np.arange(lo, min(lo + 1024, len(data.now))), 0.0, None)
        pred = net(p.to(device), a.to(device), z.to(device)).cpu()
        err.append(((pred - target) * std).abs())
        cv.append(((2 * p[:, -1] - p[:, -2] - target) * std).abs() if p.shape[1] > 1 else err[-1])
    net.train()
    return {"val_mae": float(torch.cat(err).mean()), "val_mae_constant_velocity": float(torch.cat(cv).mean())}


def train_proprio(cfg: ProprioTrainConfig, progress: bool = True) -> Path:
    """Train the proprio net (minutes on one CPU thread); returns OUT/model. A finished run is reused."""
    from wmeval.model.world_model import load_world_model

    out = Path(cfg.out)
    if (out / "model").exists():
        from wmeval.checkpoint import read_config

        if read_config(out / "model").get("train") == cfg.to_json():
            return out / "model"
        raise ValueError(f"{out} holds a proprio net trained with other settings; use a new --out or delete {out}")
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    train, val, wm_meta = judge_episodes(cfg.model)
    wm, _ = load_world_model(cfg.model)
    if cfg.imagined:  # what a rollout shows the net: the model's open-loop imagination of the same episodes
        out.mkdir(parents=True, exist_ok=True)
        ident = {"model": str(cfg.model), "step": wm_meta.get("step")}
        train = imagined_frames(train, imagine_arrays(wm, train, out / "imagined-train.safetensors", ident, cfg.seed,
                                                      progress=progress))  # fmt: skip
    d, H = wm.cfg.dynamics, cfg.history
    pcfg = ProprioNetConfig(d.state_dim, d.action_dim, d.chunk_len, d.latent_channels, d.grid, d.views, H,
                            hidden=cfg.hidden, noise=cfg.noise)  # fmt: skip
    norm = Normalisation.of(wm)
    data = Transitions(train, H, norm)
    rng, g = np.random.default_rng(cfg.seed), torch.Generator().manual_seed(cfg.seed)
    p, a, z, target = data.batch(rng.integers(0, len(data.now), 8192), 0.0, g)
    net = ProprioNet(pcfg)
    every = norm.proprio(train.proprio[torch.as_tensor(train.frames())])  # its own episodes only
    net.fit_scales(net.features(p, a, z), target - p[:, -1], every.min(0).values, every.max(0).values)
    net = net.to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=1e-4)
    bar = tqdm(total=cfg.steps, desc="proprio net", disable=not progress, dynamic_ncols=True)
    for step in range(cfg.steps):
        for group in opt.param_groups:
            group["lr"] = cfg.lr * 0.5 * (1 + np.cos(np.pi * step / cfg.steps))  # cosine to 0
        idx = rng.integers(0, len(data.now), cfg.batch_size)
        p, a, z, target = (x.to(device) for x in data.batch(idx, cfg.noise, g))
        loss = (net.step(net.features(p, a, z)) - (target - p[:, -1]) / net.delta_std).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        bar.update(1)
        if step % 100 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
    bar.close()
    metrics = {"loss": loss.item()} | (validate(net, Transitions(val, H, norm), device) if val else {})
    meta = {"kind": "proprio-net", "proprio_net": pcfg.to_json(), "train": cfg.to_json(), "world_model": str(cfg.model),
            "world_model_step": wm_meta.get("step"), "step": cfg.steps, "metrics": metrics,
            "episodes": {"train": len(train.keys), "val": 0 if val is None else len(val.keys)}}  # fmt: skip
    save_checkpoint(out / f"step_{cfg.steps:06d}", meta, net.cpu())
    return link_latest(out / "model", out)
