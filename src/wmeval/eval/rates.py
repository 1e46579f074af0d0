"""From imagined episodes' success probabilities to a policy's success rate: the rate map.

A success rule is calibrated per episode (wmeval.eval.success): fitted on single imagined episodes, each
labelled by its real episode's outcome. An imagined episode tells that outcome apart only partly (AUROC
0.7-0.8 at CPU scale), so its probability stays near the calibration's base rate, and the mean over a
policy's episodes, its predicted rate, is squeezed towards it: in the demo the best drawer checkpoints (true
80-90%) read 43-45%, the worst (0%) 15%. Averaging over a policy's episodes removes much of the per-episode
noise, so the squeeze is not what the per-episode calibration implies (dividing by the gap between the mean
probability of successes and of failures, "adjusted classify and count", overshoots: docs/RESULTS.md).

The rate map is fitted where it is read, on policies: per task, the real success rate of each calibration
policy (the training policies' episodes the weights never saw, imagined closed loop with that policy acting)
against the mean probability of its imagined episodes, a straight line by least squares weighted by the
policy's episodes. A judged episode's probability p then reads as clip(a + b p, 0, 1), so a policy's rate
follows the line its peers' rates follow. The line is fitted only where the rows can carry it, else the task
keeps the identity and the report says why: at least MIN_POLICIES policies with MIN_EPISODES episodes each,
real rates spanning MIN_SPREAD, and a slope above zero by MIN_T standard errors. Increasing, so each world
model's ranking within a task does not change; the rates of different tasks, their scale and an ensemble's
mean do (measured on two demo zoos: docs/RESULTS.md, "Rates read on the training policies' line").
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MIN_POLICIES = 6
MIN_EPISODES = 4
MIN_SPREAD = 0.3  # of the policies' real rates (max - min): a line needs rates that differ
MIN_T = 2.0  # slope / its standard error


@dataclass(frozen=True)
class RateMap:
    lines: dict[str, tuple[float, float]] = field(default_factory=dict)  # task -> (a, b); others: identity

    def apply(self, task: str, p: np.ndarray) -> np.ndarray:
        a, b = self.lines.get(task, (0.0, 1.0))
        return np.clip(a + b * np.asarray(p, float), 0.0, 1.0)

    def to_json(self) -> dict:
        return {t: [float(a), float(b)] for t, (a, b) in sorted(self.lines.items())}

    @classmethod
    def from_json(cls, d: dict) -> RateMap:
        return cls({t: (float(a), float(b)) for t, (a, b) in d.items()})


def _line(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[float, float, float]:
    """Weighted least squares y ~ a + b x, the weights relative (scaled to sum to the number of points):
    (a, b, the standard error of b)."""
    w = w * len(x) / w.sum()
    mx, my = (w * x).sum() / len(x), (w * y).sum() / len(x)
    sxx = (w * (x - mx) ** 2).sum()
    b = (w * (x - mx) * (y - my)).sum() / sxx
    a = my - b * mx
    s2 = (w * (y - a - b * x) ** 2).sum() / (len(x) - 2)
    return float(a), float(b), float(np.sqrt(s2 / sxx))


def fit_rate_map(p: np.ndarray, outcome: np.ndarray, policy: list[str], task: list[str], sample: list[int]
                 ) -> tuple[RateMap, dict]:  # fmt: skip
    """The rate map fitted on calibration rows (one per imagined sample of an episode: its probability, the
    real outcome, its policy, task and sample index), and per task a report: the line, or why the task keeps
    the identity. A policy's episodes are its rows of its most complete sample (a sample that failed to run
    drops a row, not the episode)."""
    p, y = np.asarray(p, float), np.asarray(outcome, float)
    policy, task, sample = np.asarray(policy), np.asarray(task), np.asarray(sample)
    lines, report = {}, {}
    for t in sorted(set(task.tolist())):
        xs, ys, ws = [], [], []
        for q in sorted(set(policy[task == t].tolist())):
            m = (task == t) & (policy == q)
            n = max(int((m & (sample == j)).sum()) for j in set(sample[m].tolist()))
            if n >= MIN_EPISODES:
                xs.append(p[m].mean()), ys.append(y[m].mean()), ws.append(n)
        x, yy, w = np.array(xs), np.array(ys), np.array(ws, float)
        r = {"policies": len(x), "episodes": int(w.sum())}
        if len(x) < MIN_POLICIES:
            r["why"] = f"{len(x)} policies with >= {MIN_EPISODES} episodes (a line needs {MIN_POLICIES})"
        elif yy.max() - yy.min() < MIN_SPREAD:
            r["why"] = f"their real rates span {yy.max() - yy.min():.2f} (a line needs {MIN_SPREAD})"
        elif np.ptp(x) == 0:
            r["why"] = "their mean probabilities are all equal"
        else:
            a, b, se = _line(x, yy, w)
            r |= {"a": a, "b": b, "slope_se": se, "pearson": float(np.corrcoef(x, yy)[0, 1])}
            if b < MIN_T * se:
                r["why"] = f"slope {b:.2f} +- {se:.2f} is not above zero by {MIN_T} standard errors"
            else:
                lines[t] = (a, b)
        report[t] = r
    return RateMap(lines), report


__all__ = ["MIN_EPISODES", "MIN_POLICIES", "MIN_SPREAD", "MIN_T", "RateMap", "fit_rate_map"]
