"""Where the judged outcome varies: by policy or by start. For each task, a two-way decomposition of the
per-episode success probability (policies x starts) into the policy main effect, the start main effect and
the rest, for the closed-loop imagination, the open-loop replays of the real actions, and reality itself.
Every policy meets the same sampling noise on a start (common random numbers), so an imagined "start"
effect is the start's own effect plus that shared noise. Also: within-task Spearman of three ways to turn
episodes into a policy's score (mean probability, mean logit, mean per-start rank).

    python scripts/outcome_variance.py runs/bench-cpu/ablations/context-7/eval-s{0,1,2}
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from wmeval.align.metrics import spearman
from wmeval.eval.success import SuccessRule


def shares(M: np.ndarray) -> tuple[float, float]:
    """(policy, start) shares of the variance of M (policies x starts) explained by each main effect."""
    g = M.mean()
    total = ((M - g) ** 2).sum()
    if total == 0:
        return float("nan"), float("nan")
    pol = ((M.mean(1) - g) ** 2).sum() * M.shape[1]
    start = ((M.mean(0) - g) ** 2).sum() * M.shape[0]
    return pol / total, start / total


def tables(ev: Path) -> dict[str, dict[str, dict[tuple[str, int], float]]]:
    """source -> task -> (policy, seed) -> probability (reality: the real outcome)."""
    rule = SuccessRule(**json.loads((ev / "evaluation.json").read_text())["rule"])
    out: dict = {s: defaultdict(dict) for s in ("closed loop", "replay", "reality")}
    for line in (ev / "episodes.jsonl").read_text().splitlines():
        e = json.loads(line)
        if e.get("sample", 0) == 0 and e["error"] is None:
            p = float(rule.probability(np.array([e["values"]]))[0])
            out["closed loop"][e["task"]][(e["policy"], e["seed"])] = p
    for r in json.loads((ev / "replay.json").read_text())["value"]["episodes_list"]:
        out["replay"][r["task"]][(r["policy"], r["seed"])] = r["probability"]
        out["reality"][r["task"]][(r["policy"], r["seed"])] = float(r["real"])
    return out


def matrix(cells: dict[tuple[str, int], float]) -> tuple[list[str], np.ndarray]:
    pols, seeds = sorted({k[0] for k in cells}), sorted({k[1] for k in cells})
    return pols, np.array([[cells[(p, s)] for s in seeds] for p in pols])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("evaluations", nargs="+", type=Path, help="`wmeval evaluate` output folders (with replays)")
    args = ap.parse_args()
    var, rank = defaultdict(list), defaultdict(list)
    for ev in args.evaluations:
        t = tables(ev)
        for source, by_task in t.items():
            for task, cells in by_task.items():
                var[(task, source)].append(shares(matrix(cells)[1]))
        for task, cells in t["closed loop"].items():
            pols, M = matrix(cells)
            truth = matrix(t["reality"][task])[1].mean(1)
            logit = np.log(np.clip(M, 1e-4, 1 - 1e-4) / np.clip(1 - M, 1e-4, 1))
            scores = {"mean probability": M.mean(1), "mean logit": logit.mean(1),
                      "mean per-start rank": M.argsort(0).argsort(0).mean(1)}  # fmt: skip
            for name, s in scores.items():
                rank[(task, name)].append(spearman(truth, s))
    print("| task | source | policy share of variance | start share |\n|---|---|---|---|")
    for (task, source), v in sorted(var.items()):
        v = np.array(v)
        print(f"| {task} | {source} | {np.nanmean(v[:, 0]):.2f} | {np.nanmean(v[:, 1]):.2f} |")
    print("\n| task | policy score | within-task Spearman (mean over evaluations) |\n|---|---|---|")
    for (task, name), v in sorted(rank.items()):
        print(f"| {task} | {name} | {np.mean(v):.2f} |")


if __name__ == "__main__":
    main()
