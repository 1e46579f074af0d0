"""`wmeval align`: how well the world model's verdicts agree with reality.

Joins an evaluation (`wmeval evaluate`: predicted per-episode success probabilities) with the true
outcomes of the same policies on the same tasks (episodes recorded by `wmeval collect`, or its
`true_success.json`), and computes every metric of `wmeval.align.metrics` with bootstrap intervals.

Conventions (stated in the JSON too):
- Correlations (Pearson, Spearman, Kendall), MAE, bias and pairwise accuracy are pooled over all
  (policy, task) pairs; `per_task` gives them within each task.
- MMRV ranks policies within a task (comparing a push policy with a door policy says nothing); the
  headline value is the mean of the per-task MMRVs, as in SIMPLER.
- Checkpoint regret: per training run (same task, variant, data), the checkpoints judged without
  degradation wrappers; the mean over runs of (best true rate - true rate of the checkpoint picked).
- A/B pick rate: pairs of policies of the same task whose true rates differ by gap +- 5 points.
- Episode accuracy: the open-loop replay of the judged policies' recorded episodes (1X's "alignment").
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wmeval.align import metrics as M
from wmeval.data.store import EpisodeStore, atomic_write_text
from wmeval.eval.success import bootstrap_mean
from wmeval.stats import wilson_interval

GAPS = tuple(round(0.05 * k, 2) for k in range(1, 11))


@dataclass
class Joined:
    policies: list[dict]  # evaluation rows, in order
    real: list[np.ndarray]  # per policy: real outcomes (0/1)
    pred: list[np.ndarray]  # per policy: predicted probabilities


def real_outcomes_from_store(store: EpisodeStore, seeds: tuple[int, int] | None) -> dict[tuple[str, str], list]:
    out: dict[tuple[str, str], list] = defaultdict(list)
    for m in store.index():
        if seeds is None or seeds[0] <= m.seed <= seeds[1]:
            out[(m.policy, m.task)].append(bool(m.outcome))
    return out


def real_outcomes_from_table(path: str | Path) -> dict[tuple[str, str], list]:
    """From `true_success.json` written by `wmeval collect`: counts rebuilt as outcome lists."""
    try:
        data = json.loads(Path(path).read_text())
        rows = data["rows"] if isinstance(data, dict) else data
        return {(r["policy"], r["task"]): [True] * int(r["successes"]) + [False] * int(r["episodes"] - r["successes"])
                for r in rows}  # fmt: skip
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a true-success table written by `wmeval collect` ({e!r})") from None


def join(evaluation: dict, truth: dict[tuple[str, str], list], truth_source: str) -> Joined:
    rows = [p for p in evaluation["policies"] if p["episodes"] > 0]
    missing = [f"{p['policy']} ({p['task']})" for p in rows if not truth.get((p["policy"], p["task"]))]
    if missing:
        raise ValueError(
            f"{truth_source} has no real episodes for {len(missing)} of the {len(rows)} judged policies: "
            f"{', '.join(missing)}; record them with `wmeval collect --zoo {evaluation['zoo']} --seed "
            f"{evaluation['seeds'][0]} --episodes {evaluation['seeds'][1] - evaluation['seeds'][0] + 1}`"
        )
    if len(rows) < 2:
        raise ValueError("alignment needs at least 2 judged policies with episodes")
    real = [np.array(truth[(p["policy"], p["task"])], float) for p in rows]
    pred = [np.array(p["probabilities"], float) for p in rows]
    return Joined(rows, real, pred)


def _interval(value: float, low: float, high: float) -> dict:
    return {"value": value, "low": low, "high": high}


def _by_task(tasks: np.ndarray, metric):
    """A metric applied within each task and averaged over tasks with at least 2 policies."""

    def f(real: np.ndarray, pred: np.ndarray) -> float:
        vals = [metric(real[tasks == t], pred[tasks == t]) for t in np.unique(tasks) if (tasks == t).sum() >= 2]
        vals = [v for v in vals if np.isfinite(v)]
        return float(np.mean(vals)) if vals else float("nan")

    return f


def checkpoint_groups(rows: list[dict]) -> list[str | None]:
    """Training run of each policy for checkpoint selection; None for degraded copies and lone checkpoints."""
    runs = [None if p["tags"].get("degraded") else f"{p['task']}/{p['tags'].get('run')}" for p in rows]
    counts = defaultdict(int)
    for r in runs:
        counts[r] += 1
    return [r if r is not None and counts[r] >= 2 else None for r in runs]


def align(evaluation: dict, truth: dict[tuple[str, str], list], truth_source: str, n_boot: int = 1000,
          seed: int = 0) -> dict:  # fmt: skip
    j = join(evaluation, truth, truth_source)
    tasks = np.array([p["task"] for p in j.policies])
    boot = lambda metric: _interval(*M.bootstrap(metric, j.real, j.pred, n=n_boot, seed=seed))  # noqa: E731
    groups = checkpoint_groups(j.policies)
    sel = np.array([g is not None for g in groups])
    if sel.any():
        gsel = [g for g in groups if g is not None]
        regret = boot(lambda r, p: M.checkpoint_regret(r[sel], p[sel], gsel))
    else:
        regret = _interval(float("nan"), float("nan"), float("nan"))
    ab_curve = []
    for gap in GAPS:
        rate, lo, hi, pairs = M.ab_pick_rate(j.real, j.pred, gap, n=n_boot, seed=seed, groups=list(tasks))
        ab_curve.append({"gap": gap, "rate": rate, "low": lo, "high": hi, "pairs": pairs})
    ab15 = next(a for a in ab_curve if a["gap"] == 0.15)
    replay = evaluation.get("replay")
    if replay:
        correct = np.array([(e["probability"] >= 0.5) == e["real"] for e in replay["episodes_list"]], float)
        episode_accuracy = _interval(*bootstrap_mean(correct, n_boot, seed))
    else:
        episode_accuracy = _interval(float("nan"), float("nan"), float("nan"))
    real_rate = np.array([r.mean() for r in j.real])
    pred_rate = np.array([p.mean() for p in j.pred])
    per_task = {}
    for t in sorted(set(tasks)):
        m = tasks == t
        rr, pp = real_rate[m], pred_rate[m]
        per_task[t] = {
            "n_policies": int(m.sum()), "pearson": M.pearson(rr, pp), "spearman": M.spearman(rr, pp),
            "mmrv": M.mmrv(rr, pp), "mae": M.mae(rr, pp), "bias": M.bias(rr, pp),
            "pairwise_accuracy": M.pairwise_accuracy(rr, pp),
            "episode_accuracy": (replay["per_task"].get(t, {}).get("accuracy") if replay else None),
        }  # fmt: skip
    policies = []
    for p, r, q in zip(j.policies, j.real, j.pred, strict=True):
        lo, hi = wilson_interval(int(r.sum()), len(r))
        policies.append({
            "policy": p["policy"], "task": p["task"], "tags": p["tags"],
            "real_rate": float(r.mean()), "real_low": lo, "real_high": hi, "real_episodes": len(r),
            "predicted_rate": float(q.mean()), "predicted_low": p["low"], "predicted_high": p["high"],
            "predicted_episodes": len(q),
        })  # fmt: skip
    return {
        "kind": "wmeval-alignment",
        "pearson": boot(M.pearson), "spearman": boot(M.spearman), "kendall_tau_b": boot(M.kendall_tau_b),
        "mmrv": boot(_by_task(tasks, M.mmrv)), "mae": boot(M.mae), "bias": boot(M.bias),
        "pairwise_accuracy": boot(_by_task(tasks, M.pairwise_accuracy)),
        "episode_accuracy": episode_accuracy,
        "episode_balanced_accuracy": replay["balanced_accuracy"] if replay else None,
        "episode_auroc": replay["auroc"] if replay else None, "episode_brier": replay["brier"] if replay else None,
        "replay_episodes": replay["episodes"] if replay else 0,
        "checkpoint_regret": regret, "checkpoint_runs": len(set(g for g in groups if g)),
        "ab_pick_rate_15": _interval(ab15["rate"], ab15["low"], ab15["high"]), "ab_pairs_15": ab15["pairs"],
        "ab_curve": ab_curve,
        "n_policies": len(j.policies), "n_tasks": len(per_task),
        "n_episodes_per_policy": int(min(len(q) for q in j.pred)),
        "n_real_episodes_per_policy": int(min(len(r) for r in j.real)),
        "per_task": per_task, "policies": policies,
        "conventions": {
            "pooled": "pearson, spearman, kendall_tau_b, mae, bias over all (policy, task) pairs",
            "mmrv": "mean over tasks of SIMPLER's MMRV within the task; strict < comparisons (a model tie "
                    "of a pair reality orders counts as a violation)",
            "pairwise_accuracy": "within tasks, model ties count one half",
            "checkpoint_regret": "per training run, undegraded checkpoints; model ties pick the worst",
            "ab_pick_rate": "pairs within a task, true gap within +-5 points of the stated gap",
            "intervals": f"95% percentile bootstrap over episodes ({n_boot} draws)",
            "episode_accuracy": "open-loop replay of the judged policies' recorded episodes, p >= 0.5",
        },
        "evaluation": {"model": evaluation["model"], "model_training": evaluation["model_training"],
                       "zoo": evaluation["zoo"], "rule": evaluation["rule"],
                       "calibration": evaluation["calibration"], "timing": evaluation["timing"]},
        "truth": truth_source,
    }  # fmt: skip


def run_align(evaluation_path: str | Path, store: str | None = None, true_table: str | None = None,
              out: str | Path | None = None, n_boot: int = 1000) -> dict:  # fmt: skip
    path = Path(evaluation_path)
    if path.is_dir():
        path = path / "evaluation.json"
    try:
        evaluation = json.loads(path.read_text())
        if evaluation.get("kind") != "wmeval-evaluation":
            raise KeyError("kind")
    except (OSError, json.JSONDecodeError, KeyError) as e:
        raise ValueError(f"{path}: not an evaluation written by `wmeval evaluate` ({e!r})") from None
    if true_table:
        truth, source = real_outcomes_from_table(true_table), str(true_table)
    else:
        st = EpisodeStore(store or evaluation["store"])
        truth, source = real_outcomes_from_store(st, tuple(evaluation["seeds"])), str(st.root)
    res = align(evaluation, truth, source, n_boot)
    res["evaluation"]["path"] = str(path)
    if out:
        atomic_write_text(Path(out), json.dumps(res, indent=1, default=float) + "\n")
    return res


def fmt_ci(d: dict | float | None, scale: float = 1.0, digits: int = 2) -> str:
    if d is None:
        return "-"
    if isinstance(d, dict):
        if not np.isfinite(d["value"]):
            return "n/a"
        return f"{d['value'] * scale:.{digits}f} [{d['low'] * scale:.{digits}f}, {d['high'] * scale:.{digits}f}]"
    return f"{d * scale:.{digits}f}" if np.isfinite(d) else "n/a"


def summary_rows(res: dict) -> list[list[str]]:
    """The headline metrics: [name, value [95% CI]] rows."""
    f = fmt_ci
    episodes = f"{f(res['episode_balanced_accuracy'])} / {f(res['episode_auroc'])} / {f(res['episode_brier'])}"
    return [
        ["Pearson", f(res["pearson"])], ["Spearman", f(res["spearman"])], ["Kendall tau-b", f(res["kendall_tau_b"])],
        ["MMRV (mean over tasks)", f(res["mmrv"], digits=3)], ["MAE (points)", f(res["mae"], 100, 1)],
        ["bias (points)", f(res["bias"], 100, 1)], ["pairwise ranking accuracy", f(res["pairwise_accuracy"])],
        [f"per-episode accuracy, open-loop replay ({res['replay_episodes']} episodes)", f(res["episode_accuracy"])],
        ["per-episode balanced accuracy / AUROC / Brier", episodes],
        [f"checkpoint regret (points, {res['checkpoint_runs']} runs)", f(res["checkpoint_regret"], 100, 1)],
        [f"A/B pick rate at a 15-point gap ({res['ab_pairs_15']} pairs)", f(res["ab_pick_rate_15"])],
        ["policies x tasks / imagined episodes each", f"{res['n_policies']} / {res['n_episodes_per_policy']}"],
    ]  # fmt: skip


PER_TASK_HEAD = ["task", "policies", "Pearson", "Spearman", "MMRV", "MAE (points)", "pairwise acc.", "episode acc."]
POLICY_HEAD = ["task", "policy", "true % [95% CI]", "predicted % [95% CI]", "error (points)"]


def per_task_rows(res: dict) -> list[list[str]]:
    f = fmt_ci
    return [[t, str(d["n_policies"]), f(d["pearson"]), f(d["spearman"]), f(d["mmrv"], digits=3),
             f(d["mae"], 100, 1), f(d["pairwise_accuracy"]), f(d["episode_accuracy"])]
            for t, d in res["per_task"].items()]  # fmt: skip


def policy_rows(res: dict) -> list[list[str]]:
    pct = lambda v, lo, hi: f"{100 * v:.0f} [{100 * lo:.0f}, {100 * hi:.0f}]"  # noqa: E731
    return [[p["task"], p["policy"], pct(p["real_rate"], p["real_low"], p["real_high"]),
             pct(p["predicted_rate"], p["predicted_low"], p["predicted_high"]),
             f"{round(100 * (p['predicted_rate'] - p['real_rate'])):+d}"] for p in res["policies"]]  # fmt: skip


def markdown(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def format_summary(res: dict) -> str:
    return markdown(["metric", "value [95% CI]"], summary_rows(res))


def format_per_task(res: dict) -> str:
    return markdown(PER_TASK_HEAD, per_task_rows(res))


def format_policies(res: dict) -> str:
    return markdown(POLICY_HEAD, policy_rows(res))
