"""Value labels interpolated from each episode's binary outcome.

After Gokmen et al. 2023 ("Asking for help: failure prediction in behavioral cloning through value
approximation"): a state's value is how likely the episode is to end in success from there. Labels are
built from the outcome alone, so any episode with a success flag can train the value head.

Schemes (value in [0, 1] at each frame t of an episode of T frames):
- "linear" (default): a successful episode ramps linearly from `start` at t=0 to 1 at its first success
  frame and stays at 1; a failed one ramps from `start` down to 0 at its last frame. The midpoint `start`
  (0.5) says "not yet known" at the beginning, where success and failure look alike.
- "discounted": success: gamma^(t_s - t) before the first success t_s, 1 after; failure: 0 everywhere
  (a Monte-Carlo return with a terminal reward of 1 on success).
- "outcome": the outcome everywhere (1 or 0): the simplest classifier target.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

SCHEMES = ("linear", "discounted", "outcome")


def value_labels(success_T: np.ndarray, scheme: str = "linear", start: float = 0.5, gamma: float = 0.97) -> np.ndarray:
    """Per-frame value labels float32[T] from the per-frame success flags of one episode."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown value scheme {scheme!r}; valid schemes: {', '.join(SCHEMES)}")
    success_T = np.asarray(success_T, dtype=bool)
    T = len(success_T)
    t = np.arange(T, dtype=np.float64)
    hits = np.flatnonzero(success_T)
    if scheme == "outcome":
        return np.full(T, float(len(hits) > 0), np.float32)
    if not len(hits):  # failure
        if scheme == "discounted":
            return np.zeros(T, np.float32)
        return (start * (1 - t / max(T - 1, 1))).astype(np.float32)
    ts = hits[0]
    if scheme == "discounted":
        return np.where(t < ts, gamma ** (ts - t), 1.0).astype(np.float32)
    ramp = start + (1 - start) * t / max(ts, 1)
    return np.where(t < ts, ramp, 1.0).astype(np.float32)


def masked_bce(logits: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy weighted per frame; labels that are NaN (outcome unknown) weigh nothing."""
    known = torch.isfinite(labels)
    bce = F.binary_cross_entropy_with_logits(logits, torch.where(known, labels, 0.0), reduction="none")
    weight = weight * known
    return (bce * weight).sum() / weight.sum().clamp_min(1e-6)
