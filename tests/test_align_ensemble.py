"""Several world models (training seeds) judging the same policies: members, ensemble, trust, noise ceiling."""

import numpy as np
import pytest

from wmeval.align.align import align
from wmeval.align.tables import format_policies, format_summary

SEEDS = list(range(1000, 1010))


def evaluation(model: str, rates: dict[str, float]) -> dict:
    """A minimal `wmeval evaluate` result: every episode of a policy predicted at its rate."""
    rows = [{"policy": name, "task": name.split("-")[0], "episodes": len(SEEDS), "seeds": SEEDS,
             "probabilities": [rate] * len(SEEDS), "tags": {"run": name[:-3], "degraded": False}}
            for name, rate in rates.items()]  # fmt: skip
    return {"kind": "wmeval-evaluation", "model": model, "model_training": {"policies": []}, "zoo": "z",
            "rule": {}, "calibration": {}, "timing": {}, "seeds": [SEEDS[0], SEEDS[-1]], "policies": rows}  # fmt: skip


# true rates per policy (10 episodes each): two tasks, three checkpoints of one run each
TRUE = {"a-s1": 0.1, "a-s2": 0.5, "a-s3": 0.9, "b-s1": 0.2, "b-s2": 0.6, "b-s3": 1.0}
TRUTH = {(p, p.split("-")[0]): [True] * round(10 * r) + [False] * (10 - round(10 * r)) for p, r in TRUE.items()}


def test_members_ensemble_and_spread():
    m1 = {**TRUE}  # perfect
    m2 = {**TRUE, "a-s1": 0.95}  # ranks a-s1 first in task a: within-task Spearman of task a = -0.5
    m3 = {**TRUE}
    res = align([evaluation(f"m{k}", m) for k, m in enumerate((m1, m2, m3))], TRUTH, "truth", n_boot=50)
    assert res["n_seeds"] == 3
    # per member: 1.0, (-0.5 + 1) / 2 = 0.25, 1.0 -> mean 0.75
    w = res["within_task_spearman"]
    assert w["seed_values"] == pytest.approx([1.0, 0.25, 1.0]) and w["value"] == pytest.approx(0.75)
    assert w["seed_std"] == pytest.approx(np.std([1.0, 0.25, 1.0], ddof=1))
    # the ensemble predicts a-s1 at (0.1 + 0.95 + 0.1) / 3 = 0.383 < 0.5: its ranking is perfect
    assert res["ensemble"]["within_task_spearman"]["value"] == pytest.approx(1.0)
    a1 = next(p for p in res["policies"] if p["policy"] == "a-s1")
    assert a1["predicted_rate"] == pytest.approx(1.15 / 3) and a1["member_rates"] == pytest.approx([0.1, 0.95, 0.1])
    assert a1["uncertainty"] == pytest.approx(np.std([0.1, 0.95, 0.1], ddof=1)) and a1["low_trust"]
    # the one disagreement is also the one error: trust ranks it first
    t = res["trust"]
    assert t["low_trust_policies"] == 1 and t["mae_trusted"] == pytest.approx(0.0)
    assert t["trust_error_spearman"]["value"] == pytest.approx(1.0)
    # checkpoint regret per member: member 2 picks a-s1 (0.1) instead of a-s3 (0.9) in run a -> 0.8 / 2 runs
    assert res["checkpoint_regret"]["seed_values"] == pytest.approx([0.0, 0.4, 0.0])
    table = format_summary(res)
    assert "within-task Spearman" in table.splitlines()[2] and "ensemble of 3" in table  # within-task first
    assert "LOW" in format_policies(res)
    # one member of three errs: any two average the error to a tie or better, all three rank perfectly
    curve = res["ensemble_curve"]
    assert [c["members"] for c in curve] == [1, 2, 3] and curve[0]["value"] == pytest.approx(0.75)
    assert curve[2]["value"] == pytest.approx(1.0) and "ensemble curve" in table


def test_noise_ceiling_of_deterministic_reality_is_perfect():
    truth = {(p, p.split("-")[0]): [r >= 0.5] * 10 for p, r in TRUE.items()}  # every policy always or never
    truth[("a-s2", "a")] = [True] * 5 + [False] * 5  # ... except one in the middle
    res = align(evaluation("m", TRUE), truth, "truth", n_boot=20)
    c = res["noise_ceiling"]
    assert c["mmrv"]["high"] <= 0.5 and res["noise_ceiling_spearman"]["value"] > 0.8
    assert "ensemble" not in res and "trust" not in res and res["n_seeds"] == 1


def test_members_must_judge_the_same_policies():
    other = {k: v for k, v in TRUE.items() if k != "b-s3"}
    with pytest.raises(ValueError, match=r"judge different policies: b-s3 \(b\)"):
        align([evaluation("m1", TRUE), evaluation("m2", other)], TRUTH, "truth", n_boot=5)


def with_replay(ev: dict, rates: dict[str, float]) -> dict:
    """Open-loop replays of the real episodes (TRUTH's, seeds in order) predicted at each policy's rate."""
    eps = [{"policy": p, "task": t, "seed": s, "real": real, "probability": rates[p]}
           for (p, t), outcomes in TRUTH.items() for s, real in zip(SEEDS, outcomes, strict=True)]  # fmt: skip
    return {**ev, "replay": {"episodes_list": eps, "balanced_accuracy": 0.5, "auroc": 0.5, "brier": 0.25}}


def test_replay_ranks_policies_by_their_real_actions():
    m2 = {**TRUE, "a-s1": 0.95}  # replays task a's worst policy as its best: task a -0.5, task b 1.0
    evs = [with_replay(evaluation(f"m{k}", TRUE), r) for k, r in enumerate((TRUE, m2))]
    res = align(evs, TRUTH, "truth", n_boot=30)
    r = res["replay_within_task_spearman"]
    assert r["seed_values"] == pytest.approx([1.0, 0.25]) and r["value"] == pytest.approx(0.625)
    assert res["within_task_spearman"]["value"] == pytest.approx(1.0)  # closed loop: both rank perfectly
    assert "open-loop replay of the real actions | 0.62" in format_summary(res)
