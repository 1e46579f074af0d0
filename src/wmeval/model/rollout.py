"""Batched rollouts of a world model: start from real context frames, then one action chunk at a time
(closed loop, `Imagination.step`) or all at once (open loop, `predict`)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from wmeval.model.dynamics import KVCache
from wmeval.model.flow import Generators
from wmeval.model.world_model import WorldModel


@dataclass
class Prediction:
    frames: torch.Tensor | None  # uint8 (B, H, V, H_px, W_px, 3); None when not decoded
    proprio: torch.Tensor  # (B, H, S), raw units
    value: torch.Tensor  # (B, H) the readout per predicted frame (WorldModel.readout)


class Imagination:
    """Incremental, batched rollout state: a KV cache over the frames seen so far."""

    def __init__(self, model: WorldModel, cache: KVCache, value: torch.Tensor) -> None:
        self.model, self.cache, self.value = model, cache, value

    @torch.no_grad()
    def step(self, action_chunk: torch.Tensor, generator: Generators = None, decode: bool = True) -> Prediction:
        """Apply one action chunk (B, K, A) to every rollout; returns the next frame (H = 1). With
        `decode=False` frames are not decoded to pixels (`frames` is None): value and proprio only."""
        z, p, v = self.model.next_frame(self.cache, action_chunk, generator)
        self.value = v
        frames = self.model.decode(z)[:, None] if decode else None
        return Prediction(frames, self.model.denorm_proprio(p)[:, None], v[:, None])


@torch.no_grad()
def begin(
    model: WorldModel, frames: torch.Tensor, proprio: torch.Tensor, actions: torch.Tensor | None = None,
    first_has_action: bool = False,
) -> Imagination:  # fmt: skip
    """Start rollouts from real context: frames uint8 (B, Tc, V, H, W, 3), proprio (B, Tc, S) raw, and the
    Tc - 1 chunks executed between them (B, Tc - 1, K, A). The first context frame is treated as an
    episode start unless `first_has_action`."""
    B, Tc = frames.shape[:2]
    dyn = model.cfg.dynamics
    dev = model.latent_mean.device
    z = torch.stack([model.encode(frames[:, t].to(dev)) for t in range(Tc)], dim=1)
    p = model.norm_proprio(proprio.to(dev).float())
    a_in = torch.zeros(B, Tc, dyn.chunk_len, dyn.action_dim, device=dev)
    if Tc > 1:
        a_in[:, 1:] = actions.to(dev).float()
    has = torch.ones(B, Tc, dtype=torch.bool, device=dev)
    has[:, 0] = first_has_action
    cache, readout = model.start(z, p, a_in, has)
    return Imagination(model, cache, readout[:, -1])


@torch.no_grad()
def predict(
    model: WorldModel, frames: torch.Tensor, proprio: torch.Tensor, actions: torch.Tensor,
    generator: torch.Generator | None = None,
) -> Prediction:  # fmt: skip
    """Open-loop prediction: context frames/proprio (B, Tc, ...) and actions (B, Tc - 1 + H, K, A) in the
    store's convention (actions[t] is executed after frame t) -> the H frames that follow."""
    Tc = frames.shape[1]
    im = begin(model, frames, proprio, actions[:, : Tc - 1])
    steps = [
        im.step(actions[:, t].to(model.latent_mean.device).float(), generator) for t in range(Tc - 1, actions.shape[1])
    ]
    return Prediction(*(torch.cat([getattr(s, f) for s in steps], dim=1) for f in ("frames", "proprio", "value")))
