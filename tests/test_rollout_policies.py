import numpy as np
import pytest
from conftest import FAKE_LAYOUT, ConstantPolicy, FakeReality

from wmeval.policies.base import PolicyError
from wmeval.policies.degrade import ActionGroups, Bias, EarlyRelease, Freeze, Latency, Noise, RandomActions, Slowdown
from wmeval.rollout import rollout
from wmeval.types import Observation

OBS = Observation(images=np.zeros((1, 8, 8, 3), np.uint8), state=np.zeros(4, np.float32))
MW = ActionGroups(motion=(0, 1, 2), grip=(3,))  # MetaWorld's: hand xyz deltas, one gripper


class Ramp:
    """Emits actions 1, 2, 3, ... (x) with a closed gripper, so wrappers' effects are visible."""

    def __init__(self, k: int = 2) -> None:
        self.k, self.n = k, 0

    def reset(self, seed: int) -> None:
        self.n = 0

    def act(self, obs):
        out = np.zeros((self.k, 4), np.float32)
        out[:, 0] = (np.arange(self.k) + 1 + self.n) / 100
        out[:, 3] = 1.0
        self.n += self.k
        return out


def run(policy, n=3, seed=0):
    policy.reset(seed)
    return np.concatenate([policy.act(OBS) for _ in range(n)])


@pytest.mark.parametrize(
    "bad, match", [("nan", "NaN"), ("shape", r"shape \(2, 3\)"), ("raise", "raised RuntimeError: boom")]
)
def test_misbehaving_policy_stops_the_episode_by_name(bad, match):
    env = FakeReality()
    with pytest.raises(PolicyError, match=rf"policy 'broken', episode reach/seed 4.*{match}"):
        rollout(env, ConstantPolicy(bad=bad), env.start(4), "broken", {})


def test_long_chunks_run_open_loop_and_short_ones_are_refused():
    env = FakeReality()
    ep = rollout(env, ConstantPolicy(k=4), env.start(0), "k4", {})  # 2 frames per query
    assert ep.actions.shape == (FAKE_LAYOUT.horizon + 1, FAKE_LAYOUT.frame_skip, 4)
    with pytest.raises(PolicyError, match="multiple of 2"):
        rollout(env, ConstantPolicy(k=3), env.start(0), "k3", {})


def test_faster_policy_succeeds_where_slow_one_does_not():
    env = FakeReality()
    fast = rollout(env, ConstantPolicy(1.0), env.start(0), "fast", {})
    slow = rollout(env, ConstantPolicy(0.1), env.start(0), "slow", {})
    assert fast.meta.outcome and not slow.meta.outcome


def test_degradations_are_seeded_and_do_what_they_say():
    noisy = Noise(0.3).wrap(Ramp(), 1, MW)
    a, b, c = run(noisy, seed=1), run(noisy, seed=1), run(noisy, seed=2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)

    clean = run(Ramp())
    late = run(Latency(3).wrap(Ramp(), 1, MW))
    np.testing.assert_array_equal(late[:3], 0)
    np.testing.assert_array_equal(late[3:], clean[:-3])

    np.testing.assert_allclose(run(Slowdown(0.5).wrap(Ramp(), 1, MW))[:, 0], clean[:, 0] * 0.5)
    np.testing.assert_allclose(run(Bias(0.2).wrap(Ramp(), 1, MW))[:, :3], clean[:, :3] + 0.2, rtol=1e-6)

    frozen = run(Freeze(after=3).wrap(Ramp(), 1, MW))
    np.testing.assert_array_equal(frozen[3:, :3], 0)
    assert (frozen[:, 3] == 1.0).all()  # the gripper command is held

    released = run(EarlyRelease(after=2).wrap(Ramp(), 1, MW))
    assert (released[:2, 3] == 1).all() and (released[3:, 3] == -1).all()
    never = run(EarlyRelease(after=2, prob=0.0).wrap(Ramp(), 1, MW))
    assert (never[:, 3] == 1).all()

    rnd = RandomActions(1.0).wrap(Ramp(), 1, MW)
    r = run(rnd, n=50).reshape(50, 2, 4)
    assert (r[:, 0] == r[:, 1]).all() and r.min() < -0.5 and r.max() > 0.5  # held uniform actions


class Ramp6:
    """Six action dims, four of motion and two grippers (a two-handed robot), all ramping up."""

    def reset(self, seed: int) -> None:
        self.t = 0

    def act(self, obs) -> np.ndarray:
        self.t += 1
        return np.full((2, 6), 0.1 * self.t, np.float32)


def test_degradations_follow_the_suites_action_groups():
    two_hands = ActionGroups(motion=(0, 1, 2, 3), grip=(4, 5))
    frozen = run(Freeze(after=3).wrap(Ramp6(), 1, two_hands))
    assert (frozen[3:, :4] == 0).all() and (frozen[3:, 4:] > 0).all()  # both grippers held closed
    released = run(EarlyRelease(after=2).wrap(Ramp6(), 1, two_hands))
    assert (released[3:, 4:] == -1).all() and (released[:, :4] > 0).all()
    slow, clean = run(Slowdown(0.5).wrap(Ramp6(), 1, two_hands)), run(Ramp6())
    np.testing.assert_allclose(slow[:, :4], clean[:, :4] * 0.5)
    np.testing.assert_array_equal(slow[:, 4:], clean[:, 4:])
    biased = run(Bias([0.1, 0.0, 0.0, -0.1]).wrap(Ramp6(), 1, two_hands))
    np.testing.assert_allclose(biased[:, [0, 3]] - clean[:, [0, 3]], [[0.1, -0.1]] * 6, atol=1e-6)
    with pytest.raises(ValueError, match="3 numbers; this suite's actions have 4 motion dims"):
        Bias([0.1, 0.0, 0.0]).wrap(Ramp6(), 1, two_hands)
    with pytest.raises(ValueError, match="early_release needs a gripper"):
        EarlyRelease().wrap(Ramp6(), 1, ActionGroups(motion=tuple(range(6))))


def test_wrappers_compose_and_clip():
    chain = Bias(0.9).wrap(Noise(0.0).wrap(Ramp(), 1, MW), 2, MW)
    out = run(chain, n=60)
    assert out.max() <= 1.0 and out.dtype == np.float32
