"""Flow matching with an independent noise level per frame (diffusion forcing).

Convention (rectified flow, Liu et al. 2022; Lipman et al. 2023): tau in [0, 1] is the *signal* level,
    x_tau = tau * x1 + (1 - tau) * eps,     eps ~ N(0, I),   x1 = data,
and the model predicts the velocity v = dx_tau / dtau = x1 - eps. Sampling integrates from tau = 0
(pure noise) to tau = 1 (data). Every frame of a training window draws its own tau (Chen et al. 2024,
"Diffusion Forcing"), so the model learns to denoise a frame given past frames at any noise level,
including clean (tau = 1) ones: that is what autoregressive rollout from clean context needs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def sample_tau(shape: tuple[int, ...], p_clean: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Per-frame signal levels: uniform in [0, 1), and exactly 1 (clean) with probability p_clean."""
    tau = torch.rand(shape, generator=generator)
    clean = torch.rand(shape, generator=generator) < p_clean
    return torch.where(clean, torch.ones_like(tau), tau)


def interpolate(x1: torch.Tensor, eps: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """x_tau = tau x1 + (1 - tau) eps; `tau` broadcasts from the left (B, T) over trailing dims."""
    t = tau.reshape(*tau.shape, *([1] * (x1.dim() - tau.dim())))
    return t * x1 + (1 - t) * eps


def velocity_target(x1: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    return x1 - eps


def velocity_from_x(x_hat: torch.Tensor, x_tau: torch.Tensor, tau: torch.Tensor, floor: float = 0.1) -> torch.Tensor:
    """The velocity that carries x_tau to a predicted clean x_hat, (x_hat - x_tau) / (1 - tau); 1 - tau is
    floored at `floor` so nearly clean frames do not dominate a loss (below the floor it is a scaled x-loss)."""
    t = tau.reshape(*tau.shape, *([1] * (x_tau.dim() - tau.dim())))
    return (x_hat - x_tau) / (1 - t).clamp_min(floor)


def euler_schedule(steps: int) -> torch.Tensor:
    """Signal levels 0 = tau_0 < ... < tau_steps = 1 for a few-step Euler sampler."""
    return torch.linspace(0.0, 1.0, steps + 1)


Generators = torch.Generator | Sequence[torch.Generator] | None


def randn(shape: tuple[int, ...], generator: Generators, device: torch.device) -> torch.Tensor:
    """Standard normal noise drawn on the CPU (repeatable across devices); one generator per batch row
    when `generator` is a sequence."""
    if isinstance(generator, Sequence):
        if len(generator) != shape[0]:
            raise ValueError(f"{len(generator)} generators for a batch of {shape[0]}")
        return torch.cat([torch.randn((1, *shape[1:]), generator=g) for g in generator]).to(device)
    return torch.randn(shape, generator=generator).to(device)
