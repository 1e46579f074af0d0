"""`wmeval align`: how well the world model's verdicts agree with reality.

Joins one or more evaluations (`wmeval evaluate`: predicted per-episode success probabilities; several
evaluations are world models trained with different seeds judging the same policies on the same starts)
with the true outcomes of the same policies on the same tasks (episodes recorded by `wmeval collect`, its
`true_success.json`, or a CSV of a real robot's trials: policy,task,successes,trials), and computes every
metric of `wmeval.align.metrics` with bootstrap intervals.

Conventions (stated in the JSON too):
- Within-task metrics come first: they are what checkpoint selection and A/B tests use. Spearman, Pearson,
  MMRV (SIMPLER) and pairwise accuracy are computed within each task and averaged over tasks.
- Pooled correlations, MAE and bias over all (policy, task) pairs come second: tasks differ in difficulty,
  so a pooled correlation can look good while no task is ranked right.
- Several world models: each metric is the mean over members (seeds) with the between-seed spread, and the
  ensemble (per-episode probabilities averaged over members) is scored beside it. A policy's disagreement is
  the between-seed standard deviation of its predicted rate; `trust` measures whether it flags errors.
- Noise ceiling: the same metrics between two random halves of reality's own episodes; correlations are
  Spearman-Brown corrected to the full trial count.
- Checkpoint regret: per training run (same task, variant, data), the checkpoints judged without
  degradation wrappers; the mean over runs of (best true rate - true rate of the checkpoint picked).
- A/B pick rate: pairs of policies of the same task whose true rates differ by gap +- 5 points.
- Episode accuracy: the open-loop replay of the judged policies' recorded episodes (1X's "alignment").
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from wmeval.align import metrics as M
from wmeval.align.truth import real_outcomes_from_file, real_outcomes_from_store
from wmeval.data.store import EpisodeStore, atomic_write_text
from wmeval.eval.success import bootstrap_mean
from wmeval.metrics import auroc
from wmeval.stats import wilson_interval

GAPS = tuple(round(0.05 * k, 2) for k in range(1, 11))
AB_HEADLINE = (0.10, 0.15, 0.20)
LOW_TRUST_STD = 0.10  # between-seed std of a predicted rate (10 points) above which a verdict is flagged


@dataclass
class Joined:
    policies: list[dict]  # rows of the first evaluation, in order
    real: list[np.ndarray]  # per policy: real outcomes (0/1)
    pred: list[np.ndarray]  # per policy: predicted probabilities, (members, episodes) on common starts


def _rows(evaluation: dict) -> dict[tuple[str, str], dict]:
    return {(p["policy"], p["task"]): p for p in evaluation["policies"] if p["episodes"] > 0}


def predictions(evaluations: list[dict]) -> tuple[list[dict], list[np.ndarray], list[list[int]]]:
    """The judged (policy, task) rows of the first evaluation and, per row, the members' per-episode
    probabilities (members, episodes) on the starts every member imagined, and those starts' seeds."""
    first = _rows(evaluations[0])
    for k, ev in enumerate(evaluations[1:], start=2):
        other = _rows(ev)
        if set(other) != set(first):
            diff = sorted(f"{p} ({t})" for p, t in set(first) ^ set(other))
            raise ValueError(
                f"evaluation {k} ({ev['model']}) and evaluation 1 ({evaluations[0]['model']}) judge different "
                f"policies: {', '.join(diff)}; evaluate every world model on the same --policies and --seed"
            )
    rows, pred, starts = list(first.values()), [], []
    for p in rows:
        members = [_rows(ev)[(p["policy"], p["task"])] for ev in evaluations]
        common = sorted(set.intersection(*(set(m["seeds"]) for m in members)))
        if not common:
            raise ValueError(f"the world models share no imagined start of {p['policy']} ({p['task']})")
        pred.append(np.array([[dict(zip(m["seeds"], m["probabilities"], strict=True))[s] for s in common]
                              for m in members], float))  # fmt: skip
        starts.append(common)
    return rows, pred, starts


def join(evaluations: list[dict], truth: dict[tuple[str, str], list], truth_source: str) -> Joined:
    rows, pred, _ = predictions(evaluations)
    missing = [f"{p['policy']} ({p['task']})" for p in rows if not truth.get((p["policy"], p["task"]))]
    if missing:
        ev = evaluations[0]
        raise ValueError(
            f"{truth_source} has no real episodes for {len(missing)} of the {len(rows)} judged policies: "
            f"{', '.join(missing)}; record them with `wmeval collect --zoo {ev['zoo']} --seed "
            f"{ev['seeds'][0]} --episodes {ev['seeds'][1] - ev['seeds'][0] + 1}`"
        )
    if len(rows) < 2:
        raise ValueError("alignment needs at least 2 judged policies with episodes")
    real = [np.array(truth[(p["policy"], p["task"])], float) for p in rows]
    return Joined(rows, real, pred)


def checkpoint_groups(rows: list[dict]) -> list[str | None]:
    """Training run of each policy for checkpoint selection; None for degraded copies and lone checkpoints."""
    runs = [None if p["tags"].get("degraded") else f"{p['task']}/{p['tags'].get('run')}" for p in rows]
    counts = defaultdict(int)
    for r in runs:
        counts[r] += 1
    return [r if r is not None and counts[r] >= 2 else None for r in runs]


def policy_metrics(rows: list[dict]) -> dict[str, M.Metric]:
    """Every policy-level metric, within-task ones first; each maps (real rates, predicted rates) to a float."""
    tasks = [p["task"] for p in rows]
    groups = checkpoint_groups(rows)
    sel = np.array([g is not None for g in groups])
    gsel = [g for g in groups if g is not None]
    regret = (lambda r, p: M.checkpoint_regret(r[sel], p[sel], gsel)) if sel.any() else (lambda r, p: float("nan"))
    return {
        "within_task_spearman": M.within_tasks(tasks, M.spearman),
        "within_task_pearson": M.within_tasks(tasks, M.pearson),
        "mmrv": M.within_tasks(tasks, M.mmrv),
        "pairwise_accuracy": M.within_tasks(tasks, M.pairwise_accuracy),
        "checkpoint_regret": regret,
        "pearson": M.pearson, "spearman": M.spearman, "kendall_tau_b": M.kendall_tau_b,
        "mae": M.mae, "bias": M.bias,
    }  # fmt: skip


def _interval(value: float, low: float, high: float) -> dict:
    return {"value": value, "low": low, "high": high}


def _with_seeds(d: dict, seed_values: list[float]) -> dict:
    """Adds the between-seed spread to a metric's {value, low, high} when there are several members."""
    if len(seed_values) > 1:
        v = np.array(seed_values, float)
        d["seed_values"] = [float(x) for x in v]
        d["seed_std"] = float(np.nanstd(v, ddof=1)) if np.isfinite(v).sum() > 1 else float("nan")
    return d


def score(j: Joined, n_boot: int, seed: int) -> dict:
    """Every policy-level metric with a bootstrap interval (and the between-seed spread), and the A/B curve."""
    rates_real = np.array([r.mean() for r in j.real])
    rates_pred = np.stack([p.mean(1) for p in j.pred], 1)  # (members, policies)
    out = {}
    draws = M.resampled_rates(j.real, j.pred, n_boot, seed)  # the same draws for every metric
    for name, metric in policy_metrics(j.policies).items():
        d = _interval(*M.bootstrap(metric, j.real, j.pred, draws=draws))
        out[name] = _with_seeds(d, [metric(rates_real, p) for p in rates_pred])
    tasks = [p["task"] for p in j.policies]
    curve, ab_draws = [], M.resampled_predictions(j.pred, n_boot, seed)
    for gap in GAPS:
        rate, lo, hi, pairs = M.ab_pick_rate(j.real, j.pred, gap, groups=tasks, draws=ab_draws)
        per_member = [M.ab_pick_rate(j.real, [p[s : s + 1] for p in j.pred], gap, n=1, groups=tasks)[0]
                      for s in range(len(rates_pred))] if len(rates_pred) > 1 else []  # fmt: skip
        curve.append(_with_seeds({"gap": gap, "rate": rate, "low": lo, "high": hi, "pairs": pairs}, per_member))
    out["ab_curve"] = curve
    for gap in AB_HEADLINE:
        a = next(a for a in curve if abs(a["gap"] - gap) < 1e-9)
        key = f"ab_pick_rate_{round(100 * gap)}"
        out[key] = {**_interval(a["rate"], a["low"], a["high"]), "pairs": a["pairs"],
                    **{k: a[k] for k in ("seed_values", "seed_std") if k in a}}  # fmt: skip
    return out


def noise_ceiling(j: Joined, n: int = 200, seed: int = 0) -> dict:
    """The within-task metrics between two random halves of reality's episodes: correlations Spearman-Brown
    corrected to the full trial count (a second run of reality as long as the first), MMRV and pairwise
    accuracy as measured between halves (they have no such correction; read them as conservative)."""
    tasks = [p["task"] for p in j.policies]
    sb = lambda f: lambda a, b: M.spearman_brown(f(a, b))  # noqa: E731
    metrics = {
        "within_task_spearman": M.within_tasks(tasks, sb(M.spearman)),
        "within_task_pearson": M.within_tasks(tasks, sb(M.pearson)),
        "mmrv": M.within_tasks(tasks, M.mmrv),
        "pairwise_accuracy": M.within_tasks(tasks, M.pairwise_accuracy),
    }
    out: dict = {"splits": n}
    for name, metric in metrics.items():
        v = M.split_half(j.real, metric, n=n, seed=seed)
        v = v[np.isfinite(v)]
        lo, hi = np.quantile(v, [0.025, 0.975]) if len(v) else (np.nan, np.nan)
        out[name] = _interval(float(v.mean()) if len(v) else float("nan"), float(lo), float(hi))
    return out


def trust(j: Joined, ensemble_rates: np.ndarray, n_boot: int, seed: int) -> dict | None:
    """Does the ensemble's disagreement flag its errors? Spearman between each policy's between-seed std
    and the ensemble's absolute error (policies resampled for the interval), and the errors of the flagged
    (std >= LOW_TRUST_STD) and unflagged verdicts."""
    if j.pred[0].shape[0] < 2:
        return None
    real = np.array([r.mean() for r in j.real])
    # rounded so that float noise (0.5 vs 0.49999999) does not break ties in the ranks
    unc = np.round([p.mean(1).std(ddof=1) for p in j.pred], 9)
    err = np.round(np.abs(ensemble_rates - real), 9)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_boot):
        i = rng.integers(0, len(real), len(real))
        draws.append(M.spearman(unc[i], err[i]))
    draws = np.array(draws)[np.isfinite(draws)]
    low = unc >= LOW_TRUST_STD
    bounds = np.quantile(draws, [0.025, 0.975]) if len(draws) else [np.nan, np.nan]
    return {
        "trust_error_spearman": _interval(M.spearman(unc, err), float(bounds[0]), float(bounds[1])),
        "low_trust_threshold": LOW_TRUST_STD, "low_trust_policies": int(low.sum()),
        "mae_low_trust": float(err[low].mean()) if low.any() else None,
        "mae_trusted": float(err[~low].mean()) if (~low).any() else None,
        "auroc_large_error": auroc(unc, err >= 0.2) if 0 < (err >= 0.2).sum() < len(err) else None,
    }  # fmt: skip


def replay_metrics(evaluations: list[dict], n_boot: int, seed: int) -> dict:
    """Per-episode agreement of the open-loop replays: mean over members (with spread) and the ensemble."""
    lists = [(ev.get("replay") or {}).get("episodes_list") for ev in evaluations]
    if not all(lists):
        nan = _interval(float("nan"), float("nan"), float("nan"))
        return {"episode_accuracy": nan, "episode_balanced_accuracy": None, "episode_auroc": None,
                "episode_brier": None, "replay_episodes": 0}  # fmt: skip
    keyed = [{(e["policy"], e["task"], e["seed"]): e for e in lst} for lst in lists]
    keys = sorted(set.intersection(*(set(k) for k in keyed)))
    y = np.array([keyed[0][k]["real"] for k in keys], bool)
    p = np.array([[kd[k]["probability"] for k in keys] for kd in keyed])  # (members, episodes)
    correct = ((p >= 0.5) == y).mean(0)
    out = {"episode_accuracy": _with_seeds(_interval(*bootstrap_mean(correct, n_boot, seed)),
                                           list(((p >= 0.5) == y).mean(1)))}  # fmt: skip
    for name in ("balanced_accuracy", "auroc", "brier"):
        vals = [ev["replay"][name] for ev in evaluations]
        out[f"episode_{name}"] = float(np.mean(vals))
    out["replay_episodes"] = len(keys)
    if len(evaluations) > 1:
        pe = p.mean(0)
        out["ensemble_episode_accuracy"] = _interval(*bootstrap_mean(((pe >= 0.5) == y).astype(float), n_boot, seed))
        out["ensemble_episode_auroc"] = auroc(pe, y)
    tasks = np.array([k[1] for k in keys])
    out["per_task_accuracy"] = {t: float(correct[tasks == t].mean()) for t in sorted(set(tasks))}
    out["replay_within_task_spearman"] = replay_ranking(keys, y, p, n_boot, seed)
    return out


def replay_ranking(keys: list[tuple], y: np.ndarray, p: np.ndarray, n_boot: int, seed: int) -> dict:
    """Within-task Spearman of the policies' mean replay probabilities against their real rates on the same
    episodes: how well the world model ranks policies when it is given their real actions. Next to the
    closed-loop ranking it splits the error in two: what the dynamics lose on real action sequences, and
    what the closed loop (policies acting on generated frames) adds. Episodes are resampled independently
    for the interval (conservative: the pairs share episodes)."""
    groups = sorted({(k[0], k[1]) for k in keys})
    index = {g: i for i, g in enumerate(groups)}
    g = np.array([index[(k[0], k[1])] for k in keys])
    real = [y[g == i].astype(float) for i in range(len(groups))]
    pred = [p[:, g == i] for i in range(len(groups))]
    metric = M.within_tasks([t for _, t in groups], M.spearman)
    rates = np.array([r.mean() for r in real])
    d = _interval(*M.bootstrap(metric, real, pred, n=n_boot, seed=seed))
    return _with_seeds(d, [metric(rates, np.array([q[s].mean() for q in pred])) for s in range(p.shape[0])])


def per_task(j: Joined, pred_rates: np.ndarray, replay: dict) -> dict:
    tasks = np.array([p["task"] for p in j.policies])
    real_rates = np.array([r.mean() for r in j.real])
    out = {}
    for t in sorted(set(tasks)):
        m = tasks == t
        rr, pp = real_rates[m], pred_rates[m]
        out[t] = {
            "n_policies": int(m.sum()), "pearson": M.pearson(rr, pp), "spearman": M.spearman(rr, pp),
            "mmrv": M.mmrv(rr, pp), "mae": M.mae(rr, pp), "bias": M.bias(rr, pp),
            "pairwise_accuracy": M.pairwise_accuracy(rr, pp),
            "true_range": [float(rr.min()), float(rr.max())],
            "episode_accuracy": replay.get("per_task_accuracy", {}).get(t),
        }  # fmt: skip
    return out


def align(evaluations: dict | list[dict], truth: dict[tuple[str, str], list], truth_source: str,
          n_boot: int = 1000, seed: int = 0) -> dict:  # fmt: skip
    evaluations = [evaluations] if isinstance(evaluations, dict) else list(evaluations)
    j = join(evaluations, truth, truth_source)
    S = j.pred[0].shape[0]
    members = score(j, n_boot, seed)
    ens = replace(j, pred=[p.mean(0, keepdims=True) for p in j.pred])
    ens_rates = np.array([p.mean() for p in ens.pred])
    replay = replay_metrics(evaluations, n_boot, seed)
    policies = []
    for p, r, q in zip(j.policies, j.real, j.pred, strict=True):
        lo, hi = wilson_interval(int(r.sum()), len(r))
        rate, plo, phi = bootstrap_mean(q.mean(0), n_boot, seed)
        row = {"policy": p["policy"], "task": p["task"], "tags": p["tags"],
               "real_rate": float(r.mean()), "real_low": lo, "real_high": hi, "real_episodes": len(r),
               "predicted_rate": rate, "predicted_low": plo, "predicted_high": phi,
               "predicted_episodes": q.shape[1]}  # fmt: skip
        if S > 1:
            row["member_rates"] = [float(x) for x in q.mean(1)]
            row["uncertainty"] = float(q.mean(1).std(ddof=1))
            row["low_trust"] = row["uncertainty"] >= LOW_TRUST_STD
        policies.append(row)
    ceiling = noise_ceiling(j, seed=seed)
    res = {
        "kind": "wmeval-alignment", "n_seeds": S,
        **{k: v for k, v in members.items() if k != "ab_curve"},
        **{k: v for k, v in replay.items() if not k.startswith(("per_task", "ensemble"))},
        "noise_ceiling_spearman": ceiling["within_task_spearman"], "noise_ceiling": ceiling,
        "checkpoint_runs": len(set(g for g in checkpoint_groups(j.policies) if g)),
        "ab_pairs_15": members["ab_pick_rate_15"]["pairs"], "ab_curve": members["ab_curve"],
        "n_policies": len(j.policies), "n_tasks": len(set(p["task"] for p in j.policies)),
        "n_episodes_per_policy": int(min(q.shape[1] for q in j.pred)),
        "n_real_episodes_per_policy": int(min(len(r) for r in j.real)),
        "per_task": per_task(j, ens_rates, replay), "policies": policies,
        "conventions": CONVENTIONS | {"intervals": f"95% bias-corrected percentile bootstrap over episodes "
                                                   f"({n_boot} draws); with several seeds, starts are resampled "
                                                   "jointly for all"},
        "evaluation": {"model": evaluations[0]["model"], "model_training": evaluations[0]["model_training"],
                       "zoo": evaluations[0]["zoo"], "rule": evaluations[0]["rule"],
                       "calibration": evaluations[0]["calibration"], "timing": evaluations[0]["timing"]},
        "members": [{"model": ev["model"], "rule": ev["rule"], "calibration": ev["calibration"],
                     "timing": ev["timing"]} for ev in evaluations],
        "truth": truth_source,
    }  # fmt: skip
    if S > 1:
        ens_scores = score(ens, n_boot, seed)
        res["ensemble"] = {**{k: v for k, v in ens_scores.items() if k != "ab_curve"},
                           "episode_accuracy": replay.get("ensemble_episode_accuracy"),
                           "episode_auroc": replay.get("ensemble_episode_auroc")}  # fmt: skip
        res["trust"] = trust(j, ens_rates, n_boot, seed)
        res["trust_error_spearman"] = res["trust"]["trust_error_spearman"]
        by_task = M.within_tasks([p["task"] for p in j.policies], M.spearman)
        real_rates, member_rates = np.array([r.mean() for r in j.real]), np.stack([q.mean(1) for q in j.pred], 1)
        res["ensemble_curve"] = M.ensemble_curve(by_task, real_rates, member_rates, seed=seed)
    return res


CONVENTIONS = {
    "within_task": "within_task_spearman, within_task_pearson, mmrv, pairwise_accuracy: computed within each "
                   "task (tasks with >= 2 policies) and averaged over tasks",
    "pooled": "pearson, spearman, kendall_tau_b, mae, bias over all (policy, task) pairs",
    "mmrv": "SIMPLER's MMRV within each task; strict < comparisons (a model tie of a pair reality orders "
            "counts as a violation)",
    "pairwise_accuracy": "within tasks, model ties count one half",
    "checkpoint_regret": "per training run, undegraded checkpoints; model ties pick the worst",
    "ab_pick_rate": "pairs within a task, true gap within +-5 points of the stated gap",
    "seeds": "with several world models (training seeds): value = mean over seeds of each seed's metric, "
             "seed_std = between-seed standard deviation; `ensemble` scores the per-episode mean probability",
    "noise_ceiling": "the same within-task metrics between two random halves of reality's episodes (200 "
                     "splits, mean and 2.5-97.5% range); correlations Spearman-Brown corrected to the full count",
    "trust": f"a policy's uncertainty is the between-seed std of its predicted rate; >= {LOW_TRUST_STD} is "
             "flagged low trust; trust_error_spearman correlates it with the ensemble's absolute error",
    "ensemble_curve": "within-task Spearman of ensembles of K members (mean of their predicted rates), K = 1 .. "
                      "seeds: mean, sd and 10-90% range over K-member subsets (all, or 500 drawn); still rising at "
                      "the last member: another seed would pay",
    "episode_accuracy": "open-loop replay of the judged policies' recorded episodes, p >= 0.5",
    "replay_within_task_spearman": "within-task Spearman of the policies' mean replay probability (their real "
                                   "episodes' actions, open loop) against their real rates",
}  # fmt: skip


def load_evaluation(path: str | Path) -> tuple[dict, Path]:
    path = Path(path)
    if path.is_dir():
        path = path / "evaluation.json"
    try:
        evaluation = json.loads(path.read_text())
        if evaluation.get("kind") != "wmeval-evaluation":
            raise KeyError("kind")
    except (OSError, json.JSONDecodeError, KeyError) as e:
        raise ValueError(f"{path}: not an evaluation written by `wmeval evaluate` ({e!r})") from None
    return evaluation, path


def run_align(evaluation_paths: str | Path | list, store: str | None = None, true_table: str | None = None,
              out: str | Path | None = None, n_boot: int = 1000) -> dict:  # fmt: skip
    """Align one evaluation, or several (one per world-model seed: scored as members and as an ensemble)."""
    paths = [evaluation_paths] if isinstance(evaluation_paths, str | Path) else list(evaluation_paths)
    loaded = [load_evaluation(p) for p in paths]
    evaluations = [e for e, _ in loaded]
    if true_table:
        truth, source = real_outcomes_from_file(true_table)
    else:
        st = EpisodeStore(store or evaluations[0]["store"])
        truth, source = real_outcomes_from_store(st, tuple(evaluations[0]["seeds"])), str(st.root)
    res = align(evaluations, truth, source, n_boot)
    res["evaluation"]["path"] = str(loaded[0][1])
    for m, (_, p) in zip(res["members"], loaded, strict=True):
        m["path"] = str(p)
    if out:
        atomic_write_text(Path(out), json.dumps(res, indent=1, default=float) + "\n")
    return res
