"""A mounted humanoid at a table (MuJoCo, built in code) as a ground-truth reality.

The robot (about 1.6 m tall, facing +x, its left is +y) has its pelvis welded to the world: balance is
out of scope, so the legs (hip pitch, knee, ankle pitch) are held at a standing pose by position servos
that are not part of the action. Everything above the pelvis is commanded: a waist (yaw, pitch), a head
(pan, tilt) carrying the egocentric `head` camera, and two 5-joint arms (shoulder pitch, roll, yaw,
elbow, wrist) ending in parallel two-finger grippers. The robot's bodies are gravity-compensated, so a
held joint target really holds. The scene is primitives only (capsules, boxes, cylinders, a plane).

Action, float32[16] in [-1, 1] (`ACTION_NAMES`):
  0-1   waist yaw, waist pitch (positive bends forward)
  2-3   head pan, head tilt (positive looks down)
  4-8   left arm: shoulder pitch (positive raises forward), shoulder roll (positive abducts), shoulder
        yaw, elbow (positive flexes), wrist (positive flexes)
  9-13  right arm, mirrored: the same action on both arms moves them symmetrically
  14-15 left gripper, right gripper
Dims 0-13 are deltas of the joint-position targets: target += a * MAX_DELTA (radians per control
step), clipped to the joint's range, so a zero action holds the pose. Gripper dims are absolute like
MetaWorld's last dim: > 0 closes, <= 0 opens. Fingers squeeze with a limited force (`GRIP_FORCE`).

Proprio (`Observation.state`, float32[16], `STATE_NAMES`): the measured positions of the 14 commanded
joints, then the opening of each gripper (the gap between its fingers, metres).

Privileged (`Observation.privileged`, float64, for scripted experts; see `unpack_privileged`):
  qpos (model.nq) | qvel (model.nv) | joint targets (14) | gripper commands (2, 1 = closed)
  | object position (3) | object quaternion (4, wxyz) | goal position (3)
The object is the button cap (button-press) or the box; the goal is the button housing, the goal
patch's centre (box-push) or the box's start position raised to the success height (box-lift).

Tasks: `button-press` (press a button at the far side of the table with the right hand: out of the arm's
reach from the upright pose, so the waist must bend), `box-push` (push a box into a goal patch with the
right hand), `box-lift` (grip the two handles of a box, one per hand, and lift it; one hand's grip
alone cannot hold its weight). Control runs at 50 Hz (4 ms physics step x 5 substeps).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from wmeval.reality.base import ObservationConfig, fast_renderer
from wmeval.reality.humanoid_scene import (  # importing it chooses headless rendering before mujoco loads
    BUTTON_PRESSED,
    FINGER_OPEN,
    GOAL_RADIUS,
    JOINTS,
    LIFT_BOX_HALF,
    LIFT_HEIGHT,
    PUSH_BOX_HALF,
    READY,
    TABLE_TOP,
    TIMESTEP,
    build_model,
    check_task,
)
from wmeval.reality.humanoid_scene import DEFAULT_TASKS as DEFAULT_TASKS  # re-exported: the suite's face
from wmeval.reality.humanoid_scene import available_tasks as available_tasks
from wmeval.types import Observation, Start, StepInfo

SUITE = "humanoid"
CAMERAS = ("head", "front")
SUBSTEPS = 5  # physics steps per control step
CONTROL_HZ = 1.0 / (TIMESTEP * SUBSTEPS)  # 50 Hz
MAX_DELTA = 0.05  # radians of joint-target motion per control step at |action| = 1 (2.5 rad/s)

ACTION_NAMES = (*JOINTS, "left_gripper", "right_gripper")
STATE_NAMES = (*JOINTS, "left_grip_opening", "right_grip_opening")
ACTION_DIM = len(ACTION_NAMES)  # 16
STATE_DIM = len(STATE_NAMES)  # 16
MOTION_DIMS = tuple(range(len(JOINTS)))  # joint-target deltas
GRIP_DIMS = (len(JOINTS), len(JOINTS) + 1)  # > 0 closes


@dataclass(frozen=True)
class HumanoidConfig(ObservationConfig):
    """How humanoid episodes are observed. Defaults: the head camera at 64 px, a frame every 4 control steps
    (12.5 fps), 200 control steps (4 s, 50 chunks) per episode; the expert succeeds within 37 chunks (box-push,
    the slowest task; 100 seeds)."""

    views: tuple[str, ...] = ("head",)
    suite: ClassVar[str] = SUITE
    cameras: ClassVar[tuple[str, ...]] = CAMERAS
    action_dim: ClassVar[int] = ACTION_DIM
    state_dim: ClassVar[int] = STATE_DIM
    control_hz: ClassVar[float] = CONTROL_HZ


# ---------------------------------------------------------------------------------------------- privileged state


@dataclass(frozen=True)
class Privileged:
    """`Observation.privileged` split into its parts (see the module docstring)."""

    qpos: np.ndarray
    qvel: np.ndarray
    targets: np.ndarray  # (14,) joint-position targets, in JOINTS order
    grips: np.ndarray  # (2,) gripper commands, 1 = closed
    object_pos: np.ndarray
    object_quat: np.ndarray
    goal: np.ndarray


def unpack_privileged(model, vec: np.ndarray) -> Privileged:
    """Split a privileged vector of `model`'s scene; refuses one of another length."""
    sizes = (model.nq, model.nv, len(JOINTS), 2, 3, 4, 3)
    if len(vec) != sum(sizes):
        raise ValueError(f"privileged state has {len(vec)} numbers, this scene's has {sum(sizes)}")
    return Privileged(*np.split(np.asarray(vec, np.float64), np.cumsum(sizes)[:-1]))


# ---------------------------------------------------------------------------------------------- the reality


def _draw_start(task: str, rng: np.random.Generator) -> dict[str, list[float]]:
    """Object (and goal) placement for one episode, in world metres / radians."""
    if task == "button-press":  # far side of the table: beyond the arm's reach unless the waist bends
        return {"button": [rng.uniform(0.62, 0.72), rng.uniform(-0.30, -0.02)]}
    if task == "box-push":  # push away or sideways, 12-18 cm, never towards the robot
        box = [rng.uniform(0.32, 0.42), rng.uniform(-0.24, -0.02), rng.uniform(-0.5, 0.5)]
        heading, dist = rng.uniform(-1.2, 1.2), rng.uniform(0.12, 0.18)
        return {"box": box, "goal": [float(box[0] + dist * np.cos(heading)), float(box[1] + dist * np.sin(heading))]}
    return {"box": [rng.uniform(0.33, 0.40), rng.uniform(-0.06, 0.06), rng.uniform(-0.3, 0.3)]}


def _yaw_quat(yaw: float) -> np.ndarray:
    return np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])


class HumanoidReality:
    """One humanoid task as a `Reality`. Not thread-safe; make one per process."""

    def __init__(self, task: str, config: HumanoidConfig | None = None) -> None:
        import mujoco

        self.task = check_task(task)
        self.config = config or HumanoidConfig()
        self.layout = self.config.layout()
        self.model = build_model(task)
        self.data = mujoco.MjData(self.model)
        m = self.model
        self._qadr = np.array([m.joint(j).qposadr[0] for j in JOINTS])
        self._fingers = np.array([[m.joint(f"{s}_finger_{f}").qposadr[0] for f in "ab"] for s in ("left", "right")])
        self._lo, self._hi = m.jnt_range[[m.joint(j).id for j in JOINTS]].T
        self._object = m.body("button" if task == "button-press" else "box").id
        self._button = m.joint("button").qposadr[0] if task == "button-press" else -1
        self._renderer = fast_renderer(m, self.config.image_size)
        self._targets = np.zeros(len(JOINTS))
        self._grips = np.zeros(2)
        self._goal = np.zeros(3)
        self._steps = -1  # not reset yet

    def start(self, seed: int) -> Start:
        """The object (and goal) placement drawn for `seed`."""
        return Start(SUITE, self.task, int(seed), _draw_start(self.task, np.random.default_rng(int(seed))))

    def reset(self, start: Start) -> Observation:
        import mujoco

        if start.suite != SUITE or start.task != self.task:
            raise ValueError(f"start is for {start.suite}/{start.task}, this reality is {SUITE}/{self.task}")
        m, d, p = self.model, self.data, start.params
        mujoco.mj_resetData(m, d)
        self._targets = np.array([READY.get(j, 0.0) for j in JOINTS])
        self._grips = np.zeros(2)
        d.qpos[self._qadr] = self._targets
        d.ctrl[:] = 0.0  # legs stand straight
        d.ctrl[: len(JOINTS)] = self._targets
        d.ctrl[-4:] = d.qpos[self._fingers.ravel()] = FINGER_OPEN  # grippers open
        if self.task == "button-press":
            m.body("button_base").pos[:2] = p["button"]
            self._goal = np.array([*p["button"], TABLE_TOP])
        else:
            x, y, yaw = p["box"]
            half = PUSH_BOX_HALF if self.task == "box-push" else LIFT_BOX_HALF
            adr = m.joint("box").qposadr[0]
            d.qpos[adr : adr + 7] = [x, y, TABLE_TOP + half[2], *_yaw_quat(yaw)]
            if self.task == "box-push":
                m.body("goal").pos[:2] = p["goal"]
                self._goal = np.array([*p["goal"], TABLE_TOP])
            else:
                self._goal = np.array([x, y, TABLE_TOP + LIFT_HEIGHT + half[2]])
        mujoco.mj_forward(m, d)
        self._steps = 0
        return self._observe()

    def step(self, chunk: np.ndarray) -> tuple[Observation, bool, StepInfo]:
        import mujoco

        if self._steps < 0:
            raise RuntimeError("call reset(start) before step()")
        expected = (self.layout.frame_skip, ACTION_DIM)
        if chunk.shape != expected:
            raise ValueError(f"action chunk must have shape {expected}, got {chunk.shape}")
        if not np.all(np.isfinite(chunk)):
            raise ValueError("action chunk contains NaN or inf")
        m, d = self.model, self.data
        success = False
        for action in np.clip(np.asarray(chunk, np.float64), -1.0, 1.0):
            self._targets = np.clip(self._targets + action[: len(JOINTS)] * MAX_DELTA, self._lo, self._hi)
            self._grips = (action[len(JOINTS) :] > 0).astype(np.float64)
            d.ctrl[: len(JOINTS)] = self._targets
            d.ctrl[-4:] = np.repeat(np.where(self._grips > 0, 0.0, FINGER_OPEN), 2)
            mujoco.mj_step(m, d, nstep=SUBSTEPS)
            success |= self.success()
        self._steps += len(chunk)
        done = self._steps >= self.config.max_steps
        return self._observe(), done, StepInfo(success=success)

    def success(self) -> bool:
        """The task's success, read from the simulator's state now."""
        d = self.data
        if self.task == "button-press":
            return bool(d.qpos[self._button] < -BUTTON_PRESSED)
        pos = d.xpos[self._object]
        if self.task == "box-push":
            return bool(np.linalg.norm(pos[:2] - self._goal[:2]) < GOAL_RADIUS)
        return bool(pos[2] - LIFT_BOX_HALF[2] > TABLE_TOP + LIFT_HEIGHT)  # the bottom, were the box level

    def _observe(self) -> Observation:
        d, size = self.data, self.config.image_size
        images = np.empty((len(self.config.views), size, size, 3), np.uint8)
        for i, camera in enumerate(self.config.views):
            self._renderer.update_scene(d, camera=camera)
            images[i] = self._renderer.render()
        openings = d.qpos[self._fingers].sum(axis=1)
        state = np.concatenate([d.qpos[self._qadr], openings]).astype(np.float32)
        privileged = np.concatenate(
            [d.qpos, d.qvel, self._targets, self._grips, d.xpos[self._object], d.xquat[self._object], self._goal]
        )
        return Observation(images=images, state=state, privileged=privileged)

    def close(self) -> None:
        self._renderer.close()
