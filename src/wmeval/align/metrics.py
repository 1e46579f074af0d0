"""Alignment metrics between predicted and true per-policy success rates (each hand-checkable).

Inputs are aligned arrays over policies: `real[i]` the true success rate of policy i, `pred[i]` the world
model's predicted rate. Per-episode outcomes enter only through the bootstrap, which resamples each
policy's episodes to put intervals on any metric.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def pearson(real: np.ndarray, pred: np.ndarray) -> float:
    real, pred = np.asarray(real, float), np.asarray(pred, float)
    if real.std() == 0 or pred.std() == 0:
        return float("nan")
    return float(np.corrcoef(real, pred)[0, 1])


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given their average rank."""
    x = np.asarray(x, float)
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(1, len(x) + 1)
    for v in np.unique(x):
        tie = x == v
        ranks[tie] = ranks[tie].mean()
    return ranks


def spearman(real: np.ndarray, pred: np.ndarray) -> float:
    """Pearson correlation of average ranks."""
    return pearson(_ranks(real), _ranks(pred))


def kendall_tau_b(real: np.ndarray, pred: np.ndarray) -> float:
    """Kendall's tau-b: (concordant - discordant) / sqrt((n0 - ties_real)(n0 - ties_pred))."""
    real, pred = np.asarray(real, float), np.asarray(pred, float)
    i, j = np.triu_indices(len(real), k=1)
    dr, dp = np.sign(real[i] - real[j]), np.sign(pred[i] - pred[j])
    n0 = len(i)
    denom = np.sqrt((n0 - (dr == 0).sum()) * (n0 - (dp == 0).sum()))
    return float((dr * dp).sum() / denom) if denom else float("nan")


def mmrv(real: np.ndarray, pred: np.ndarray) -> float:
    """Mean Maximum Rank Violation (Li et al. 2024, SIMPLER):
        MMRV = 1/N * sum_i max_j |real_i - real_j| * 1[(pred_i < pred_j) != (real_i < real_j)].
    Tie convention: the comparisons are strict (<), as in SIMPLER. A pair the model ties while reality
    orders it (real_i < real_j) counts as a violation for i; a pair tied in reality weighs |real_i -
    real_j| = 0 and never counts. 0 is perfect; the unit is success rate."""
    real, pred = np.asarray(real, float), np.asarray(pred, float)
    viol = (pred[:, None] < pred[None, :]) != (real[:, None] < real[None, :])
    return float((np.abs(real[:, None] - real[None, :]) * viol).max(1).mean())


def mae(real: np.ndarray, pred: np.ndarray) -> float:
    return float(np.abs(np.asarray(pred, float) - np.asarray(real, float)).mean())


def bias(real: np.ndarray, pred: np.ndarray) -> float:
    """Mean of predicted - real: positive means the model is optimistic."""
    return float((np.asarray(pred, float) - np.asarray(real, float)).mean())


def pairwise_accuracy(real: np.ndarray, pred: np.ndarray) -> float:
    """Over policy pairs that reality orders strictly, the share the model orders the same way (a model
    tie counts one half)."""
    real, pred = np.asarray(real, float), np.asarray(pred, float)
    i, j = np.triu_indices(len(real), k=1)
    dr, dp = np.sign(real[i] - real[j]), np.sign(pred[i] - pred[j])
    keep = dr != 0
    if not keep.any():
        return float("nan")
    score = np.where(dp[keep] == 0, 0.5, (dr[keep] == dp[keep]).astype(float))
    return float(score.mean())


def checkpoint_regret(real: np.ndarray, pred: np.ndarray, groups: Sequence[str]) -> float:
    """Mean over groups (e.g. the checkpoints of one training run) of the true rate lost by deploying the
    checkpoint the model rates best instead of the truly best one. Model ties pick the worst of the tied
    (a conservative convention)."""
    real, pred, groups = np.asarray(real, float), np.asarray(pred, float), np.asarray(groups)
    losses = []
    for g in np.unique(groups):
        r, p = real[groups == g], pred[groups == g]
        picked = r[p == p.max()].min()
        losses.append(r.max() - picked)
    return float(np.mean(losses))


def bootstrap(
    metric: Callable[[np.ndarray, np.ndarray], float],
    real_episodes: Sequence[np.ndarray],
    pred_episodes: Sequence[np.ndarray],
    n: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """(value, low, high): the metric on per-policy means, and a percentile interval from resampling each
    policy's episodes (real and predicted outcomes resampled independently, as they are independent runs)."""
    rng = np.random.default_rng(seed)
    real = np.array([np.mean(e) for e in real_episodes])
    pred = np.array([np.mean(e) for e in pred_episodes])
    value = metric(real, pred)
    draws = []
    for _ in range(n):
        r = np.array([rng.choice(e, len(e)).mean() for e in real_episodes])
        p = np.array([rng.choice(e, len(e)).mean() for e in pred_episodes])
        draws.append(metric(r, p))
    draws = np.array(draws, float)
    draws = draws[np.isfinite(draws)]
    if not len(draws):
        return value, float("nan"), float("nan")
    a = (1 - level) / 2
    return value, float(np.quantile(draws, a)), float(np.quantile(draws, 1 - a))


def ab_pick_rate(
    real_episodes: Sequence[np.ndarray],
    pred_episodes: Sequence[np.ndarray],
    gap: float,
    width: float = 0.05,
    n: int = 1000,
    seed: int = 0,
    groups: Sequence[str] | None = None,
) -> tuple[float, float, float, int]:
    """A/B test: over policy pairs whose true gap is within `gap` +- `width`, how often the model picks the
    truly better one (a model tie counts one half). With `groups` (e.g. the task), only pairs within a
    group are compared. Returns (rate, low, high, pairs), the interval from resampling episodes."""
    real = np.array([np.mean(e) for e in real_episodes])
    i, j = np.triu_indices(len(real), k=1)
    d = np.abs(real[i] - real[j])
    sel = (d >= gap - width) & (d <= gap + width) & (d > 0)
    if groups is not None:
        g = np.asarray(groups)
        sel &= g[i] == g[j]
    if not sel.any():
        return float("nan"), float("nan"), float("nan"), 0
    pi, pj = i[sel], j[sel]
    better_i = real[pi] > real[pj]

    def rate(pred: np.ndarray) -> float:
        dp = pred[pi] - pred[pj]
        return float(np.where(dp == 0, 0.5, (dp > 0) == better_i).mean())

    pred = np.array([np.mean(e) for e in pred_episodes])
    rng = np.random.default_rng(seed)
    draws = [rate(np.array([rng.choice(e, len(e)).mean() for e in pred_episodes])) for _ in range(n)]
    return rate(pred), float(np.quantile(draws, 0.025)), float(np.quantile(draws, 0.975)), int(sel.sum())
