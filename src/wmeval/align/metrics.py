"""Alignment metrics between predicted and true per-policy success rates (each hand-checkable).

Inputs are aligned arrays over policies: `real[i]` the true success rate of policy i, `pred[i]` the world
model's predicted rate. Per-episode outcomes enter only through the bootstrap, which resamples each
policy's episodes to put intervals on any metric, and through the split-half noise ceiling.

Predictions may come from several world models (training seeds) judging the same episodes: then each
policy's predictions are an array (members, episodes), a metric is the mean over members of the metric of
each member, and the bootstrap resamples a policy's starts jointly for all members (they share starts).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import numpy as np

Metric = Callable[[np.ndarray, np.ndarray], float]


def pearson(real: np.ndarray, pred: np.ndarray) -> float:
    real, pred = np.asarray(real, float), np.asarray(pred, float)
    if np.ptp(real) == 0 or np.ptp(pred) == 0:  # constant: undefined (std() of equal floats can be 1e-18, not 0)
        return float("nan")
    with np.errstate(divide="ignore", invalid="ignore"):  # spreads so small their variance underflows: NaN
        return float(np.corrcoef(real, pred)[0, 1])


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given their average rank."""
    x = np.asarray(x, float)
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(1, len(x) + 1)
    _, tie, count = np.unique(x, return_inverse=True, return_counts=True)
    return (np.bincount(tie, weights=ranks) / count)[tie]  # each tie group's mean rank (sums of integers: exact)


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


def within_tasks(tasks: Sequence[str], metric: Metric) -> Metric:
    """`metric` applied within each task that has at least 2 policies, averaged over tasks (finite values
    only): ranking a push policy against a door policy says nothing about checkpoint selection."""
    tasks = np.asarray(tasks)
    names = [t for t in np.unique(tasks) if (tasks == t).sum() >= 2]

    def f(real: np.ndarray, pred: np.ndarray) -> float:
        vals = [metric(real[tasks == t], pred[tasks == t]) for t in names]
        vals = [v for v in vals if np.isfinite(v)]
        return float(np.mean(vals)) if vals else float("nan")

    return f


def spearman_brown(r: float, k: float = 2.0) -> float:
    """Reliability of a test k times as long as one with reliability r (Spearman 1910, Brown 1910):
    k r / (1 + (k - 1) r). With k = 2 it lifts a split-half correlation to the full trial count."""
    return float(k * r / (1 + (k - 1) * r)) if np.isfinite(r) and (1 + (k - 1) * r) > 0 else float("nan")


def split_half(real_episodes: Sequence[np.ndarray], metric: Metric, n: int = 200, seed: int = 0) -> np.ndarray:
    """The metric between two random halves of reality's own episodes (half A plays "reality", half B the
    "prediction"), for n random splits: how well a second, independent run of reality with half the trials
    agrees with the first. A policy with an odd count leaves one episode out of each split."""
    rng = np.random.default_rng(seed)
    eps = [np.asarray(e, float) for e in real_episodes]
    out = np.empty(n)
    for k in range(n):
        a, b = [], []
        for e in eps:
            perm = rng.permutation(len(e))
            h = len(e) // 2
            a.append(e[perm[:h]].mean() if h else np.nan)
            b.append(e[perm[h : 2 * h]].mean() if h else np.nan)
        out[k] = metric(np.array(a), np.array(b))
    return out


def _members(pred_episodes: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Each policy's predictions as (members, episodes); a 1-D array is one member."""
    out = [np.atleast_2d(np.asarray(p, float)) for p in pred_episodes]
    if len({p.shape[0] for p in out}) > 1:
        raise ValueError("every policy needs predictions from the same number of world models")
    return out


def member_mean(metric: Metric, real: np.ndarray, pred_members: np.ndarray) -> float:
    """Mean over members of metric(real, pred_members[s]); pred_members (members, policies)."""
    vals = [metric(real, p) for p in pred_members]
    vals = [v for v in vals if np.isfinite(v)]
    return float(np.mean(vals)) if vals else float("nan")


def resampled_rates(
    real_episodes: Sequence[np.ndarray], pred_episodes: Sequence[np.ndarray], n: int = 1000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """`n` bootstrap draws of every policy's rates: real (n, policies) and predicted (n, members, policies).
    Each policy's real and predicted episodes are resampled independently (they are independent runs);
    members share the resampled starts. Draw them once and pass them to `bootstrap` for every metric."""
    rng = np.random.default_rng(seed)
    preds = _members(pred_episodes)
    real = np.empty((n, len(real_episodes)))
    pred = np.empty((n, preds[0].shape[0], len(preds)))
    for b in range(n):
        real[b] = [rng.choice(e, len(e)).mean() for e in real_episodes]
        pred[b] = _resampled_members(preds, rng)
    return real, pred


def _resampled_members(preds: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """One bootstrap draw of every policy's predicted rate per member, (members, policies): each policy's
    starts resampled once, shared by its members."""
    return np.stack([q[:, rng.integers(0, q.shape[1], q.shape[1])].mean(1) for q in preds], 1)


def bootstrap(
    metric: Metric,
    real_episodes: Sequence[np.ndarray],
    pred_episodes: Sequence[np.ndarray],
    n: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    draws: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[float, float, float]:
    """(value, low, high): the metric on per-policy means (averaged over members when predictions are
    (members, episodes)), and a percentile interval over the resampled rates of `resampled_rates(real_episodes,
    pred_episodes, n, seed)` (`draws`: those, drawn once for several metrics)."""
    preds = _members(pred_episodes)
    real = np.array([np.mean(e) for e in real_episodes])
    value = member_mean(metric, real, np.stack([p.mean(1) for p in preds], 1))
    r_draws, p_draws = draws if draws is not None else resampled_rates(real_episodes, preds, n, seed)
    vals = np.array([member_mean(metric, r, p) for r, p in zip(r_draws, p_draws, strict=True)], float)
    return (value, *bias_corrected_interval(vals, value, level))


def bias_corrected_interval(draws: np.ndarray, value: float, level: float = 0.95) -> tuple[float, float]:
    """Bias-corrected percentile bootstrap interval (Efron 1981): the percentiles are shifted by
    z0 = Phi^-1(share of draws below the value). Resampling episodes adds noise to rates that are already
    noisy, which pulls rank correlations of the draws towards 0; plain percentiles then give intervals
    that can miss the value itself, the corrected ones do not."""
    from statistics import NormalDist

    draws = draws[np.isfinite(draws)]
    if not len(draws) or not np.isfinite(value):
        return float("nan"), float("nan")
    n, N = len(draws), NormalDist()
    share = ((draws < value).sum() + 0.5 * (draws == value).sum()) / n
    z0 = N.inv_cdf(min(max(share, 1 / (n + 1)), n / (n + 1)))
    z = N.inv_cdf((1 + level) / 2)
    lo, hi = np.quantile(draws, [N.cdf(2 * z0 - z), N.cdf(2 * z0 + z)])
    # when (nearly) every draw falls on one side, the correction runs out of draws: keep the value inside
    return float(min(lo, value)), float(max(hi, value))


def ab_pick_rate(
    real_episodes: Sequence[np.ndarray],
    pred_episodes: Sequence[np.ndarray],
    gap: float,
    width: float = 0.05,
    n: int = 1000,
    seed: int = 0,
    groups: Sequence[str] | None = None,
    draws: np.ndarray | None = None,
) -> tuple[float, float, float, int]:
    """A/B test: over policy pairs whose true gap is within `gap` +- `width`, how often the model picks the
    truly better one (a model tie counts one half; several members: their mean). With `groups` (e.g. the
    task), only pairs within a group are compared. Returns (rate, low, high, pairs), the interval from
    resampling the predicted episodes (reality's rates are the reference); `draws`: those resampled rates,
    `resampled_predictions(pred_episodes, n, seed)`, drawn once for several gaps."""
    real = np.array([np.mean(e) for e in real_episodes])
    i, j = np.triu_indices(len(real), k=1)
    d = np.abs(real[i] - real[j])
    sel = (d >= gap - width - 1e-9) & (d <= gap + width + 1e-9) & (d > 0)
    if groups is not None:
        g = np.asarray(groups)
        sel &= g[i] == g[j]
    if not sel.any():
        return float("nan"), float("nan"), float("nan"), 0
    pi, pj = i[sel], j[sel]
    better_i = real[pi] > real[pj]

    def rate(pred_members: np.ndarray) -> np.ndarray:  # (..., members, policies) -> (...)
        dp = pred_members[..., pi] - pred_members[..., pj]
        return np.where(dp == 0, 0.5, (dp > 0) == better_i).mean((-2, -1))

    preds = _members(pred_episodes)
    value = float(rate(np.stack([q.mean(1) for q in preds], 1)))
    rates = rate(draws if draws is not None else resampled_predictions(preds, n, seed))
    return (value, *bias_corrected_interval(rates.astype(float), value), int(sel.sum()))


def resampled_predictions(pred_episodes: Sequence[np.ndarray], n: int = 1000, seed: int = 0) -> np.ndarray:
    """`n` bootstrap draws of the predicted rates alone, (n, members, policies): `ab_pick_rate`'s draws, the
    same for every gap (reality's rates are its reference)."""
    preds = _members(pred_episodes)
    rng = np.random.default_rng(seed)
    out = np.empty((n, preds[0].shape[0], len(preds)))
    for b in range(n):
        out[b] = _resampled_members(preds, rng)
    return out


def ensemble_curve(metric: Metric, real: np.ndarray, member_rates: np.ndarray, draws: int = 500,
                   seed: int = 0) -> list[dict]:  # fmt: skip
    """`metric` of ensembles of K members (the mean of their predicted rates), K = 1 .. members: the mean,
    standard deviation and 10-90% range over K-member subsets drawn without replacement (every subset where
    there are at most `draws`). member_rates (members, policies). A curve still rising at the last member says
    another training seed would still pay; a flat one, that the members share their errors."""
    member_rates = np.asarray(member_rates, float)
    n = member_rates.shape[0]
    rng = np.random.default_rng(seed)
    out = []
    for k in range(1, n + 1):
        if math.comb(n, k) <= draws:
            subsets = [list(s) for s in itertools.combinations(range(n), k)]
        else:
            subsets = [rng.choice(n, size=k, replace=False) for _ in range(draws)]
        vals = np.array([metric(real, member_rates[s].mean(0)) for s in subsets])
        vals = vals[np.isfinite(vals)]
        stats = (vals.mean(), vals.std(), *np.percentile(vals, [10, 90])) if len(vals) else (None,) * 4
        names = ("value", "sd", "p10", "p90")
        out.append({"members": k, "ensembles": len(subsets),
                    **{n: None if v is None else float(v) for n, v in zip(names, stats, strict=True)}})
    return out
