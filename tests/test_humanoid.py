"""Humanoid reality: layout, determinism, exact replay, input checks, and the scripted expert (renders headless)."""

import json

import numpy as np
import pytest

from wmeval.policies.humanoid_expert import HumanoidExpert
from wmeval.reality import action_groups
from wmeval.reality import humanoid as H
from wmeval.reality import humanoid_scene as S
from wmeval.reality.humanoid import HumanoidConfig, HumanoidReality
from wmeval.types import Observation, Start


@pytest.fixture(scope="module")
def env():
    e = HumanoidReality("box-push")
    yield e
    e.close()


def run_expert(env: HumanoidReality, seed: int, frames: int | None = None) -> tuple[Observation, bool, HumanoidExpert]:
    """The expert from `seed`'s start, for `frames` frames or until it succeeds (then stops there)."""
    expert = HumanoidExpert(env.task, env.layout.frame_skip)
    obs, success = env.reset(env.start(seed)), False
    expert.reset(seed)
    for _ in range(frames or env.layout.horizon):
        obs, done, info = env.step(expert.act(obs))
        success |= info.success
        if done or (success and frames is None):
            break
    return obs, success, expert


def test_observation_matches_layout(env):
    obs = env.reset(env.start(0))
    L = env.layout
    assert obs.images.shape == (1, 64, 64, 3) and obs.images.dtype == np.uint8
    assert obs.state.shape == (L.state_dim,) == (H.STATE_DIM,) and obs.state.dtype == np.float32
    assert np.all(np.isfinite(obs.state)) and np.all(np.isfinite(obs.privileged))
    assert (L.suite, L.action_dim, L.control_hz, L.fps, L.horizon) == ("humanoid", 16, 50.0, 12.5, 50)
    assert H.unpack_privileged(env.model, obs.privileged).goal.shape == (3,)


def test_names_and_groups_have_the_declared_lengths():
    assert len(H.ACTION_NAMES) == H.ACTION_DIM == 16 and len(H.STATE_NAMES) == H.STATE_DIM == 16
    assert len(set(H.ACTION_NAMES)) == 16 and len(set(H.STATE_NAMES)) == 16
    assert action_groups("humanoid", H.ACTION_DIM) == (tuple(range(14)), (14, 15)) == (H.MOTION_DIMS, H.GRIP_DIMS)
    assert H.available_tasks() == H.DEFAULT_TASKS == ("button-press", "box-push", "box-lift")


def test_same_seed_same_frames_across_instances(env):
    actions = np.random.default_rng(0).uniform(-1, 1, (5, 4, 16)).astype(np.float32)

    def frames(e, seed):
        out = [e.reset(e.start(seed)).images]
        out += [e.step(a)[0].images for a in actions]
        return np.stack(out)

    other = HumanoidReality("box-push")
    assert env.start(5) == other.start(5)
    np.testing.assert_array_equal(frames(env, 5), frames(other, 5))
    other.close()
    assert env.start(6).params != env.start(5).params
    assert not np.array_equal(frames(env, 6)[0], frames(env, 5)[0])  # another seed, another start


def test_recorded_start_replays_exactly(env):
    start = env.start(11)
    first = env.reset(start)
    env.reset(env.start(12))  # disturb
    again = env.reset(Start.from_json(json.loads(json.dumps(start.to_json()))))  # as stored
    np.testing.assert_array_equal(first.images, again.images)
    np.testing.assert_array_equal(first.privileged, again.privileged)


def test_bad_chunks_tasks_and_starts_are_refused(env):
    with pytest.raises(RuntimeError, match="reset"):
        HumanoidReality("box-lift").step(np.zeros((4, 16), np.float32))
    env.reset(env.start(0))
    with pytest.raises(ValueError, match=r"shape \(4, 16\), got \(3, 16\)"):
        env.step(np.zeros((3, 16), np.float32))
    with pytest.raises(ValueError, match=r"shape \(4, 16\), got \(4, 4\)"):
        env.step(np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        env.step(np.full((4, 16), np.nan, np.float32))
    with pytest.raises(ValueError, match="unknown humanoid task 'push'; valid tasks: button-press, box-push, box-lift"):
        HumanoidReality("push")
    with pytest.raises(ValueError, match="start is for metaworld/push, this reality is humanoid/box-push"):
        env.reset(Start("metaworld", "push", 0, {}))
    with pytest.raises(ValueError, match="start is for humanoid/box-lift"):
        env.reset(Start("humanoid", "box-lift", 0, {"box": [0.4, 0.0, 0.0]}))
    with pytest.raises(ValueError, match="unknown camera 'corner'; valid cameras: head, front"):
        HumanoidConfig(views=("corner",))
    with pytest.raises(ValueError, match="multiple of frame_skip"):
        HumanoidConfig(max_steps=202)
    with pytest.raises(ValueError, match="privileged state"):
        HumanoidExpert("box-push", 4).act(Observation(images=np.zeros((1, 64, 64, 3), np.uint8), state=np.zeros(16)))


def test_zero_action_holds_the_pose(env):
    first = env.reset(env.start(3))
    for _ in range(10):
        obs, _, info = env.step(np.zeros((4, 16), np.float32))
    assert np.abs(obs.state - first.state).max() < 1e-3  # joints and (open) grippers stay put
    assert not info.success


@pytest.mark.parametrize("task", H.DEFAULT_TASKS)
def test_expert_succeeds(task):
    e = HumanoidReality(task)
    assert all(run_expert(e, seed)[1] for seed in (0, 1, 2))
    e.close()


def test_button_needs_the_waist():
    """The button lies beyond the arms' reach from the upright pose: the expert bends the waist forward."""
    e = HumanoidReality("button-press")
    obs, success, _ = run_expert(e, 0)
    e.close()
    assert success and obs.state[H.ACTION_NAMES.index("waist_pitch")] > 0.3


def test_releasing_a_gripper_drops_the_box():
    e = HumanoidReality("box-lift", HumanoidConfig(max_steps=400))
    for release in H.GRIP_DIMS:
        obs, success, expert = run_expert(e, 4)
        assert success
        for _ in range(12):  # keep holding with the other hand
            chunk = expert.act(obs)
            chunk[:, release] = -1.0
            obs, _, info = e.step(chunk)
        assert not info.success and not e.success()
        box_bottom = H.unpack_privileged(e.model, obs.privileged).object_pos[2] - H.LIFT_BOX_HALF[2]
        assert box_bottom < H.TABLE_TOP + H.LIFT_HEIGHT / 2
    e.close()


def test_head_camera_sees_the_table_and_front_renders():
    e = HumanoidReality("box-lift", HumanoidConfig(views=("head", "front")))
    head, front = e.reset(e.start(0)).images
    e.close()
    table = np.array([float(c) * 255 for c in S.TABLE_RGBA.split()[:3]])
    near_table = np.abs(head.astype(float) - table).max(axis=-1) < 40
    assert near_table.mean() > 0.25  # the table fills much of the egocentric view
    assert head.std() > 20 and front.std() > 20 and not np.array_equal(head, front)
