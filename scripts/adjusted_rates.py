"""Adjusted rates, per task, from a finished run's calibration (offline; not what `wmeval evaluate` reports):
each member's predicted rate r of a policy on task t re-read as (r - E_t[p | fail]) / (E_t[p | success] -
E_t[p | fail]), clipped to [0, 1], the means of the member's success probability over its calibration rows of
task t that failed and that succeeded ("adjusted classify and count" from the quantification literature: a
classifier that tells outcomes apart only partly squeezes every rate towards its calibration's mean, by as
much as those two means lie apart). Increasing within a task, so the ranking within a task changes only by
the clipping; the rates of different tasks move apart by their own readouts. Prints each member's and the
ensemble's within-task Spearman, pooled Pearson, MAE and bias, raw and adjusted (one rule for every task, and
per task).

    python scripts/adjusted_rates.py runs/demo                # a run whose members calibrated on readouts
"""

import json
import sys
from pathlib import Path

import numpy as np
from scipy.stats import pearsonr, spearmanr

from wmeval.eval.success import SuccessRule, statistics_probability


def main(run: Path) -> None:
    al = json.loads((run / "alignment-heldout.json").read_text())
    pols = sorted(p["policy"] for p in al["policies"])
    by = {p["policy"]: p for p in al["policies"]}
    real = np.array([by[q]["real_rate"] for q in pols])
    task = np.array([by[q]["task"] for q in pols])

    def scores(r: np.ndarray) -> str:
        per = [spearmanr(r[task == t], real[task == t]).statistic for t in sorted(set(task))]
        return (f"within-task Spearman {np.mean(per):.2f}, pooled Pearson {pearsonr(r, real).statistic:.2f}, "
                f"MAE {100 * np.abs(r - real).mean():.1f}, bias {100 * (r - real).mean():+.1f}")  # fmt: skip

    rates = {"raw": [], "adjusted, one for all tasks": [], "adjusted per task": []}
    for ev in sorted(run.glob("eval-heldout*"), key=lambda p: (len(p.name), p.name)):
        cal = json.loads((ev / "calibration.json").read_text())["value"]
        rule, rows = SuccessRule(**cal["rule"]), cal["rows"]
        if "statistics" in rows:  # fitted on the model's readouts
            p, tasks = statistics_probability(rule, rule.components, np.array(rows["statistics"])), rows["task"]
        else:  # fitted on the store's episodes
            p, tasks = rule.probability(np.array(rows["values"])), [k.split("/")[0] for k in rows["key"]]
        y, tasks = np.array(rows["outcome"], bool), np.array(tasks)
        evaluation = json.loads((ev / "evaluation.json").read_text())
        predicted = {x["policy"]: x["predicted_rate"] for x in evaluation["policies"]}
        r = np.array([predicted[q] for q in pols])
        rates["raw"].append(r)
        rates["adjusted, one for all tasks"].append(np.clip((r - p[~y].mean()) / (p[y].mean() - p[~y].mean()), 0, 1))
        a = r.copy()
        for t in set(task):
            m = tasks == t
            lo, hi = p[m & ~y].mean(), p[m & y].mean()
            a[task == t] = np.clip((r[task == t] - lo) / (hi - lo), 0, 1)
            print(f"{ev.name} {t}: E[p | fail] {lo:.2f}, E[p | success] {hi:.2f} ({m.sum()} rows)")
        rates["adjusted per task"].append(a)
    for name, members in rates.items():
        print(f"{name}:")
        for k, m in enumerate(members):
            print(f"  member {k}: {scores(m)}")
        print(f"  ensemble: {scores(np.mean(members, 0))}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
