"""Alignment metrics against values computed by hand (worked in the comments)."""

import numpy as np
import pytest

from wmeval.align.metrics import (
    ab_pick_rate,
    bias,
    bootstrap,
    checkpoint_regret,
    ensemble_curve,
    kendall_tau_b,
    mae,
    mmrv,
    pairwise_accuracy,
    pearson,
    resampled_predictions,
    resampled_rates,
    spearman,
    spearman_brown,
    split_half,
    within_tasks,
)


def test_pearson_and_spearman():
    assert pearson([0, 0.5, 1], [0, 0.5, 1]) == pytest.approx(1.0)
    assert pearson([0, 0.5, 1], [1, 0.5, 0]) == pytest.approx(-1.0)
    # pred ranks with a tie: [1, 2.5, 2.5, 4]; deviations [-1.5, 0, 0, 1.5] vs [-1.5, -0.5, 0.5, 1.5]:
    # cov 4.5, var 5 and 4.5 -> 4.5 / sqrt(22.5) = 0.94868
    assert spearman([0.1, 0.2, 0.3, 0.4], [1, 2, 2, 3]) == pytest.approx(0.948683, abs=1e-6)
    assert np.isnan(pearson([0.5, 0.5], [0.1, 0.9]))


def test_kendall_tau_b():
    # pairs (1,2) concordant, (1,3) concordant, (2,3) discordant: (2 - 1) / 3
    assert kendall_tau_b([1, 2, 3], [1, 3, 2]) == pytest.approx(1 / 3)


def test_mmrv_and_pairwise_accuracy():
    real, pred = [0.2, 0.5, 0.9], [0.3, 0.6, 0.4]
    # i=0: no violation; i=1: vs 2 (pred says 1 > 2, reality 1 < 2) -> 0.4; i=2: vs 1 -> 0.4; mean 0.8 / 3
    assert mmrv(real, pred) == pytest.approx(0.8 / 3)
    assert mmrv(real, real) == 0.0
    assert pairwise_accuracy(real, pred) == pytest.approx(2 / 3)
    # a model tie on a pair reality orders: strict comparisons count it for the lower one (weight 0.3)
    assert mmrv([0.2, 0.5], [0.4, 0.4]) == pytest.approx(0.15)
    assert pairwise_accuracy([0.2, 0.5], [0.4, 0.4]) == 0.5


def test_mae_bias_and_regret():
    assert mae([0.2, 0.4], [0.3, 0.2]) == pytest.approx(0.15)
    assert bias([0.2, 0.4], [0.3, 0.2]) == pytest.approx(-0.05)
    # run a: the model picks the 0.2 checkpoint, the best is 0.8 -> 0.6; run b: a tie picks the worse
    # of the tied (0.4) while 0.5 was best -> 0.1; mean 0.35
    real, pred = [0.2, 0.8, 0.5, 0.4], [0.9, 0.1, 0.3, 0.3]
    assert checkpoint_regret(real, pred, ["a", "a", "b", "b"]) == pytest.approx(0.35)


def test_bootstrap_interval_brackets_the_value():
    rng = np.random.default_rng(0)
    real = [rng.random(50) < p for p in (0.1, 0.4, 0.7, 0.9)]
    pred = [rng.random(50) < p for p in (0.15, 0.35, 0.75, 0.85)]
    value, lo, hi = bootstrap(pearson, real, pred, n=200)
    assert lo <= value <= hi and 0.8 < value <= 1.0


def test_draws_shared_by_several_metrics_give_each_metric_its_own_interval():
    # alignment draws the resampled rates once and reads every metric (and every A/B gap) off them
    rng = np.random.default_rng(2)
    real = [rng.random(30) < p for p in np.linspace(0.1, 0.9, 6)]
    pred = [np.clip(p + rng.normal(0, 0.2, (2, 30)), 0, 1) for p in np.linspace(0.2, 0.8, 6)]
    draws = resampled_rates(real, pred, n=100, seed=3)
    assert draws[0].shape == (100, 6) and draws[1].shape == (100, 2, 6)
    for metric in (pearson, spearman, mmrv):
        assert bootstrap(metric, real, pred, draws=draws) == bootstrap(metric, real, pred, n=100, seed=3)
    ab = resampled_predictions(pred, n=100, seed=3)
    for gap in (0.15, 0.3):
        assert ab_pick_rate(real, pred, gap, draws=ab) == ab_pick_rate(real, pred, gap, n=100, seed=3)


def test_ab_pick_rate_selects_pairs_by_true_gap():
    real = [np.array([1] * 2 + [0] * 8), np.array([1] * 7 + [0] * 13), np.array([1] * 9 + [0])]  # 0.2, 0.35, 0.9
    pred = [np.array([0.1] * 10), np.array([0.5] * 20), np.array([0.2] * 10)]
    rate, lo, hi, pairs = ab_pick_rate(real, pred, gap=0.15, n=50)
    assert pairs == 1 and rate == 1.0 and lo == hi == 1.0  # only (0.2, 0.35) is 15 +- 5 points apart
    assert ab_pick_rate(real, pred, gap=0.15, n=5, groups=["a", "b", "b"])[3] == 0  # that pair spans two tasks
    assert ab_pick_rate(real, pred, gap=0.55, n=5, groups=["a", "b", "b"])[3] == 1  # (0.35, 0.9) is within b


def test_within_tasks_averages_per_task_values():
    # task a: perfect order (1.0); task b: reversed (-1.0); task c has one policy and is skipped -> mean 0
    real = np.array([0.1, 0.5, 0.9, 0.2, 0.6, 0.3])
    pred = np.array([0.2, 0.4, 0.8, 0.7, 0.1, 0.5])
    f = within_tasks(["a", "a", "a", "b", "b", "c"], spearman)
    assert f(real, pred) == pytest.approx(0.0)
    assert within_tasks(["a", "a", "a", "b", "b", "c"], mmrv)(real, pred) == pytest.approx((0.0 + 0.4) / 2)


def test_ensemble_curve_rises_when_members_err_apart_and_stays_flat_when_they_err_alike():
    real = np.array([0.1, 0.3, 0.5, 0.7, 0.9])
    # each member swaps a different neighbouring pair (Spearman 0.9 each); their mean rate orders all five
    apart = np.array([[0.3, 0.1, 0.5, 0.7, 0.9], [0.1, 0.3, 0.5, 0.9, 0.7], [0.1, 0.5, 0.3, 0.7, 0.9]])
    curve = ensemble_curve(spearman, real, apart)
    assert [c["members"] for c in curve] == [1, 2, 3] and [c["ensembles"] for c in curve] == [3, 3, 1]
    assert curve[0]["value"] == pytest.approx(0.9) and curve[0]["sd"] == pytest.approx(0.0)
    # any two: one pair tied (0.2, 0.2) -> Spearman with the tie averaged; all three: perfect
    assert curve[0]["value"] < curve[1]["value"] < curve[2]["value"] == pytest.approx(1.0)
    alike = np.array([[0.3, 0.1, 0.5, 0.7, 0.9]] * 3)  # the same error three times: nothing to average out
    assert [c["value"] for c in ensemble_curve(spearman, real, alike)] == pytest.approx([0.9] * 3)
    # more subsets than draws: that many random ones, each K from 1 to the number of members
    many = ensemble_curve(spearman, real, np.tile(apart, (3, 1)), draws=10)
    assert len(many) == 9 and [c["ensembles"] for c in many][:3] == [9, 10, 10] and many[-1]["ensembles"] == 1


def test_spearman_brown_doubles_a_split_half_correlation():
    assert spearman_brown(0.5) == pytest.approx(2 / 3)  # 2 * 0.5 / 1.5
    assert spearman_brown(1.0) == 1.0 and spearman_brown(0.0) == 0.0
    assert spearman_brown(0.25, k=3) == pytest.approx(0.5)  # 3 * 0.25 / (1 + 2 * 0.25)
    assert np.isnan(spearman_brown(float("nan")))


def test_split_half_of_perfectly_separated_policies_is_perfect():
    # deterministic policies (always 0, always 1, half-half in fixed blocks of 2): every split keeps the order
    real = [np.zeros(10), np.ones(10)]
    assert split_half(real, pearson, n=20) == pytest.approx(np.ones(20))
    # identical coin-flip policies: no reliable difference; over many samples the halves' correlation centres
    # near 0, while well-separated policies stay near 1
    rng = np.random.default_rng(1)
    same = [np.nanmean(split_half([rng.random(40) < 0.5 for _ in range(8)], spearman, n=50)) for _ in range(40)]
    apart = [np.nanmean(split_half([rng.random(40) < p for p in np.linspace(0.05, 0.95, 8)], spearman, n=50))
             for _ in range(5)]
    assert abs(np.mean(same)) < 0.1 and np.mean(apart) > 0.85


def test_bootstrap_with_members_is_the_mean_over_members():
    real = [np.array([0, 0, 1, 1.0]), np.array([1, 1, 1, 0.0]), np.array([0, 0, 0, 0.0])]  # 0.5, 0.75, 0
    # member 0 ranks perfectly, member 1 reverses: mean Spearman 0
    pred = [np.array([[0.5] * 4, [0.5] * 4]), np.array([[0.9] * 4, [0.1] * 4]), np.array([[0.1] * 4, [0.9] * 4])]
    value, lo, hi = bootstrap(spearman, real, pred, n=50)
    assert value == pytest.approx(0.0)
    # one member alone is the old behaviour
    assert bootstrap(spearman, real, [p[0] for p in pred], n=5)[0] == pytest.approx(1.0)
    rate, *_, pairs = ab_pick_rate(real, pred, gap=0.25, n=5)  # the pair (0.5, 0.75): member 0 right, member 1 wrong
    assert pairs == 1 and rate == pytest.approx(0.5)


def test_bias_corrected_interval():
    from wmeval.align.metrics import bias_corrected_interval

    draws = np.linspace(0, 1, 1001)
    # the value at the median: the plain 2.5-97.5% percentiles
    assert bias_corrected_interval(draws, 0.5) == pytest.approx((0.025, 0.975), abs=1e-3)
    # draws pulled below the value (as resampling does to a correlation): the interval moves up to cover it
    lo, hi = bias_corrected_interval(draws * 0.8, 0.7)
    assert lo < 0.7 <= hi and hi > np.quantile(draws * 0.8, 0.975)


@pytest.mark.parametrize(
    "text, pattern",
    [
        ("policy,task,successes\na,reach,1\n", r"no column trials"),
        ("policy,task,successes,trials\na,reach,3,2\n", r"line 2: a on reach: need 0 <= successes <= trials"),
        ("policy,task,successes,trials\na,reach,1,10\na,reach,2,10\n", r"line 3: a on reach has a row already"),
        ("policy,task,successes,trials\na,reach,one,10\n", r"line 2: successes and trials must be whole numbers"),
        ("policy,task,successes,trials\n,reach,1,10\n", r"line 2: the policy or task is empty"),
        ("policy,task,successes,trials\n", r"no trials under the header"),
    ],
)
def test_a_bad_trials_csv_names_the_line_and_the_fix(tmp_path, text, pattern):
    from wmeval.align.truth import real_outcomes_from_csv

    path = tmp_path / "results.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=pattern):
        real_outcomes_from_csv(path)


def test_a_trials_csv_reads_in_any_column_order_with_a_byte_order_mark(tmp_path):
    from wmeval.align.truth import real_outcomes_from_file

    path = tmp_path / "results.csv"
    path.write_text("\ufefftrials,policy,notes,task,successes\n10,ckpt-a,ok,reach,7\n4, ckpt-b ,,reach,0\n",
                    encoding="utf-8")  # fmt: skip
    truth, source = real_outcomes_from_file(path)
    assert truth == {("ckpt-a", "reach"): [True] * 7 + [False] * 3, ("ckpt-b", "reach"): [False] * 4}
    assert "real trials supplied by the user" in source
