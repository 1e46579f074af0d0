"""Judge policies from states inside recorded episodes instead of from the start (a diagnostic).

Each judged policy takes over recorded episodes of other policies at the branch points of
`wmeval evaluate --starts logged` (wmeval.eval.branches) and acts for up to --horizon imagined frames; its
score at horizon H is the mean over branch points of one statistic of the readout (`mean`: frames 1..H;
`at`: frame H), with no success rule. Printed: within-task Spearman against the judged policies' true rates per
horizon, beside the stored evaluation's (from the same world model, whichever starts it used).

    python scripts/branched.py runs/bench-cpu/eval-heldout runs/bench-cpu/eval-heldout-s1 runs/bench-cpu/eval-heldout-s2
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from wmeval.align.align import load_evaluation
from wmeval.align.metrics import spearman
from wmeval.align.truth import real_outcomes_from_store
from wmeval.data.store import EpisodeStore
from wmeval.eval.branches import logged_starts
from wmeval.eval.evaluate import EvalConfig
from wmeval.eval.imagination import Job, imagine
from wmeval.model.world_model import load_world_model
from wmeval.zoo import load_zoo

HORIZONS = (1, 2, 3, 5, 7, 10, 15, 20, 30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("evaluations", nargs="+")
    ap.add_argument("--branches", type=int, default=50, help="branch points per task")
    ap.add_argument("--horizon", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.manual_seed(0)
    rows = []
    for path in args.evaluations:
        ev, file = load_evaluation(path)
        store = EpisodeStore(ev["store"])
        outcomes = real_outcomes_from_store(store, tuple(ev["seeds"]))
        truth = {k: float(np.mean(v)) for k, v in outcomes.items() if v}
        cfg = ev["config"]
        zoo = load_zoo(cfg["zoo"]).select(cfg["policies"])
        model, _ = load_world_model(cfg["model"], "cpu")
        exclude = ev["model_training"]["exclude_policies"] or cfg["policies"]
        jobs, index = [], store.index()
        for task in ev["tasks"]:
            pts = logged_starts(store, index, task, exclude, args.branches, EvalConfig.branch_frames,
                                EvalConfig.branch_context, args.seed)  # fmt: skip
            jobs += [Job(p, task, s) for p in zoo.policies if p.runs_on(task) for s in pts]
        eps = imagine(model, store.layout, jobs, batch_size=64, seed=0, steps=args.horizon)
        vals: dict[tuple[str, str], list] = defaultdict(list)
        for e in eps:
            if e.error is None:
                vals[(e.task, e.policy)].append(e.values)
        row = {"evaluation": str(file.parent), "horizon": {}}
        for k in HORIZONS:
            if k > args.horizon:
                continue
            per = {}
            for stat, f in {"mean": lambda v, k=k: v[:, 1 : k + 1].mean(1), "at": lambda v, k=k: v[:, k]}.items():
                for task in ev["tasks"]:
                    pols = sorted(p for t, p in vals if t == task)
                    score = [float(f(np.array(vals[(task, p)])).mean()) for p in pols]
                    per.setdefault(stat, {})[task] = spearman(np.array([truth[(p, task)] for p in pols]),
                                                              np.array(score))  # fmt: skip
            row["horizon"][k] = {s: {"mean": float(np.mean(list(d.values()))), **d} for s, d in per.items()}
        stored = defaultdict(dict)
        for p in ev["policies"]:
            stored[p["task"]][p["policy"]] = p["predicted_rate"]
        row["stored"] = {t: spearman(np.array([truth[(p, t)] for p in d]), np.array(list(d.values())))
                         for t, d in stored.items()}  # fmt: skip
        rows.append(row)
        print(path, "stored", {t: round(v, 2) for t, v in row["stored"].items()},
              round(float(np.mean(list(row["stored"].values()))), 2))
        for k, d in row["horizon"].items():
            print(f"  H={k:2d}", " ".join(f"{s}: {v['mean']:.2f} ({', '.join(f'{v[t]:.2f}' for t in ev['tasks'])})"
                                          for s, v in d.items()))  # fmt: skip
    if args.out:
        Path(args.out).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
