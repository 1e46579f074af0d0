"""The `Reality` contract: a ground-truth environment that gives true success for any policy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

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


@dataclass(frozen=True)
class ObservationConfig:
    """How a simulated suite's episodes are observed: camera views, frame size in px, control steps per
    frame, control steps per episode. A suite subclasses it with its default views and its constants."""

    views: tuple[str, ...]
    image_size: int = 64
    frame_skip: int = 4
    max_steps: int = 200
    suite: ClassVar[str]
    cameras: ClassVar[tuple[str, ...]]
    action_dim: ClassVar[int]
    state_dim: ClassVar[int]
    control_hz: ClassVar[float]

    def __post_init__(self) -> None:
        if not self.views:
            raise ValueError("views must name at least one camera")
        for v in self.views:
            if v not in self.cameras:
                raise ValueError(f"unknown camera {v!r}; valid cameras: {', '.join(self.cameras)}")
        if not 16 <= self.image_size <= 512:
            raise ValueError(f"image_size must be in [16, 512], got {self.image_size}")
        if self.frame_skip < 1:
            raise ValueError(f"frame_skip must be >= 1, got {self.frame_skip}")
        if self.max_steps < self.frame_skip or self.max_steps % self.frame_skip:
            raise ValueError(
                f"max_steps ({self.max_steps}) must be a positive multiple of frame_skip ({self.frame_skip})"
            )

    def layout(self) -> Layout:
        return Layout(suite=self.suite, views=self.views, image_size=self.image_size, frame_skip=self.frame_skip,
                      horizon=self.max_steps // self.frame_skip, action_dim=self.action_dim,
                      state_dim=self.state_dim, control_hz=self.control_hz)  # fmt: skip


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


def fast_renderer(model, size: int):
    """A MuJoCo renderer without shadows, reflections or multisampling (several times faster, and
    the world model never needs them)."""
    import mujoco

    model.vis.quality.offsamples = 0  # read when the GL context is made, so set it first
    model.vis.global_.offwidth = max(model.vis.global_.offwidth, size)
    model.vis.global_.offheight = max(model.vis.global_.offheight, size)
    renderer = mujoco.Renderer(model, size, size)
    for flag in (mujoco.mjtRndFlag.mjRND_SHADOW, mujoco.mjtRndFlag.mjRND_REFLECTION, mujoco.mjtRndFlag.mjRND_SKYBOX):
        renderer.scene.flags[flag] = 0
    return renderer
