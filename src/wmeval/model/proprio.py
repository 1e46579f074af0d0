"""The proprio net: the robot's next proprio regressed from its recent motion, its actions and the frame.

A world model samples the next proprio with the frame, through the same few Euler steps of the flow, and
at the CPU preset's size its one-step proprio error is worse than assuming constant velocity; open loop the
hand drifts 2 cm after one frame and 6-9 cm by the end (docs/RESULTS.md). The robot's own state, though, is
nearly a deterministic function of what it did: how it has been moving, the chunk it executes now, and
contact, which the current frame shows. The proprio net regresses that map (an MLP, mean-squared error on
the world model's own training episodes, in its normalised units). In imagination (`WorldModel.proprio_with`)
it predicts each frame's proprio first, and the world model then samples the frame *given* that proprio
(its proprio tokens are held on the path to the predicted value at every Euler step), so the rendered arm
follows the predicted one. A policy that reads proprio sees the net's prediction.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class ProprioNetConfig:
    state_dim: int
    action_dim: int
    chunk_len: int
    latent_channels: int
    grid: int
    views: int
    history: int = 3  # past frames of motion and chunks it reads, besides the current ones
    pool: int = 2  # the current frame's latent is average-pooled by this factor
    hidden: int = 256
    noise: float = 0.1  # training: the frame seen at a signal level in [1 - noise, 1] (imagined frames are imperfect)

    def __post_init__(self) -> None:
        if self.history < 0 or self.grid % self.pool or not 0 <= self.noise < 1:
            raise ValueError(f"proprio net: history >= 0 (got {self.history}), grid {self.grid} divisible by pool "
                             f"{self.pool}, noise in [0, 1) (got {self.noise})")  # fmt: skip

    @property
    def inputs(self) -> int:
        H, S = self.history, self.state_dim
        frame = self.views * self.latent_channels * (self.grid // self.pool) ** 2
        return S + H * S + (H + 1) * self.chunk_len * self.action_dim + frame

    def to_json(self) -> dict:
        return asdict(self)


class ProprioNet(nn.Module):
    """Normalised proprio of the last H + 1 frames (B, H + 1, S), the chunks that led into the last H frames
    and the chunk executed now (B, H + 1, K, A), and the newest frame's normalised latents (B, V, C, h, w)
    -> the next frame's normalised proprio (B, S). Histories shorter than H (a rollout's first frames) are
    padded as a robot at rest: the first proprio repeated, zero actions (`pad_history`)."""

    def __init__(self, cfg: ProprioNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.net = nn.Sequential(nn.Linear(cfg.inputs, cfg.hidden), nn.GELU(), nn.Linear(cfg.hidden, cfg.hidden),
                                 nn.GELU(), nn.Linear(cfg.hidden, cfg.state_dim))  # fmt: skip
        # input and output scales, fitted on the training data before training (`fit_scales`)
        self.register_buffer("in_mean", torch.zeros(cfg.inputs))
        self.register_buffer("in_std", torch.ones(cfg.inputs))
        self.register_buffer("delta_std", torch.ones(cfg.state_dim))
        # the range of proprio seen in training: a robot's workspace and joint limits, which predictions keep to
        self.register_buffer("low", torch.full((cfg.state_dim,), -torch.inf))
        self.register_buffer("high", torch.full((cfg.state_dim,), torch.inf))

    def features(self, proprio: torch.Tensor, actions: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        """The raw input vector (B, inputs): current proprio, the H most recent proprio deltas, the chunks,
        the pooled frame."""
        motion = proprio[:, 1:] - proprio[:, :-1]
        frame = F.avg_pool2d(latents.flatten(1, 2), self.cfg.pool) if self.cfg.pool > 1 else latents.flatten(1, 2)
        return torch.cat([proprio[:, -1], motion.flatten(1), actions.flatten(1), frame.flatten(1)], dim=1)

    def fit_scales(self, x: torch.Tensor, delta: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> None:
        self.low.copy_(low)
        self.high.copy_(high)
        self.in_mean.copy_(x.mean(0))
        self.in_std.copy_(x.std(0).clamp_min(1e-4))
        self.delta_std.copy_(delta.std(0).clamp_min(1e-4))

    def step(self, x: torch.Tensor) -> torch.Tensor:
        """Raw features -> the predicted change of proprio, in units of `delta_std`."""
        return self.net((x - self.in_mean) / self.in_std)

    def forward(self, proprio: torch.Tensor, actions: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        nxt = proprio[:, -1] + self.step(self.features(proprio, actions, latents)) * self.delta_std
        return torch.maximum(torch.minimum(nxt, self.high), self.low)


def pad_history(proprio: torch.Tensor, actions: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The last `n` frames of proprio (B, T, S) and of the chunks that led into them (B, T, K, A), left-padded
    as a robot at rest when T < n (the first proprio repeated, zero chunks)."""
    T = proprio.shape[1]
    if T >= n:
        return proprio[:, -n:], actions[:, -n:]
    pad = n - T
    return (torch.cat([proprio[:, :1].expand(-1, pad, -1), proprio], 1),
            torch.cat([actions.new_zeros(actions.shape[0], pad, *actions.shape[2:]), actions], 1))  # fmt: skip


def load_proprio_net(path: str | Path, device: str | torch.device = "cpu") -> tuple[ProprioNet, dict]:
    """A trained proprio net and its checkpoint config (the world model it was trained for, metrics)."""
    from wmeval.checkpoint import load_module

    build = lambda c: ProprioNet(ProprioNetConfig(**c["proprio_net"]))  # noqa: E731
    return load_module(path, "proprio-net", build, "wmeval train-proprio", device)
