"""The humanoid suite's scripted expert: a per-task state machine that picks hand targets, and inverse
kinematics that turns them into joint-target deltas. It reads the simulator's privileged state, so it
acts in reality only."""

from __future__ import annotations

import numpy as np

from wmeval.policies.base import privileged
from wmeval.reality.humanoid import MAX_DELTA, Privileged, unpack_privileged
from wmeval.reality.humanoid_scene import (
    BUTTON_TOP,
    GRIP_TO_TIP,
    HANDLE_HALF,
    HANDLE_Y,
    HEAD_CAM_PITCH,
    JOINTS,
    LIFT_BOX_HALF,
    PUSH_BOX_HALF,
    READY,
    TABLE_TOP,
    build_model,
    check_task,
)
from wmeval.types import Observation

IK_DIMS = (0, 1, *range(4, 14))  # waist + both arms; the head only holds its look-at pose
HEAD_DIMS = (2, 3)
ORIENT_WEIGHT = 0.3  # metres of hand position worth one radian of "fingers point down"
DAMPING = 0.05  # damped least squares: keeps steps finite near singular poses
# Pull towards the ready pose, per IK joint: small, so it only picks among poses that reach the targets
# (the waist pays more than the arms, so it bends only when the arms alone fall short).
NOMINAL_PULL = np.array([0.05, 0.05, *[0.01] * 10])
IK_ITERS = 3
SPEED, FINE_SPEED = 0.010, 0.005  # metres of hand travel per control step: reaching, and contact phases


class HumanoidExpert:
    """The task's scripted expert. It reads `obs.privileged`, so it runs in reality only.

    Asked once per frame, it sets hand targets from the task's phase (approach above or behind the
    object, descend, press / push / grasp, lift), moves each target at most a few centimetres from where the
    hands are commanded to be, and solves damped-least-squares IK over the waist and both arms (hand
    positions + fingers pointing down) on its own copy of the scene, starting from the current joint
    targets. The chunk moves the joint targets linearly to the IK solution over its `chunk_len` control
    steps, so the plan is exact for any chunk length (the targets, unlike the joints, follow the actions
    exactly). The head keeps looking where it looks in the ready pose; a hand with no job holds its ready place.
    """

    def __init__(self, task: str, chunk_len: int) -> None:
        import mujoco

        self.task = check_task(task)
        self.chunk_len = int(chunk_len)
        self._mj = mujoco
        self._model = build_model(task)
        self._data = mujoco.MjData(self._model)
        m = self._model
        joints = [m.joint(JOINTS[i]) for i in IK_DIMS]
        self._qadr = np.array([j.qposadr[0] for j in joints])
        self._dadr = np.array([j.dofadr[0] for j in joints])
        self._lo, self._hi = np.array([j.range for j in joints]).T
        self._sites = (m.site("left_hand").id, m.site("right_hand").id)
        self._ready = np.array([READY.get(JOINTS[i], 0.0) for i in IK_DIMS])
        self._data.qpos[self._qadr] = self._ready
        self._ready_hands = self._hands(self._data.qpos)[0]
        self._head = np.array([m.joint(JOINTS[i]).qposadr[0] for i in HEAD_DIMS])
        self._torso, self._camera = m.body("torso").id, m.camera("head").id
        mujoco.mj_camlight(m, self._data)
        cam, axis = self._data.cam_xpos[self._camera], -self._data.cam_xmat[self._camera].reshape(3, 3)[:, 2]
        self._gaze = cam + axis * (TABLE_TOP - cam[2]) / axis[2]  # where the ready head camera looks
        self.reset(0)

    def reset(self, seed: int) -> None:
        self._phase, self._frames = "approach", 0  # deterministic: the seed is not needed
        self._lift_from: np.ndarray | None = None

    def act(self, obs: Observation) -> np.ndarray:
        p = unpack_privileged(self._model, privileged(obs))
        hands = self._hands(p.qpos)[0]
        targets, grips, speed = getattr(self, "_" + self.task.replace("-", "_"))(p, hands)
        self._frames += 1
        q_set = p.targets[list(IK_DIMS)]
        q_goal = self._ik(p.qpos, q_set, targets, speed * self.chunk_len)
        steps = self.chunk_len * MAX_DELTA
        action = np.zeros(len(JOINTS) + 2)
        action[list(IK_DIMS)] = (q_goal - q_set) / steps
        qpos = p.qpos.copy()
        qpos[self._qadr] = q_goal
        action[list(HEAD_DIMS)] = (self._look(qpos) - p.targets[list(HEAD_DIMS)]) / steps
        action[len(JOINTS) :] = np.where(grips, 1.0, -1.0)
        return np.repeat(np.clip(action, -1.0, 1.0).astype(np.float32)[None], self.chunk_len, axis=0)

    # ------------------------------------------------------------------------------------------ phases

    def _goto(self, phase: str) -> None:
        self._phase, self._frames = phase, 0

    def _button_press(self, p: Privileged, hands: np.ndarray) -> tuple[np.ndarray, tuple[bool, bool], float]:
        """Right hand above the cap, then down through it; fingers closed make a small, stiff tip."""
        above = np.array([*p.goal[:2], BUTTON_TOP + GRIP_TO_TIP + 0.06])
        if self._phase == "approach" and np.linalg.norm(hands[1] - above) < 0.02:
            self._goto("press")
        right = above if self._phase == "approach" else np.array([*p.goal[:2], BUTTON_TOP + GRIP_TO_TIP - 0.03])
        return np.stack([self._ready_hands[0], right]), (True, True), SPEED

    def _box_push(self, p: Privileged, hands: np.ndarray) -> tuple[np.ndarray, tuple[bool, bool], float]:
        """Right hand behind the box on the goal's line, down to the table, then push along the line
        (re-aimed every frame from where the box is); back off and re-approach if the hand slips aside."""
        box, goal = p.object_pos[:2], p.goal[:2]
        to_goal = goal - box
        u = to_goal / max(np.linalg.norm(to_goal), 1e-6)
        ax = _rotate(p.object_quat, [1.0, 0.0, 0.0])[:2]  # the box's x axis on the table
        reach = PUSH_BOX_HALF[0] * abs(u @ ax) + PUSH_BOX_HALF[1] * abs(_cross2(u, ax))  # box centre to face
        low, high = TABLE_TOP + 0.025 + GRIP_TO_TIP, TABLE_TOP + 2 * PUSH_BOX_HALF[2] + 0.03 + GRIP_TO_TIP
        behind = box - (reach + 0.035) * u
        rel = box - hands[1, :2]
        if np.linalg.norm(to_goal) < 0.015 and self._phase != "done":  # there: lift the hand off and stay put
            self._goto("done")
        if self._phase == "push" and (abs(_cross2(u, rel)) > 0.03 or u @ rel < reach - 0.01):
            self._goto("retreat")
        if self._phase == "retreat" and hands[1, 2] > high - 0.015:
            self._goto("approach")
        if self._phase == "approach" and np.linalg.norm(hands[1] - [*behind, high]) < 0.025:
            self._goto("down")
        if self._phase == "down" and np.linalg.norm(hands[1] - [*behind, low]) < 0.015:
            self._goto("push")
        into = box - (reach + 0.012 - min(0.05, np.linalg.norm(to_goal))) * u  # up to 5 cm into the box
        right, speed = {
            "approach": ([*behind, high], SPEED),
            "retreat": ([*hands[1, :2], high], SPEED),
            "down": ([*behind, low], SPEED),
            "push": ([*into, low], FINE_SPEED),
            "done": ([*hands[1, :2], high], FINE_SPEED),
        }[self._phase]
        return np.stack([self._ready_hands[0], right]), (True, True), speed

    def _box_lift(self, p: Privileged, hands: np.ndarray) -> tuple[np.ndarray, tuple[bool, bool], float]:
        """Both hands above the handles, down around them, close, wait for the grip, lift straight up; open
        and start over if a handle slips out of a hand."""
        centre = [0.0, 0.0, LIFT_BOX_HALF[2] + HANDLE_HALF + 0.01]
        handles = np.stack([p.object_pos + _rotate(p.object_quat, [0.0, s * HANDLE_Y, centre[2]]) for s in (1, -1)])
        if handles[0, 1] < handles[1, 1]:  # the left hand takes the handle on its side
            handles = handles[::-1]
        grip = handles + [0.0, 0.0, 0.007]  # fingertips just above the box's top
        above = grip + [0.0, 0.0, 0.10]

        def off(t: np.ndarray) -> float:  # the farther hand's distance from its target
            return float(np.linalg.norm(hands - t, axis=1).max())

        if self._phase == "approach" and off(above) < 0.025:
            self._goto("descend")
        if self._phase == "descend" and (off(grip) < 0.012 or (off(grip) < 0.025 and self._frames >= 8)):
            self._goto("grasp")  # (a shaky hand gets there only roughly: grasp anyway after a while)
        if self._phase == "grasp" and self._frames >= 3:
            self._goto("lift")
            self._lift_from = grip + [0.0, 0.0, 0.17]
        if self._phase == "lift" and off(grip) > 0.04:
            self._goto("approach")
        if self._phase == "lift":
            return self._lift_from, (True, True), FINE_SPEED
        targets = {"approach": above, "descend": grip, "grasp": grip}[self._phase]
        speed = SPEED if self._phase == "approach" else FINE_SPEED
        return targets, (self._phase == "grasp",) * 2, speed

    # ------------------------------------------------------------------------------------------ kinematics

    def _hands(self, qpos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Hand-site positions (2, 3) and finger directions (2, 3) with the robot at `qpos`."""
        d = self._data
        d.qpos[:] = qpos
        self._mj.mj_kinematics(self._model, d)
        return d.site_xpos[list(self._sites)].copy(), -d.site_xmat[list(self._sites)].reshape(2, 3, 3)[:, :, 2]

    def _look(self, qpos: np.ndarray) -> np.ndarray:
        """Head pan and tilt that keep the head camera on the ready pose's gaze point with the waist as in
        `qpos` (the view stays on the table while the robot bends and turns)."""
        d, pan_tilt = self._data, np.zeros(2)
        d.qpos[:] = qpos
        for _ in range(2):  # the camera moves a little as the head turns: one correction suffices
            d.qpos[self._head] = pan_tilt
            self._mj.mj_kinematics(self._model, d)
            self._mj.mj_camlight(self._model, d)
            to = d.xmat[self._torso].reshape(3, 3).T @ (self._gaze - d.cam_xpos[self._camera])  # torso frame
            pan_tilt = np.array([np.arctan2(to[1], to[0]), np.arctan2(-to[2], np.hypot(*to[:2])) - HEAD_CAM_PITCH])
        return pan_tilt

    def _ik(self, qpos: np.ndarray, q_set: np.ndarray, targets: np.ndarray, max_step: float) -> np.ndarray:
        """Joint targets that bring both hand sites `max_step` closer to `targets` with fingers pointing down.

        Starts from the commanded pose (not the measured one), so a hand held back by contact keeps pushing.
        """
        m, d = self._model, self._data
        qpos = qpos.copy()
        qpos[self._qadr] = q_set
        start, _ = self._hands(qpos)
        step = targets - start
        norms = np.linalg.norm(step, axis=1, keepdims=True)
        goal = start + step * np.minimum(1.0, max_step / np.maximum(norms, 1e-9))
        down = np.array([0.0, 0.0, -1.0])
        jacp, jacr = np.zeros((3, m.nv)), np.zeros((3, m.nv))
        q = q_set.copy()
        for _ in range(IK_ITERS):
            qpos[self._qadr] = q
            pos, fingers = self._hands(qpos)
            self._mj.mj_comPos(m, d)
            rows, errs = [], []
            for h, site in enumerate(self._sites):
                self._mj.mj_jacSite(m, d, jacp, jacr, site)
                a = fingers[h]
                perp = np.eye(3) - np.outer(a, a)  # turning about the fingers' own axis is free
                rows += [jacp[:, self._dadr], ORIENT_WEIGHT * perp @ jacr[:, self._dadr]]
                errs += [goal[h] - pos[h], ORIENT_WEIGHT * np.cross(a, down)]
            J, e = np.concatenate(rows), np.concatenate(errs)
            pull = NOMINAL_PULL**2
            lhs = J.T @ J + np.diag(DAMPING**2 + pull)
            dq = np.linalg.solve(lhs, J.T @ e + pull * (self._ready - q))
            q = np.clip(q + dq, self._lo, self._hi)
        return q


def _rotate(quat: np.ndarray, v) -> np.ndarray:
    """Rotate `v` by the unit quaternion `quat` (w, x, y, z)."""
    w, xyz = quat[0], quat[1:]
    v = np.asarray(v, np.float64)
    t = 2.0 * np.cross(xyz, v)
    return v + w * t + np.cross(xyz, t)


def _cross2(a: np.ndarray, b: np.ndarray) -> float:
    return float(a[0] * b[1] - a[1] * b[0])
