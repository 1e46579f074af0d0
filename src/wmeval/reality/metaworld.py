"""MetaWorld (Sawyer arm, MuJoCo) as a ground-truth reality, rendered headless from fixed cameras."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from functools import cache
from typing import ClassVar

import numpy as np

from wmeval.reality.base import ObservationConfig, fast_renderer
from wmeval.types import Observation, Start, StepInfo

SUITE = "metaworld"
# Tasks of different character: grasp + transport, non-prehensile push, articulated pull/open, press, insertion.
DEFAULT_TASKS = ("pick-place", "push", "drawer-open", "door-open", "button-press-topdown", "assembly")
CAMERAS = ("corner", "corner2", "corner3", "corner4", "topview", "behindGripper", "gripperPOV")
CONTROL_HZ = 80.0  # MetaWorld: timestep 2.5 ms x 5 physics substeps per control step
ACTION_DIM = 4  # end-effector delta xyz + gripper effort, each in [-1, 1]
STATE_DIM = 4  # hand xyz + gripper opening
MOTION_DIMS, GRIP_DIMS = (0, 1, 2), (3,)  # the hand's xyz deltas move it; the effort closes the gripper

# MuJoCo picks its GL backend when first imported (metaworld imports it), so headless EGL must be
# chosen before any metaworld import. MUJOCO_GL=osmesa selects software rendering instead.
os.environ.setdefault("MUJOCO_GL", "egl")
if os.environ["MUJOCO_GL"] in ("egl", "osmesa"):
    os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])


@cache
def available_tasks() -> tuple[str, ...]:
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS

    return tuple(sorted(name.removesuffix("-v3") for name in ALL_V3_ENVIRONMENTS))


def check_task(task: str) -> str:
    if task not in available_tasks():
        raise ValueError(f"unknown MetaWorld task {task!r}; valid tasks: {', '.join(available_tasks())}")
    return task


@dataclass(frozen=True)
class MetaWorldConfig(ObservationConfig):
    """How MetaWorld episodes are observed. Defaults: one 64 px view, a frame every 4 control steps
    (20 fps), 200 control steps (2.5 s, 50 chunks) per episode."""

    views: tuple[str, ...] = ("corner",)
    suite: ClassVar[str] = SUITE
    cameras: ClassVar[tuple[str, ...]] = CAMERAS
    action_dim: ClassVar[int] = ACTION_DIM
    state_dim: ClassVar[int] = STATE_DIM
    control_hz: ClassVar[float] = CONTROL_HZ


class MetaWorldReality:
    """One MetaWorld task as a `Reality`. Not thread-safe; make one per process."""

    def __init__(self, task: str, config: MetaWorldConfig | None = None) -> None:
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE

        self.task = check_task(task)
        self.config = config or MetaWorldConfig()
        self.layout = self.config.layout()
        self._env = ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE[f"{task}-v3-goal-observable"]()
        self._env.max_path_length = 10**9  # the horizon is ours to enforce
        self._renderer = fast_renderer(self._env.model, self.config.image_size)
        self._obs: np.ndarray | None = None
        self._steps = 0

    def start(self, seed: int) -> Start:
        """The initial state MetaWorld draws for `seed` (object and goal positions)."""
        env = self._env
        env._freeze_rand_vec, env.seeded_rand_vec = False, True
        env.seed(int(seed))
        env.reset()  # samples (and, for some tasks, re-samples until valid) the object/goal vector
        rand_vec = np.asarray(env._last_rand_vec, dtype=np.float64)
        return Start(SUITE, self.task, int(seed), {"rand_vec": rand_vec.tolist()})

    def reset(self, start: Start) -> Observation:
        if start.suite != SUITE or start.task != self.task:
            raise ValueError(f"start is for {start.suite}/{start.task}, this reality is {SUITE}/{self.task}")
        env = self._env
        env._last_rand_vec = np.asarray(start.params["rand_vec"], dtype=np.float64)
        env._freeze_rand_vec = True
        env.seed(start.seed)
        self._obs, _ = env.reset()
        self._steps = 0
        return self._observe()

    def step(self, chunk: np.ndarray) -> tuple[Observation, bool, StepInfo]:
        if self._obs is None:
            raise RuntimeError("call reset(start) before step()")
        expected = (self.layout.frame_skip, ACTION_DIM)
        if chunk.shape != expected:
            raise ValueError(f"action chunk must have shape {expected}, got {chunk.shape}")
        if not np.all(np.isfinite(chunk)):
            raise ValueError("action chunk contains NaN or inf")
        success = False
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # MetaWorld warns on clipped actions at every step
            for action in np.clip(chunk, -1.0, 1.0):
                self._obs, _, _, _, info = self._env.step(action)
                success |= bool(info["success"])
        self._steps += len(chunk)
        done = self._steps >= self.config.max_steps
        return self._observe(), done, StepInfo(success=success)

    def _observe(self) -> Observation:
        images = np.empty((len(self.config.views), self.config.image_size, self.config.image_size, 3), np.uint8)
        for i, camera in enumerate(self.config.views):
            self._renderer.update_scene(self._env.data, camera=camera)
            images[i] = self._renderer.render()[::-1]  # MetaWorld's cameras render upside down
        obs = self._obs
        return Observation(images=images, state=obs[:STATE_DIM].astype(np.float32), privileged=obs.copy())

    def close(self) -> None:
        self._renderer.close()
        self._env.close()
