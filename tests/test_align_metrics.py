"""Alignment metrics against values computed by hand (worked in the comments)."""

import numpy as np
import pytest

from wmeval.align.metrics import (
    ab_pick_rate,
    bias,
    bootstrap,
    checkpoint_regret,
    kendall_tau_b,
    mae,
    mmrv,
    pairwise_accuracy,
    pearson,
    spearman,
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


def test_ab_pick_rate_selects_pairs_by_true_gap():
    real = [np.array([1] * 2 + [0] * 8), np.array([1] * 7 + [0] * 13), np.array([1] * 9 + [0])]  # 0.2, 0.35, 0.9
    pred = [np.array([0.1] * 10), np.array([0.5] * 20), np.array([0.2] * 10)]
    rate, lo, hi, pairs = ab_pick_rate(real, pred, gap=0.15, n=50)
    assert pairs == 1 and rate == 1.0 and lo == hi == 1.0  # only (0.2, 0.35) is 15 +- 5 points apart
    assert ab_pick_rate(real, pred, gap=0.15, n=5, groups=["a", "b", "b"])[3] == 0  # that pair spans two tasks
    assert ab_pick_rate(real, pred, gap=0.55, n=5, groups=["a", "b", "b"])[3] == 1  # (0.35, 0.9) is within b
