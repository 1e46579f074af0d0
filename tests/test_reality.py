"""MetaWorld reality: determinism, exact replay of starts, and input checks (renders headless)."""

import numpy as np
import pytest

from wmeval.reality import make_reality
from wmeval.reality.metaworld import MetaWorldConfig
from wmeval.rollout import rollout
from wmeval.zoo import load_zoo

CFG = MetaWorldConfig(image_size=32, max_steps=40)


@pytest.fixture(scope="module")
def env():
    e = make_reality("metaworld", "push", CFG)
    yield e
    e.close()


def test_observation_matches_layout(env):
    obs = env.reset(env.start(0))
    L = env.layout
    assert obs.images.shape == (1, 32, 32, 3) and obs.images.dtype == np.uint8
    assert obs.state.shape == (L.state_dim,) and obs.state.dtype == np.float32
    assert obs.images.std() > 5  # a rendered scene, not a blank frame
    assert L.fps == 20.0 and L.horizon == 10


def test_same_seed_same_frames_across_instances(env):
    expert = load_zoo("tiny").policy("noise-1.0")
    a = rollout(env, expert.build("push", env.layout), env.start(5), "n", {})
    other = make_reality("metaworld", "push", CFG)
    b = rollout(other, expert.build("push", other.layout), other.start(5), "n", {})
    other.close()
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.actions, b.actions)
    np.testing.assert_array_equal(a.proprio, b.proprio)
    c = rollout(env, expert.build("push", env.layout), env.start(6), "n", {})
    assert not np.array_equal(a.frames[0], c.frames[0])  # another seed, another start


def test_recorded_start_replays_exactly(env):
    start = env.start(11)
    first = env.reset(start).images.copy()
    env.reset(env.start(12))  # disturb
    again = env.reset(start).images
    np.testing.assert_array_equal(first, again)


def test_bad_chunks_and_names_are_refused(env):
    env.reset(env.start(0))
    with pytest.raises(ValueError, match=r"shape \(4, 4\), got \(3, 4\)"):
        env.step(np.zeros((3, 4), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        env.step(np.full((4, 4), np.nan, np.float32))
    with pytest.raises(ValueError, match="unknown MetaWorld task 'pick'.*pick-place"):
        make_reality("metaworld", "pick")
    with pytest.raises(ValueError, match="unknown camera 'front'; valid cameras: corner"):
        MetaWorldConfig(views=("front",))


def test_several_views_render_side_by_side():
    e = make_reality(
        "metaworld", "drawer-open", MetaWorldConfig(views=("corner", "topview"), image_size=24, max_steps=8)
    )
    obs = e.reset(e.start(0))
    e.close()
    assert obs.images.shape == (2, 24, 24, 3)
    assert not np.array_equal(obs.images[0], obs.images[1])


def test_suites_are_found_through_one_registry():
    from wmeval.reality import SUITES, action_groups, default_tasks, default_zoo, make_config

    assert {"metaworld", "humanoid"} <= set(SUITES)
    assert make_config("metaworld", image_size=48, views=None).image_size == 48  # None keeps the default
    assert default_zoo("metaworld") == "default" and "push" in default_tasks("metaworld")
    assert action_groups("metaworld", 4) == ((0, 1, 2), (3,))
    assert action_groups("my-robot", 3) == ((0, 1, 2), ())  # imported data: all motion, no known gripper
    with pytest.raises(ValueError, match="unknown suite 'mars'; valid suites: metaworld"):
        make_reality("mars", "push")
