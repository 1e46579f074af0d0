"""Data that crosses the seams: what a policy sees, where an episode starts, what one step returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Observation:
    """What a policy reads at one frame.

    images:     uint8[V, H, W, 3], V camera views, the frames the world model sees.
    state:      float32[S], proprioception.
    privileged: float[P] simulator state (object poses, goal) for scripted experts only; None in imagination.
    """

    images: np.ndarray
    state: np.ndarray
    privileged: np.ndarray | None = None


@dataclass(frozen=True)
class Start:
    """A seeded initial state that reality (and later imagination) can replay exactly."""

    suite: str
    task: str
    seed: int
    params: dict[str, Any] = field(default_factory=dict)  # suite-specific, e.g. MetaWorld's object/goal vector

    def to_json(self) -> dict[str, Any]:
        return {"suite": self.suite, "task": self.task, "seed": self.seed, "params": self.params}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Start:
        return cls(suite=d["suite"], task=d["task"], seed=int(d["seed"]), params=dict(d.get("params", {})))


@dataclass(frozen=True)
class StepInfo:
    """What one `step` reports beside the observation.

    success: reality: the simulator's success flag at any control step of the chunk; imagination: None.
    value:   imagination: the predicted task value; reality: None.
    """

    success: bool | None = None
    value: float | None = None
