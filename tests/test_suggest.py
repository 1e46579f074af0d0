"""`wmeval suggest`: the rule on hand-computed cases, the budget, and the command on a micro store."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import JUDGED

from wmeval.align.suggest import allocate, flip_scores, policy_uncertainty, suggest
from wmeval.cli import main


def evaluation(rates: dict[tuple[str, str], list[float]], seeds=(0, 1, 2, 3)) -> dict:
    """A minimal evaluation: every episode of a policy at the same probability."""
    return {"kind": "wmeval-evaluation", "model": "m", "zoo": "zoo.toml",
            "policies": [{"policy": p, "task": t, "episodes": len(seeds), "seeds": list(seeds),
                          "probabilities": [r] * len(seeds)} for (p, t), r in rates.items()]}  # fmt: skip


def test_flips_by_hand():
    # two policies of one task, rates 0.5 and 0.6, sd 0.1 each: P(flip) = Phi(-0.1 / sqrt(0.02)), shared equally
    f = flip_scores(["t", "t"], np.array([0.5, 0.6]), np.array([0.1, 0.1]))
    p = 0.5 * (1 + math.erf(-0.1 / math.sqrt(0.02) / math.sqrt(2)))
    np.testing.assert_allclose(f, [p / 2, p / 2])
    # the more uncertain one owns more of the flip; another task's policy never counts
    f = flip_scores(["t", "t", "u"], np.array([0.5, 0.6, 0.55]), np.array([0.2, 0.1, 0.3]))
    assert f[0] > f[1] and f[2] == 0
    # far apart: nothing to flip, however unsure
    assert flip_scores(["t", "t"], np.array([0.0, 1.0]), np.array([0.05, 0.05])).max() < 1e-20


def test_uncertainty_and_allocation():
    pred = np.array([[0.2, 0.4], [0.6, 0.8]])  # two members, two episodes
    m, between, sampling = policy_uncertainty(pred)
    assert m == pytest.approx(0.5) and between == pytest.approx(np.std([0.3, 0.7], ddof=1))
    assert sampling == pytest.approx(np.std([0.4, 0.6], ddof=1) / math.sqrt(2))
    assert allocate(np.array([3.0, 1.0, 0.0]), 20, 5).tolist() == [15, 5, 0]  # 3/1, 3/2, 3/3 >= 1 ... then 1/1
    assert allocate(np.array([0.0, 0.0]), 20, 5).tolist() == [0, 0]


def test_suggest_spends_the_budget_where_rankings_could_flip():
    a = evaluation({("close-1", "t"): 0.50, ("close-2", "t"): 0.55, ("far", "t"): 0.95, ("alone", "u"): 0.4})
    b = evaluation({("close-1", "t"): 0.60, ("close-2", "t"): 0.45, ("far", "t"): 0.97, ("alone", "u"): 0.9})
    s = suggest([a, b], budget=20, min_episodes=5)
    got = {p["policy"]: p for p in s["policies"]}
    assert got["close-1"]["episodes"] + got["close-2"]["episodes"] == 20  # the pair in contention gets it all
    assert got["far"]["episodes"] == 0 and got["alone"]["episodes"] == 0  # alone: no ranking to flip
    assert got["alone"]["between_seed_sd"] > got["close-1"]["between_seed_sd"]  # unsure, but irrelevant
    assert s["warning"] is None
    for p in got.values():  # the judged starts the members disagree on first, then fresh ones
        assert len(p["seeds"]) == p["episodes"] == len(set(p["seeds"]))
        assert p["seeds"][:4] == [0, 1, 2, 3][: p["episodes"]] and all(x >= 4 for x in p["seeds"][4:])
    assert suggest([a], 20)["warning"].startswith("one world model")
    with pytest.raises(ValueError, match="--budget"):
        suggest([a, b], budget=3, min_episodes=5)


def test_suggest_command_on_a_micro_store(world, tmp_path, capsys):
    """Two world-model 'members' (the fixture's model, two noise seeds) judge the fake zoo; suggest reads both."""
    paths = []
    for k in range(2):
        out = tmp_path / f"eval-{k}"
        assert main(["evaluate", "--model", str(world["model"]), "--zoo", str(world["zoo"]), "--out", str(out),
                     "--policies", JUDGED, "--episodes", "4", "--seed", "100", "--noise-seed", str(k),
                     "--calibration-episodes", "16", "--no-progress"]) == 0
        paths.append(str(out))
    capsys.readouterr()
    assert main(["suggest", *paths, "--budget", "10", "--min-episodes", "2", "--out", str(tmp_path / "s.json")]) == 0
    printed = capsys.readouterr().out
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["members"] == 2 and sum(p["episodes"] for p in s["policies"]) == 10
    for p in s["policies"]:
        assert len(p["seeds"]) == p["episodes"] and set(p["seeds"][:4]) <= {100, 101, 102, 103}
        if p["episodes"]:
            assert f"--policies {p['policy']} --tasks reach --seeds {','.join(map(str, p['seeds']))}" in printed
    assert main(["suggest", paths[0], "--budget", "1", "--min-episodes", "2"]) == 2
