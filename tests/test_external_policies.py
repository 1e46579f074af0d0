"""Policies from anywhere in zoo files: a Python callable (`base = "python"`), a LeRobot directory's errors."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import FAKE_LAYOUT, ConstantPolicy, FakeReality

from wmeval.eval.evaluate import EvalConfig, evaluate
from wmeval.eval.imagination import Job, imagine, recorded_starts
from wmeval.model.world_model import load_world_model
from wmeval.rollout import rollout
from wmeval.zoo import load_zoo

POLICY_FILE = '''
import numpy as np

CALLS = []

def make(task, layout, speed=1.0):
    """A plain callable: push +x (the same as the tests' ConstantPolicy)."""
    CALLS.append(task)
    def act(obs):
        a = np.zeros((layout.frame_skip, layout.action_dim), np.float32)
        a[:, 0] = speed
        return a
    return act

class Stateful:
    def __init__(self, speed):
        self.speed, self.seed = speed, None
    def reset(self, seed):
        self.seed = seed
    def act(self, obs):
        return np.full((4, 4), self.speed, np.float32)  # two frames' worth: runs open loop

def make_stateful(speed=0.5):
    return Stateful(speed)

def broken():
    raise RuntimeError("no weights here")
'''


def write_zoo(tmp_path, body: str):
    (tmp_path / "policies").mkdir(exist_ok=True)
    (tmp_path / "policies" / "mine.py").write_text(POLICY_FILE)
    zoo = tmp_path / "zoo.toml"
    zoo.write_text('[zoo]\nname = "ext"\nsuite = "metaworld"\n\n' + body)
    return zoo


PYTHON_ZOO = """
[[policy]]
name = "py-fast"
base = "python"
entry = "policies/mine.py:make"
kwargs = { speed = 1.0 }

[[policy]]
name = "py-slow-noisy"
base = "python"
entry = "policies/mine.py:make_stateful"
kwargs = { speed = 0.1 }
degrade = [{ kind = "noise", std = 0.3 }]
"""


def test_python_policies_load_relative_to_the_zoo_and_act_in_reality(tmp_path):
    zoo = load_zoo(write_zoo(tmp_path, PYTHON_ZOO))
    fast, slow = zoo.policies
    assert fast.option("entry") == f"{(tmp_path / 'policies' / 'mine.py').resolve()}:make"
    assert fast.to_json()["kwargs"] == {"speed": 1.0}
    env = FakeReality()
    ep = rollout(env, fast.build("reach", FAKE_LAYOUT), env.start(3), fast.name, fast.to_json())
    assert ep.meta.outcome is True and (ep.actions[:-1, :, 0] == 1.0).all()
    ep = rollout(env, slow.build("reach", FAKE_LAYOUT), env.start(3), slow.name, slow.to_json())
    assert ep.meta.outcome is False and ep.actions.shape == (6, 2, 4)
    assert np.abs(ep.actions[:-1, :, 1] - 0.1).max() > 0  # the noise degradation wraps a Python policy
    assert ep.meta.policy_spec["base"] == "python"


def test_a_python_policy_judged_in_imagination_equals_the_same_policy_built_in_code(world, tmp_path):
    """The zoo path adds nothing: same noise, same starts, same predicted values as the policy object."""
    zoo = load_zoo(write_zoo(tmp_path, PYTHON_ZOO))
    model, _ = load_world_model(world["model"])
    starts = recorded_starts(world["store"], "reach", [100, 101, 102])

    class Direct:
        name = "py-fast"

        def build(self, task, layout):
            return ConstantPolicy(speed=1.0)

    a = imagine(model, FAKE_LAYOUT, [Job(zoo.policy("py-fast"), "reach", s) for s in starts], 3, progress=False)
    b = imagine(model, FAKE_LAYOUT, [Job(Direct(), "reach", s) for s in starts], 3, progress=False)
    assert all(x.error is None for x in a)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.values, y.values)


def test_evaluate_judges_python_policies(world, tmp_path):
    zoo = write_zoo(tmp_path, PYTHON_ZOO)
    cfg = EvalConfig(model=str(world["model"]), zoo=str(zoo), out=str(tmp_path / "eval"), episodes=3, seed=100,
                     batch_size=4, calibration_episodes=16, device="cpu", tasks=("reach",))  # fmt: skip
    res = evaluate(cfg, progress=False)
    rows = {p["policy"]: p for p in res["policies"]}
    assert set(rows) == {"py-fast", "py-slow-noisy"} and all(r["episodes"] == 3 for r in rows.values())
    assert rows["py-fast"]["tags"]["base"] == "python" and rows["py-slow-noisy"]["tags"]["degraded"] is True


@pytest.mark.parametrize(("entry", "message"), [
    ('"policies/mine.py"', "must be 'package.module:factory' or 'path/to/file.py:factory'"),
    ('"policies/gone.py:make"', "entry file .*gone.py' does not exist"),
    ('"policies/mine.py:nothing"', "has no callable 'nothing'"),
    ('"policies/mine.py:broken"', "the factory raised RuntimeError: no weights here"),
    ('"no_such_module_anywhere:make"', "importing 'no_such_module_anywhere' raised ModuleNotFoundError"),
])  # fmt: skip
def test_python_entry_errors_name_the_policy_and_the_fix(world, tmp_path, entry, message):
    zoo = write_zoo(tmp_path, f'[[policy]]\nname = "p"\nbase = "python"\nentry = {entry}\n')
    cfg = EvalConfig(model=str(world["model"]), zoo=str(zoo), out=str(tmp_path / "e"), episodes=1, seed=100,
                     device="cpu", tasks=("reach",))  # fmt: skip
    with pytest.raises(ValueError, match=message):
        evaluate(cfg, progress=False)


def test_zoo_keys_belong_to_their_base(tmp_path):
    bad = write_zoo(tmp_path, '[[policy]]\nname = "p"\nbase = "expert"\nentry = "policies/mine.py:make"\n')
    with pytest.raises(ValueError, match="'entry' belong\\(s\\) to base = \"python\""):
        load_zoo(bad)
    bad = write_zoo(tmp_path, '[[policy]]\nname = "p"\nbase = "python"\n')
    with pytest.raises(ValueError, match="base = \"python\" needs 'entry'"):
        load_zoo(bad)
    bad = write_zoo(tmp_path, '[[policy]]\nname = "p"\nbase = "python"\nentry = "policies/mine.py:make"\nkwargs = 3\n')
    with pytest.raises(ValueError, match="'kwargs' must be a table"):
        load_zoo(bad)


def test_lerobot_policy_directory_is_checked_and_needs_the_package(tmp_path):
    bad = write_zoo(tmp_path, '[[policy]]\nname = "act"\nbase = "lerobot"\npath = "act_ckpt"\n')
    with pytest.raises(ValueError, match="not a LeRobot pretrained policy directory \\(no config.json\\)"):
        load_zoo(bad)
    (tmp_path / "act_ckpt").mkdir()
    (tmp_path / "act_ckpt" / "config.json").write_text('{"type": "act"}')
    spec = load_zoo(bad).policy("act")
    assert spec.option("path") == str(tmp_path / "act_ckpt")
    try:
        import lerobot  # noqa: F401
    except ModuleNotFoundError:
        with pytest.raises(ValueError, match="needs the `lerobot` package"):
            spec.check("reach", FAKE_LAYOUT)


def test_the_worked_example_zoo_loads_and_its_policies_act():
    """examples/your_robot (README "Your own robot"): its zoo resolves the policy file and each policy acts."""
    from pathlib import Path

    from wmeval.reality.base import Layout
    from wmeval.types import Observation

    zoo = load_zoo(Path(__file__).parents[1] / "examples" / "your_robot" / "zoo.toml")
    layout = Layout("metaworld", ("corner",), 64, 4, 50, 4, 4, 80.0)
    obs = Observation(np.zeros((1, 64, 64, 3), np.uint8), np.array([0.0, 0.6, 0.2, 1.0], np.float32))
    for spec in zoo.policies:
        policy = spec.build("drawer-open", layout)
        policy.reset(0)
        chunk = policy.act(obs)
        assert chunk.shape == (4, 4) and chunk.dtype == np.float32 and (np.abs(chunk) <= 1).all()


BATCHED_FILE = '''
import numpy as np

class Shared:
    """Stateless: one object for every episode, asked for whole batches."""
    def __init__(self):
        self.batches = []
    def reset(self, seed):
        pass
    def act_batch(self, images, states):
        self.batches.append(len(images))
        a = np.zeros((len(images), 2, 4), np.float32)
        a[:, :, 0] = 1.0
        return a
    def act(self, obs):
        return self.act_batch(obs.images[None], obs.state[None])[0]

SHARED = Shared()

def make():
    return SHARED
'''


def test_a_shared_python_policy_with_act_batch_is_asked_per_batch(world, tmp_path):
    (tmp_path / "batched.py").write_text(BATCHED_FILE)
    zoo = tmp_path / "zoo.toml"
    zoo.write_text('[zoo]\nname = "b"\nsuite = "metaworld"\n\n[[policy]]\nname = "shared"\nbase = "python"\n'
                   'entry = "batched.py:make"\n')  # fmt: skip
    spec = load_zoo(zoo).policy("shared")
    shared = spec.build("reach", FAKE_LAYOUT)
    model, _ = load_world_model(world["model"])
    starts = recorded_starts(world["store"], "reach", [100, 101, 102])
    eps = imagine(model, FAKE_LAYOUT, [Job(spec, "reach", s) for s in starts], 3, progress=False)
    assert all(e.error is None for e in eps)
    assert shared.batches == [3] * FAKE_LAYOUT.horizon  # one call per frame for the three episodes
