"""Re-read finished evaluations' imagined episodes without imagining again: the within-task Spearman of the
judged policies ranked by the stored success rule's probability and by plain statistics of the per-frame
readout (the mean of every generated frame, the last frame), per evaluation and task. For `--starts logged`
evaluations, whose 7-frame statistics nearly agree, this shows what the rule's fit adds or costs.

    python scripts/logged_reread.py runs/bench-cpu/ablations/logged-starts/eval-s{0,1,2}
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from wmeval.align.align import load_evaluation
from wmeval.align.metrics import spearman
from wmeval.align.truth import real_outcomes_from_store
from wmeval.data.store import EpisodeStore
from wmeval.eval.success import SuccessRule

READINGS = {
    "mean": lambda v: v[:, 1:].mean(1),
    "final": lambda v: v[:, -1],
}


def reread(path: str) -> dict[str, dict[str, float]]:
    """reading -> task -> within-task Spearman against the true rates (plus "mean over tasks")."""
    ev, file = load_evaluation(path)
    outcomes = real_outcomes_from_store(EpisodeStore(ev["store"]), tuple(ev["seeds"]))
    truth = {k: float(np.mean(v)) for k, v in outcomes.items() if v}
    values: dict[tuple[str, str], list] = defaultdict(list)
    for line in (file.parent / "episodes.jsonl").read_text().splitlines():
        e = json.loads(line)
        if e.get("error") is None:
            values[(e["task"], e["policy"])].append(e["values"])
    rule = SuccessRule(**ev["rule"])
    readings = {"stored rule": rule.probability, **READINGS}
    out = {}
    for name, f in readings.items():
        per = {}
        for task in ev["tasks"]:
            pols = sorted(p for t, p in values if t == task and (p, task) in truth)
            score = np.array([f(np.array(values[(task, p)])).mean() for p in pols])
            per[task] = spearman(np.array([truth[(p, task)] for p in pols]), score)
        out[name] = {"mean over tasks": float(np.mean(list(per.values()))), **per}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("evaluations", nargs="+")
    ap.add_argument("--out", help="JSON of every evaluation's table")
    args = ap.parse_args()
    rows = {}
    for path in args.evaluations:
        rows[path] = r = reread(path)
        cells = "; ".join(f"{k} {v['mean over tasks']:.2f} (" + ", ".join(f"{x:.2f}" for t, x in v.items()
                          if t != "mean over tasks") + ")" for k, v in r.items())  # fmt: skip
        print(f"{path}: {cells}")
    for k in next(iter(rows.values())):
        vals = [r[k]["mean over tasks"] for r in rows.values()]
        print(f"{k}: mean {np.mean(vals):.2f} +- {np.std(vals, ddof=1) if len(vals) > 1 else 0:.2f} over {len(vals)}")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
