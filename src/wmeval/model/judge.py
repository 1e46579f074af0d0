"""The judge: an imagined episode's value read from the rendered state alone, never from the actions.

The dynamics' value head reads a token conditioned on the action chunk that led into its frame, and
attends to earlier frames conditioned the same way, so it could judge *the actor* (what a good policy's
actions look like) instead of the consequences the world model renders. The judge cannot: it sees only
what a camera and the robot's joints would, the normalised latents and proprio of the last `frames`
frames, and predicts the same value target as the value head (will this episode succeed?). Trained post
hoc on a world model's latent cache (`wmeval train-judge`), it reads the model's imagined frames at
evaluation (`wmeval evaluate --judge`), so a verdict depends on nothing but the rendered frames. Measured
on the CPU headline (docs/RESULTS.md): it ranks like the value head, so what limits ranking there is what
the world model renders, not who reads it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from einops import rearrange
from torch import nn


@dataclass(frozen=True)
class JudgeConfig:
    latent_channels: int
    grid: int
    views: int
    patch: int
    state_dim: int
    d_model: int = 64
    depth: int = 2
    heads: int = 2
    frames: int = 4  # the newest frames it reads
    noise: float = 0.1  # training: each frame seen at a signal level in [1 - noise, 1] (imagined frames are imperfect)

    def __post_init__(self) -> None:
        if self.grid % self.patch or self.frames < 1 or not 0 <= self.noise < 1:
            raise ValueError(f"judge: grid {self.grid} must be divisible by patch {self.patch}, frames >= 1 "
                             f"(got {self.frames}) and noise in [0, 1) (got {self.noise})")  # fmt: skip

    def to_json(self) -> dict:
        return asdict(self)


class Judge(nn.Module):
    """Tokens of the last T <= `frames` frames (latent patches + one proprio token each, with a position within
    the frame and an age: how many frames before the newest), full attention, the newest frame's proprio
    token -> a value logit."""

    def __init__(self, cfg: JudgeConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d, p = cfg.d_model, cfg.patch
        n = cfg.views * (cfg.grid // p) ** 2 + 1
        self.patch_in = nn.Linear(cfg.latent_channels * p * p, d)
        self.proprio_in = nn.Linear(cfg.state_dim, d)
        self.pos = nn.Parameter(torch.randn(1, 1, n, d) * 0.02)
        self.age = nn.Parameter(torch.randn(1, cfg.frames, 1, d) * 0.02)
        layer = nn.TransformerEncoderLayer(d, cfg.heads, 4 * d, dropout=0.0, activation="gelu", batch_first=True,
                                           norm_first=True)  # fmt: skip
        self.encoder = nn.TransformerEncoder(layer, cfg.depth, enable_nested_tensor=False)
        self.out = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, 1))

    def forward(self, latents: torch.Tensor, proprio: torch.Tensor) -> torch.Tensor:
        """Normalised latents (B, T, V, C, h, w) and proprio (B, T, S), oldest first -> the newest frame's value
        logit (B,). Only the last `frames` frames are read."""
        latents, proprio = latents[:, -self.cfg.frames :], proprio[:, -self.cfg.frames :]
        T, p = latents.shape[1], self.cfg.patch
        patches = rearrange(latents, "b t v c (h p1) (w p2) -> b t (v h w) (c p1 p2)", p1=p, p2=p)
        x = torch.cat([self.patch_in(patches), self.proprio_in(proprio)[:, :, None]], dim=2)
        x = x + self.pos + self.age[:, torch.arange(T - 1, -1, -1, device=x.device)]
        return self.out(self.encoder(x.flatten(1, 2))[:, -1]).squeeze(-1)


def load_judge(path: str | Path, device: str | torch.device = "cpu") -> tuple[Judge, dict]:
    """A trained judge and its checkpoint config (the world model it was trained for, training metrics)."""
    from wmeval.checkpoint import load_module

    return load_module(path, "judge", lambda c: Judge(JudgeConfig(**c["judge"])), "wmeval train-judge", device)
