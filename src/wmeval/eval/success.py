"""From the value head to a success probability, and open-loop replay of recorded episodes.

An imagined episode yields the value head's prediction at every frame. A `SuccessRule` reduces that
trajectory to one statistic (`final`: the last frame's value; `max`: the highest value seen; `mean-last`:
the mean of the last `last` frames; `mean-first`: the mean over generated frames 1..`first`; `mean`, as a rule
to fit: `mean-first` over every generated frame) and maps it to a
calibrated probability with Platt scaling, p = sigmoid(a * logit(stat) + b), fitted by maximum likelihood on
episodes whose real outcome is known. `fit_rule(..., stat="auto")` tries every statistic (`mean-first` at
each horizon of `FIRSTS`) and keeps the one with the lowest Brier score. `combined` (the default of `wmeval
evaluate`) keeps them all: p = sigmoid(b + sum_i w_i * z_i), z_i the standardised logit of candidate i, an
L2-penalised logistic regression; it does not stake the verdict on one choice made on a few dozen episodes
(seeds of one recipe chose horizons from 2 to 40 frames), and ranks better (docs/RESULTS.md).

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
from wmeval.model.rollout import begin
from wmeval.model.world_model import WorldModel

STATS = ("final", "max", "mean-last", "mean-first")  # single statistics; `combined` is a logistic mix of them all
FIRSTS = (2, 5, 10, 15, 20, 30, 40)  # horizons `auto` tries for `mean-first` (those shorter than the episodes)
EPS = 1e-4
COMBINED_L2 = 1.0  # weight decay of `combined` on standardised features (1 and 10 rank alike, docs/RESULTS.md)


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
    # `combined`: its candidate rules (JSON of single-statistic rules), their logits' centre and scale, weights
    parts: tuple = ()
    center: tuple = ()
    scale: tuple = ()
    weights: tuple = ()

    def __post_init__(self) -> None:
        if self.stat not in (*STATS, "combined"):
            valid = ", ".join((*STATS, "combined"))
            raise ValueError(f"unknown success statistic {self.stat!r}; valid: {valid} (or 'auto')")
        if self.last < 1 or self.first < 1:
            raise ValueError(f"last and first must be >= 1, got {self.last} and {self.first}")
        for name in COMBINED_FIELDS:  # JSON gives lists; a frozen rule keeps tuples
            object.__setattr__(self, name, tuple(getattr(self, name)))
        n = len(self.parts)
        if self.stat == "combined" and not (n and len(self.center) == len(self.scale) == len(self.weights) == n):
            raise ValueError(f"a combined rule needs parts, center, scale and weights of one length, got {self}")

    @property
    def components(self) -> list[SuccessRule]:
        return [SuccessRule(**p) for p in self.parts]

    def describe(self) -> str:
        """How the rule reads an episode, for reports."""
        if self.stat == "combined":
            names = ", ".join(c.name for c in self.components)
            return f"a logistic combination of {len(self.parts)} value statistics ({names})"
        return f"the {self.name} value, Platt-calibrated (a={self.a:.2f}, b={self.b:.2f})"

    @property
    def name(self) -> str:
        return f"first-{self.first}" if self.stat == "mean-first" else self.stat

    def statistic(self, values: np.ndarray) -> np.ndarray:
        """values float[N, T] (value of every frame) -> float[N]."""
        v = np.asarray(values, np.float64)
        if self.stat == "combined":
            raise ValueError("a combined rule has no single statistic; use probability()")
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
        if self.stat == "combined":
            return max(c.frames_read(n) for c in self.components)
        return min(self.first, n) if self.stat == "mean-first" else n

    def probability(self, values: np.ndarray) -> np.ndarray:
        if self.stat == "combined":
            z = _features(self.components, values, self.center, self.scale)
            return _sigmoid(z @ np.array(self.weights) + self.b)
        return _sigmoid(self.a * _logit(self.statistic(values)) + self.b)

    def to_json(self) -> dict:
        d = asdict(self)
        return d if self.stat == "combined" else {k: v for k, v in d.items() if k not in COMBINED_FIELDS}


COMBINED_FIELDS = ("parts", "center", "scale", "weights")


def _features(rules: Sequence[SuccessRule], values: np.ndarray, center, scale) -> np.ndarray:
    """float[N, len(rules)]: each rule's statistic as a logit, standardised."""
    z = np.stack([_logit(r.statistic(values)) for r in rules], 1)
    return (z - np.asarray(center)) / np.asarray(scale)


def _platt(x: np.ndarray, y: np.ndarray, l2: float = 1e-2) -> tuple[float, float]:
    """Logistic regression of y on x (slope + bias), with a light L2 pull towards the identity map (slope 1,
    bias 0) so that separable data still gives a finite fit."""
    a, b = _logistic(np.stack([x, np.ones_like(x)], 1), y, np.array([1.0, 0.0]), np.array([l2, l2]))
    return float(a), float(b)


def _logistic(X: np.ndarray, y: np.ndarray, prior: np.ndarray, l2: np.ndarray, iters: int = 100) -> np.ndarray:
    """Weights w of p = sigmoid(X @ w) by maximum likelihood with an L2 pull of strength l2[i] towards prior[i],
    by damped Newton steps (halved until the penalised negative log-likelihood decreases)."""
    y = np.asarray(y, float)

    def nll(w: np.ndarray) -> float:
        z = X @ w
        return float(np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * np.sum(l2 * (w - prior) ** 2))

    w, f = prior.astype(float), nll(prior)
    for _ in range(iters):
        p = _sigmoid(X @ w)
        g = X.T @ (p - y) + l2 * (w - prior)
        H = (X * (p * (1 - p))[:, None]).T @ X + np.diag(l2) + 1e-9 * np.eye(len(w))
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
    return w


def fitted_rules(values: np.ndarray, outcomes: np.ndarray, stat: str = "auto", last: int = 4
                 ) -> list[tuple[float, SuccessRule]]:  # fmt: skip
    """Every candidate rule (`candidates`) Platt-fitted on episodes with known outcomes, with its Brier score there."""
    y = _labels(outcomes)
    out = []
    for c in candidates(np.shape(values)[1], stat, last):
        a, b = _platt(_logit(c.statistic(values)), y)
        rule = replace(c, a=a, b=b)
        out.append((brier(rule.probability(values), y), rule))
    return out


def candidates(frames: int, stat: str = "auto", last: int = 4) -> list[SuccessRule]:
    """The uncalibrated rules of one statistic, or of all with "auto", for episodes of `frames` frames:
    `mean-first` at each horizon of `FIRSTS` shorter than the episodes; "mean": `mean-first` over all of them."""
    if stat == "mean":
        return [SuccessRule("mean-first", last, first=max(1, frames - 1))]
    horizons = [k for k in FIRSTS if k < frames] or [max(1, frames - 1)]
    return [SuccessRule(s, last, first=k) for s in (STATS if stat == "auto" else (stat,))
            for k in (horizons if s == "mean-first" else (10,))]  # fmt: skip


def _labels(outcomes: np.ndarray) -> np.ndarray:
    y = np.asarray(outcomes, float)
    if len(y) < 2 or y.min() == y.max():
        raise ValueError(
            f"calibration needs both successes and failures among its episodes, got {int(y.sum())} of {len(y)} "
            "successful; train the world model on data with both, or pass a fixed --rule"
        )
    return y


def fit_rule(values: np.ndarray, outcomes: np.ndarray, stat: str = "auto", last: int = 4) -> SuccessRule:
    """Calibrate a rule on episodes with known outcomes; `stat="auto"` keeps the lowest-Brier statistic (and
    `mean-first` the lowest-Brier horizon of `FIRSTS`; the first of equals wins); `combined` mixes them all;
    `mean` reads the mean of every generated frame (for short rollouts, whose statistics all nearly agree)."""
    if stat == "combined":
        return fit_combined(values, outcomes, last)
    return min(fitted_rules(values, outcomes, stat, last), key=lambda sr: sr[0])[1]


def fit_combined(values: np.ndarray, outcomes: np.ndarray, last: int = 4, l2: float = COMBINED_L2) -> SuccessRule:
    """Every candidate statistic of `auto` as a standardised logit, mixed by a logistic regression whose weights
    are pulled towards 0 (strength `l2`; the bias is free): correlated candidates share the weight instead of
    one of them winning on noise."""
    parts, z = statistics(values, last)
    return fit_statistics(z, outcomes, parts, "combined", l2)


def statistics(values: np.ndarray, last: int = 4) -> tuple[list[SuccessRule], np.ndarray]:
    """The candidates of `auto` for episodes of these values' length, and float[N, len(candidates)]: each one's
    statistic of every episode as a logit. What `combined` and `auto` are fitted on, so episodes kept as these
    alone (a shipped model's calibration readouts, wmeval.models) fit the same rules as their values would."""
    parts = candidates(np.shape(values)[1], "auto", last)
    return parts, _features(parts, values, 0.0, 1.0)


def statistics_probability(rule: SuccessRule, parts: Sequence[SuccessRule], z: np.ndarray) -> np.ndarray:
    """`rule.probability` of the episodes whose `statistics` over `parts` are z (rule: fitted on such)."""
    if rule.stat == "combined":
        return _sigmoid((z - np.asarray(rule.center)) / np.asarray(rule.scale) @ np.array(rule.weights) + rule.b)
    i = [p.name for p in parts].index(rule.name)
    return _sigmoid(rule.a * z[:, i] + rule.b)


def fit_statistics(z: np.ndarray, outcomes: np.ndarray, parts: Sequence[SuccessRule], stat: str = "combined",
                   l2: float = COMBINED_L2) -> SuccessRule:  # fmt: skip
    """`fit_rule` (stat `combined` or `auto`) on episodes given by their `statistics` z over `parts`."""
    y = _labels(outcomes)
    if stat == "auto":
        fits = []
        for i, c in enumerate(parts):
            a, b = _platt(z[:, i], y)
            fits.append((brier(_sigmoid(a * z[:, i] + b), y), replace(c, a=a, b=b)))
        return min(fits, key=lambda sr: sr[0])[1]
    if stat != "combined":
        raise ValueError(f"rules fitted on statistics are `combined` or `auto`, not {stat!r}")
    last = parts[0].last
    center, scale = z.mean(0), z.std(0) + 1e-6
    X = np.hstack([(z - center) / scale, np.ones((len(z), 1))])
    n = len(parts)
    w = _logistic(X, y, np.zeros(n + 1), np.r_[np.full(n, l2), 0.0])
    return SuccessRule("combined", last, b=float(w[-1]), parts=tuple(r.to_json() for r in parts),
                       center=tuple(map(float, center)), scale=tuple(map(float, scale)),
                       weights=tuple(map(float, w[:-1])))  # fmt: skip


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
        g = [torch.Generator().manual_seed(noise_seed(seed, Start.from_json(metas[j].start))) for j in idx]
        out[idx, :T] = step_values(begin(model, frames, proprio), actions, g)
        bar.update(len(idx))
        i += len(idx)
    bar.close()
    return out


def step_values(im, actions: torch.Tensor, generators: list[torch.Generator]) -> np.ndarray:
    """The readout of a begun imagination (`begin`) and of each frame it imagines under `actions` (B, K, chunk,
    action_dim) applied open loop: float32[B, K + 1]."""
    out = np.zeros((len(actions), actions.shape[1] + 1), np.float32)
    out[:, 0] = im.value.float().cpu().numpy()
    for k in range(actions.shape[1]):
        step = im.step(actions[:, k].to(im.value.device), generators, decode=False)
        out[:, k + 1] = step.value[:, 0].float().cpu().numpy()
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
