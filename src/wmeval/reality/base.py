"""The `Reality` contract: a ground-truth environment that gives true success for any policy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from wmeval.types import Observation, Start, StepInfo


@dataclass(frozen=True)
class Layout:
    """What a suite's episodes look like; stores, policies and world models must agree on it.

    Frames are seen every `frame_skip` control steps; the actions in between form one chunk of
    `frame_skip` actions. An episode has `horizon` chunks, hence `horizon + 1` frames.
    """

    suite: str
    views: tuple[str, ...]
    image_size: int
    frame_skip: int
    horizon: int
    action_dim: int
    state_dim: int
    control_hz: float

    @property
    def fps(self) -> float:
        return self.control_hz / self.frame_skip

    @property
    def n_frames(self) -> int:
        return self.horizon + 1

    def to_json(self) -> dict:
        return {
            "suite": self.suite,
            "views": list(self.views),
            "image_size": self.image_size,
            "frame_skip": self.frame_skip,
            "horizon": self.horizon,
            "action_dim": self.action_dim,
            "state_dim": self.state_dim,
            "control_hz": self.control_hz,
            "fps": self.fps,
        }

    @classmethod
    def from_json(cls, d: dict) -> Layout:
        return cls(
            suite=d["suite"],
            views=tuple(d["views"]),
            image_size=int(d["image_size"]),
            frame_skip=int(d["frame_skip"]),
            horizon=int(d["horizon"]),
            action_dim=int(d["action_dim"]),
            state_dim=int(d["state_dim"]),
            control_hz=float(d["control_hz"]),
        )


class RealityConfig(Protocol):
    """How a suite's episodes are observed (views, image size, frame skip, length): its `layout()`."""

    def layout(self) -> Layout: ...


@runtime_checkable
class Reality(Protocol):
    """A ground-truth environment for one task.

    `reset(start)` puts the world in the recorded initial state and returns the first observation.
    `step(chunk)` applies `chunk: float32[frame_skip, A]` at the control rate and returns the
    observation after it, whether the episode is over, and `StepInfo.success` (true success).
    Imagination implements the same interface, so a policy cannot tell the two apart.
    """

    layout: Layout
    task: str

    def start(self, seed: int) -> Start: ...

    def reset(self, start: Start) -> Observation: ...

    def step(self, chunk: np.ndarray) -> tuple[Observation, bool, StepInfo]: ...

    def close(self) -> None: ...
