"""The humanoid suite's scene as MJCF, built in code from primitives: the robot, the table and each task's
objects, with the constants that place them. `wmeval.reality.humanoid` runs it as a reality."""

from __future__ import annotations

import os
from functools import cache

import numpy as np

# Headless rendering must be chosen before mujoco is first imported (see wmeval.reality.metaworld).
os.environ.setdefault("MUJOCO_GL", "egl")
if os.environ["MUJOCO_GL"] in ("egl", "osmesa"):
    os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])

DEFAULT_TASKS = ("button-press", "box-push", "box-lift")
TIMESTEP = 0.004  # seconds of physics per mj_step

JOINTS = (
    "waist_yaw", "waist_pitch", "head_pan", "head_tilt",
    *(f"{side}_{j}" for side in ("left", "right")
      for j in ("shoulder_pitch", "shoulder_roll", "shoulder_yaw", "elbow", "wrist")),
)  # fmt: skip

# The pose every episode starts from: upright, forearms forward, hands pointing down above the table's near edge.
# Joints not named here (waist, head) start at 0.
READY = {"left_shoulder_pitch": 0.3, "left_shoulder_roll": 0.15, "left_elbow": 1.3, "left_wrist": -1.6}
READY.update({k.replace("left", "right"): v for k, v in READY.items()})

HEAD_CAM_PITCH = 0.87  # the head camera looks 50 degrees down at head tilt 0, onto the table's middle
FRONT_EYE = (1.75, -1.25, 1.75)  # the third-person camera, in front of the robot to its right, looking back
TABLE_TOP = 0.80  # height of the table's surface (m)
TABLE_X = (0.20, 0.84)  # near and far edge of the table
FINGER_OPEN = 0.045  # each finger's travel; a gripper opens to twice this
GRIP_FORCE = 3.0  # newtons each finger squeezes with
GRIP_TO_TIP = 0.025  # the hand site sits this far above the fingertips
BUTTON_TRAVEL, BUTTON_PRESSED = 0.02, 0.012  # the cap travels 2 cm; pressed past 1.2 cm counts
BUTTON_TOP = TABLE_TOP + 0.064  # the cap's top at rest
PUSH_BOX_HALF = (0.045, 0.045, 0.04)
GOAL_RADIUS = 0.05  # box-push succeeds with the box centre this close to the goal (the patch's radius)
LIFT_BOX_HALF = (0.06, 0.13, 0.045)
HANDLE_Y, HANDLE_RADIUS, HANDLE_HALF = 0.10, 0.014, 0.02  # capsule handles standing on the lift box's top
LIFT_HEIGHT = 0.10  # box-lift succeeds with the box's bottom this far above the table

ROBOT_RGBA, HAND_RGBA, TABLE_RGBA = ".78 .80 .84 1", ".15 .16 .20 1", ".55 .38 .22 1"
PUSH_RGBA, GOAL_RGBA, LIFT_RGBA, HANDLE_RGBA = ".90 .15 .10 1", ".15 .80 .30 1", ".15 .35 .90 1", ".95 .80 .10 1"
BUTTON_RGBA, HOUSING_RGBA = ".95 .10 .55 1", ".95 .80 .10 1"


def available_tasks() -> tuple[str, ...]:
    return DEFAULT_TASKS


def check_task(task: str) -> str:
    if task not in available_tasks():
        raise ValueError(f"unknown humanoid task {task!r}; valid tasks: {', '.join(available_tasks())}")
    return task


# ---------------------------------------------------------------------------------------------- the scene


def _vec(*xs: float) -> str:
    return " ".join(f"{x:.4g}" for x in xs)


def _look_at(eye: np.ndarray, target: np.ndarray) -> str:
    """A camera's `xyaxes` so that it looks from `eye` at `target` with +z up (MuJoCo cameras look along -z)."""
    f = (target - eye) / np.linalg.norm(target - eye)
    x = np.cross(f, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    return _vec(*x, *np.cross(x, f))


def _leg(side: str, s: int) -> str:
    """A leg that never collides (the pelvis is welded, so it only has to look like one)."""
    return f"""
      <body name="{side}_thigh" pos="0 {0.09 * s} -0.06">
        <joint name="{side}_hip" axis="0 1 0" range="-0.6 0.6"/>
        <geom type="capsule" fromto="0 0 0 0 0 -0.38" size="0.055" contype="0" conaffinity="0"/>
        <body name="{side}_shin" pos="0 0 -0.38">
          <joint name="{side}_knee" axis="0 1 0" range="0 1.5"/>
          <geom type="capsule" fromto="0 0 0 0 0 -0.38" size="0.045" contype="0" conaffinity="0"/>
          <body name="{side}_foot" pos="0 0 -0.38">
            <joint name="{side}_ankle" axis="0 1 0" range="-0.6 0.6"/>
            <geom type="box" pos="0.04 0 -0.03" size="0.1 0.045 0.025" contype="0" conaffinity="0"/>
          </body>
        </body>
      </body>"""


def _arm(side: str, s: int) -> str:
    """A 5-joint arm with a two-finger gripper. Axes are mirrored (`s` = +1 left, -1 right) so that one
    action moves both arms symmetrically. The `{side}_hand` site sits between the fingers, GRIP_TO_TIP
    above their tips; the hand's local -z is the direction the fingers point."""
    finger = f'type="box" size="0.012 0.006 0.035" rgba="{HAND_RGBA}" friction="1.5 0.01 0.001"'
    return f"""
        <body name="{side}_upper_arm" pos="0 {0.21 * s} 0.35">
          <joint name="{side}_shoulder_pitch" axis="0 -1 0" range="-1.0 2.8" damping="4"/>
          <joint name="{side}_shoulder_roll" axis="{s} 0 0" range="-0.3 1.5" damping="4"/>
          <joint name="{side}_shoulder_yaw" axis="0 0 {s}" range="-1.5 1.5"/>
          <geom type="sphere" size="0.055"/>
          <geom type="capsule" fromto="0 0 0 0 0 -0.30" size="0.04"/>
          <body name="{side}_forearm" pos="0 0 -0.30">
            <joint name="{side}_elbow" axis="0 -1 0" range="0 2.5"/>
            <geom type="capsule" fromto="0 0 0 0 0 -0.28" size="0.035"/>
            <body name="{side}_hand" pos="0 0 -0.28">
              <joint name="{side}_wrist" axis="0 -1 0" range="-2.2 1.0"/>
              <geom type="box" pos="0 0 -0.035" size="0.025 0.045 0.025" rgba="{HAND_RGBA}"/>
              <site name="{side}_hand" pos="0 0 -0.105" size="0.01"/>
              <body name="{side}_finger_a" pos="0 0 -0.06">
                <joint name="{side}_finger_a" type="slide" axis="0 1 0" range="0 {FINGER_OPEN}" damping="5"/>
                <geom pos="0 0.006 -0.035" {finger}/>
              </body>
              <body name="{side}_finger_b" pos="0 0 -0.06">
                <joint name="{side}_finger_b" type="slide" axis="0 -1 0" range="0 {FINGER_OPEN}" damping="5"/>
                <geom pos="0 -0.006 -0.035" {finger}/>
              </body>
            </body>
          </body>
        </body>"""


def _robot() -> str:
    head_cam = _look_at(np.zeros(3), np.array([np.cos(HEAD_CAM_PITCH), 0.0, -np.sin(HEAD_CAM_PITCH)]))
    return f"""
    <body name="pelvis" pos="0 0 0.90" childclass="robot">
      <geom type="box" size="0.09 0.14 0.06"/>
      {_leg("left", 1)}{_leg("right", -1)}
      <body name="waist" pos="0 0 0.08">
        <joint name="waist_yaw" axis="0 0 1" range="-0.8 0.8" damping="20"/>
        <geom type="cylinder" size="0.08 0.03"/>
        <body name="torso">
          <joint name="waist_pitch" axis="0 1 0" range="-0.25 1.2" damping="20"/>
          <geom type="capsule" fromto="0 0 0 0 0 0.18" size="0.09"/>
          <geom type="box" pos="0 0 0.27" size="0.09 0.16 0.1"/>
          <body name="neck" pos="0 0 0.42">
            <joint name="head_pan" axis="0 0 1" range="-1.0 1.0"/>
            <geom type="capsule" fromto="0 0 -0.05 0 0 0.03" size="0.04"/>
            <body name="head">
              <joint name="head_tilt" axis="0 1 0" range="-0.5 0.9"/>
              <geom type="sphere" pos="0 0 0.11" size="0.1"/>
              <geom type="box" pos="0.075 0 0.12" size="0.035 0.07 0.03" rgba="{HAND_RGBA}"/>
              <camera name="head" pos="0.11 0 0.11" xyaxes="{head_cam}" fovy="72"/>
            </body>
          </body>
          {_arm("left", 1)}{_arm("right", -1)}
        </body>
      </body>
    </body>""".replace("<body ", '<body gravcomp="1" ')  # servos hold poses without fighting gravity


def _actuators() -> str:
    kp = {"waist": 600, "head": 30, "shoulder": 250, "elbow": 150, "wrist": 60}
    rows = []
    for j in JOINTS:
        gain = next(v for k, v in kp.items() if k in j)
        rows.append(f'<position name="{j}" joint="{j}" kp="{gain}" kv="{gain / 10:.4g}" inheritrange="1"/>')
    for side in ("left", "right"):
        for j in ("hip", "knee", "ankle"):
            rows.append(f'<position name="{side}_{j}" joint="{side}_{j}" kp="500" kv="50" inheritrange="1"/>')
    for side in ("left", "right"):
        for f in ("a", "b"):
            rows.append(f'<position name="{side}_finger_{f}" joint="{side}_finger_{f}" kp="300" kv="3" '
                        f'inheritrange="1" forcerange="{-GRIP_FORCE} {GRIP_FORCE}"/>')  # fmt: skip
    return "\n    ".join(rows)


def _task_bodies(task: str) -> str:
    """The task's objects at placeholder positions; `reset` moves them where the start says."""
    if task == "button-press":
        return f"""
    <body name="button_base" pos="0.67 -0.15 {TABLE_TOP}">
      <geom type="box" pos="0 0 0.02" size="0.05 0.05 0.02" rgba="{HOUSING_RGBA}"/>
      <body name="button" pos="0 0 0.04" gravcomp="1">
        <joint name="button" type="slide" axis="0 0 1" range="{-BUTTON_TRAVEL} 0" stiffness="300" damping="3"/>
        <geom type="cylinder" pos="0 0 0.012" size="0.028 0.012" rgba="{BUTTON_RGBA}" mass="0.05"/>
      </body>
    </body>"""
    if task == "box-push":
        return f"""
    <body name="goal" pos="0.55 -0.1 {TABLE_TOP}">
      <geom type="cylinder" pos="0 0 0.001" size="{GOAL_RADIUS} 0.001" rgba="{GOAL_RGBA}" contype="0" conaffinity="0"/>
    </body>
    <body name="box" pos="0.4 -0.1 {TABLE_TOP + PUSH_BOX_HALF[2]}">
      <freejoint name="box"/>
      <geom type="box" size="{_vec(*PUSH_BOX_HALF)}" rgba="{PUSH_RGBA}" mass="0.3" friction="0.4 0.005 0.0001"
        priority="1"/>
    </body>"""
    hx, hy, hz = LIFT_BOX_HALF
    handle = f'type="capsule" size="{HANDLE_RADIUS} {HANDLE_HALF}" rgba="{HANDLE_RGBA}" mass="0.02"'
    return f"""
    <body name="box" pos="0.36 0 {TABLE_TOP + hz}">
      <freejoint name="box"/>
      <geom type="box" size="{_vec(hx, hy, hz)}" rgba="{LIFT_RGBA}" mass="0.9"/>
      <geom pos="0 {HANDLE_Y} {hz + HANDLE_HALF + 0.01}" {handle}/>
      <geom pos="0 {-HANDLE_Y} {hz + HANDLE_HALF + 0.01}" {handle}/>
    </body>"""


@cache
def scene_xml(task: str) -> str:
    """The MJCF of `task`'s scene. Robot geoms (contype 2) touch the world and objects (conaffinity 1 | 2)
    but not each other, so the arms may pass close to the torso."""
    check_task(task)
    (x0, x1), h = TABLE_X, TABLE_TOP
    cx, hx = (x0 + x1) / 2, (x1 - x0) / 2
    leg = f'type="box" size="{_vec(0.025, 0.025, (h - 0.03) / 2)}" rgba="{TABLE_RGBA}" contype="0" conaffinity="0"'
    legs = "".join(f'<geom pos="{_vec(cx + sx * (hx - 0.04), sy * 0.41, (h - 0.03) / 2)}" {leg}/>'
                   for sx in (-1, 1) for sy in (-1, 1))  # fmt: skip
    front = _look_at(np.array(FRONT_EYE), np.array([0.35, 0.0, 0.95]))
    return f"""<mujoco model="humanoid-{task}">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="{TIMESTEP}" integrator="implicitfast" cone="elliptic" impratio="5"/>
  <visual>
    <global offwidth="512" offheight="512"/>
    <quality shadowsize="0" offsamples="0"/>
    <headlight ambient=".45 .45 .45" diffuse=".45 .45 .45" specular="0 0 0"/>
  </visual>
  <default>
    <geom contype="1" conaffinity="3" friction="1 0.005 0.0001"/>
    <default class="robot">
      <geom contype="2" conaffinity="1" rgba="{ROBOT_RGBA}" density="600"/>
      <joint damping="3" armature="0.02"/>
    </default>
  </default>
  <worldbody>
    <light directional="true" pos="0 0 3" dir="0.3 0.2 -1" diffuse=".5 .5 .5" specular="0 0 0"/>
    <geom name="floor" type="plane" size="8 8 0.1" rgba=".30 .32 .36 1"/>
    <body name="table" pos="0 0 0">
      <geom type="box" pos="{_vec(cx, 0, h - 0.015)}" size="{_vec(hx, 0.45, 0.015)}" rgba="{TABLE_RGBA}"/>
      {legs}
    </body>
    <camera name="front" pos="{_vec(*FRONT_EYE)}" xyaxes="{front}" fovy="45"/>
    {_robot()}
    {_task_bodies(task)}
  </worldbody>
  <contact>{'<exclude body1="button_base" body2="button"/>' if task == "button-press" else ""}</contact>
  <actuator>
    {_actuators()}
  </actuator>
</mujoco>
"""


def build_model(task: str):
    """A fresh MjModel of `task`'s scene (the expert keeps its own for kinematics)."""
    import mujoco

    return mujoco.MjModel.from_xml_string(scene_xml(task))
