"""From the value head to a success probability, and open-loop replay of recorded episodes.

An imagined episode yields the value head's prediction at every frame. A `SuccessRule` reduces that
trajectory to one statistic (`final`: the last frame's value; `max`: the highest value seen; `mean-last`:
the mean of the last `last` frames; `mean-first`: the mean over generated frames 1..`first`) and maps it to a
calibrated probability with Platt scaling, p = sigmoid(a * logit(stat) + b), fitted by maximum likelihood on
episodes whose real outcome is known. `fit_rule(..., stat="auto")` tries every statistic (`mean-first` at
each horizon of `FIRSTS`) and keeps the one with the lowest Brier score.

Why a horizon: imagination drifts, so a world model's late frames can carry less about the outcome than its
early ones, where the value head reads what the policy's first moves make likely. How far to read is then a
property of the world model, chosen on the same held-out episodes as the rest of the rule (measured in
docs/RESULTS.md, "How far into an imagined episode a verdict should read").

Calibration episodes come from the world model's own validation split: recorded with the policies it was
trained on, but never seen by its weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
from tqdm import tqdm

from wmeval.data.store import EpisodeMeta, EpisodeStore
from wmeval.metrics import auroc
from wmeval.model.world_model import WorldModel, begin

STATS = ("final", "max", "mean-last", "mean-first")
FIRSTS = (2, 5, 10, 15, 20, 30, 40)  # horizons `auto` tries for `mean-first` (those shorter than the episodes)
EPS = 1e-4


def _logit(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, EPS, 1 - EPS)
    return np.log(x / (1 - x))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -x))  # 1 / (1 + exp(-x)) without overflow


@dataclass(frozen=True)
class SuccessRule:
    stat: str = "final"
    last: int = 4  # frames averaged by `mean-last`
    a: float = 1.0
    b: float = 0.0
    first: int = 10  # generated frames averaged by `mean-first` (frame 0 is the last real context frame)

    def __post_init__(self) -> None:
        if self.stat not in STATS:
            raise ValueError(f"unknown success statistic {self.stat!r}; valid: {', '.join(STATS)} (or 'auto')")
        if self.last < 1 or self.first < 1:
            raise ValueError(f"last and first must be >= 1, got {self.last} and {self.first}")

    def statistic(self, values: np.ndarray) -> np.ndarray:
        """values float[N, T] (value of every frame) -> float[N]."""
        v = np.asarray(values, np.float64)
        if self.stat == "final":
            return v[:, -1]
        if self.stat == "max":
            return v.max(axis=1)
        if self.stat == "mean-first":
            return v[:, 1 : self.first + 1].mean(axis=1) if v.shape[1] > 1 else v[:, 0]
        return v[:, -self.last :].mean(axis=1)

    def frames_read(self, n: int) -> int:
        """How many of an episode's `n` generated frames the statistic reads: `mean-first` needs only the first
        `first` of them, so imagination may stop there; every other statistic reads to the end."""
        return min(self.first, n) if self.stat == "mean-first" else n

    def probability(self, values: np.ndarray) -> np.ndarray:
        return _sigmoid(self.a * _logit(self.statistic(values)) + self.b)

    def to_json(self) -> dict:
        return asdict(self)


def _platt(x: np.ndarray, y: np.ndarray, l2: float = 1e-2, iters: int = 100) -> tuple[float, float]:
    """Logistic regression of y on x (slope + bias) by damped Newton steps (halved until the penalised
    negative log-likelihood decreases), with a light L2 pull towards the identity map (slope 1, bias 0) so
    that separable data still gives a finite fit."""
    X = np.stack([x, np.ones_like(x)], 1)
    prior = np.array([1.0, 0.0])

    def nll(w: np.ndarray) -> float:
        z = X @ w
        return float(np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * l2 * np.sum((w - prior) ** 2))

    w, f = prior.copy(), nll(prior)
    for _ in range(iters):
        p = _sigmoid(X @ w)
        g = X.T @ (p - y) + l2 * (w - prior)
        H = (X * (p * (1 - p))[:, None]).T @ X + l2 * np.eye(2)
        step, t = np.linalg.solve(H, g), 1.0
        while t > 1e-8 and nll(w - t * step) > f:
            t /= 2
        if t <= 1e-8:
            break
        w = w - t * step
        f_new = nll(w)
        if f - f_new < 1e-10:
            break
        f = f_new
    return float(w[0]), float(w[1])


def fitted_rules(values: np.ndarray, outcomes: np.ndarray, stat: str = "auto", last: int = 4
                 ) -> list[tuple[float, SuccessRule]]:  # fmt: skip
    """Every candidate rule (one statistic, or all with "auto"; `mean-first` at each horizon of `FIRSTS` shorter
    than the episodes) Platt-fitted on episodes with known outcomes, with its Brier score there."""
    y = np.asarray(outcomes, float)
    if len(y) < 2 or y.min() == y.max():
        raise ValueError(
            f"calibration needs both successes and failures among its episodes, got {int(y.sum())} of {len(y)} "
            "successful; train the world model on data with both, or pass a fixed --rule"
        )
    horizons = [k for k in FIRSTS if k < np.shape(values)[1]] or [max(1, np.shape(values)[1] - 1)]
    out = []
    for s in STATS if stat == "auto" else (stat,):
        for k in horizons if s == "mean-first" else (10,):
            c = SuccessRule(s, last, first=k)
            a, b = _platt(_logit(c.statistic(values)), y)
            rule = replace(c, a=a, b=b)
            out.append((brier(rule.probability(values), y), rule))
    return out


def fit_rule(values: np.ndarray, outcomes: np.ndarray, stat: str = "auto", last: int = 4) -> SuccessRule:
    """Calibrate a rule on episodes with known outcomes; `stat="auto"` keeps the lowest-Brier statistic (and
    `mean-first` the lowest-Brier horizon of `FIRSTS`); the first of equals wins."""
    return min(fitted_rules(values, outcomes, stat, last), key=lambda sr: sr[0])[1]


def brier(p: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((np.asarray(p, float) - np.asarray(y, float)) ** 2))


def outcome_metrics(p: np.ndarray, y: np.ndarray) -> dict:
    """Per-episode agreement of predicted probabilities with real outcomes (prediction: p >= 0.5)."""
    p, y = np.asarray(p, float), np.asarray(y, bool)
    hat = p >= 0.5
    tpr = float(hat[y].mean()) if y.any() else float("nan")
    tnr = float((~hat[~y]).mean()) if (~y).any() else float("nan")
    return {
        "episodes": int(len(y)),
        "successes": int(y.sum()),
        "accuracy": float((hat == y).mean()),
        "balanced_accuracy": float(np.nanmean([tpr, tnr])),
        "auroc": auroc(p, y),
        "brier": brier(p, y),
    }


@torch.no_grad()
def replay_values(
    model: WorldModel, store: EpisodeStore, metas: Sequence[EpisodeMeta], batch_size: int = 64, seed: int = 0,
    progress: bool = True,
) -> np.ndarray:  # fmt: skip
    """Open-loop replay: each episode's logged actions from its recorded first frame; the readout of every
    frame float32[N, T]. Episodes are grouped by length (a batch shares one length); each has its own
    sampling noise, seeded by its start (as in imagination), so it does not depend on its batch."""
    from wmeval.eval.imagination import noise_seed
    from wmeval.types import Start

    out = np.zeros((len(metas), max((m.length for m in metas), default=0)), np.float32)
    order = sorted(range(len(metas)), key=lambda i: metas[i].length)
    bar = tqdm(total=len(metas), desc="replay", unit="episode", disable=not progress)
    i = 0
    while i < len(order):
        T = metas[order[i]].length
        idx = [j for j in order[i : i + batch_size] if metas[j].length == T]
        eps = [store.load(metas[j].key, verify=False) for j in idx]
        frames = torch.from_numpy(np.stack([np.array(e.frames[:1]) for e in eps]))
        proprio = torch.from_numpy(np.stack([np.array(e.proprio[:1]) for e in eps]))
        actions = torch.from_numpy(np.stack([np.array(e.actions[: T - 1]) for e in eps]))
        im = begin(model, frames, proprio)
        out[idx, 0] = im.value.float().cpu().numpy()
        g = [torch.Generator().manual_seed(noise_seed(seed, Start.from_json(metas[j].start))) for j in idx]
        for t in range(T - 1):
            step = im.step(actions[:, t].to(im.value.device), g, decode=False)
            out[idx, t + 1] = step.value[:, 0].float().cpu().numpy()
        bar.update(len(idx))
        i += len(idx)
    bar.close()
    return out


def bootstrap_mean(x: np.ndarray, n: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high) with a percentile bootstrap over the entries of `x`."""
    x = np.asarray(x, float)
    if not len(x):
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    draws = x[rng.integers(0, len(x), (n, len(x)))].mean(1)
    a = (1 - level) / 2
    return float(x.mean()), float(np.quantile(draws, a)), float(np.quantile(draws, 1 - a))
