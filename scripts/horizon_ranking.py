"""When in an imagined episode the verdict is decided: the within-task ranking of the judged policies by the
value head's reading after k generated frames, for k from 1 to the whole episode.

A policy's score at horizon k is the mean over its episodes of one statistic of the per-frame values
(`at`: the value at frame k; `mean`: the mean of frames 1..k); its truth is the real success rate on the same
starts (from the evaluation's store). At frame 1 every policy has the same start, context frames and noise
(common random numbers) and has acted once: a ranking there comes from its first action chunk and that
chunk's one-frame consequence, not from a simulated episode. If the ranking at the last frame is no better,
the rest of the imagined episode adds nothing to the verdict.

    python scripts/horizon_ranking.py runs/bench-cpu/ablations/context-7/eval-s{0,1,2}
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

HORIZONS = (1, 2, 5, 10, 15, 20, 30, 40, 50)
STATS = {"at": lambda v, k: v[:, k], "mean": lambda v, k: v[:, 1 : k + 1].mean(1)}


def frame_values(ev: Path) -> dict[tuple[str, str], np.ndarray]:
    """(task, policy) -> float[episodes, frames]: the readout at every frame (0: the last context frame)."""
    out: dict[tuple[str, str], list] = defaultdict(list)
    for line in (ev / "episodes.jsonl").read_text().splitlines():
        e = json.loads(line)
        if e.get("error") is None and e.get("values"):
            out[(e["task"], e["policy"])].append(e["values"])
    return {k: np.array(v) for k, v in out.items()}


def ranking_by_horizon(ev: Path, truth: dict[tuple[str, str], float]) -> dict[tuple[str, int], dict[str, float]]:
    """(stat, k) -> task -> within-task Spearman of the policies' mean statistic against their true rates."""
    values = frame_values(ev)
    tasks = sorted({t for t, _ in values})
    n_frames = min(v.shape[1] for v in values.values()) - 1
    out = {}
    for stat, f in STATS.items():
        for k in [h for h in HORIZONS if h < n_frames] + [n_frames]:
            out[(stat, k)] = {}
            for t in tasks:
                pols = sorted(p for tt, p in values if tt == t and (p, t) in truth)
                score = np.array([f(values[(t, p)], k).mean() for p in pols])
                out[(stat, k)][t] = spearman(score, np.array([truth[(p, t)] for p in pols]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("evaluations", nargs="+", help="evaluation directories (one per world-model seed)")
    args = ap.parse_args()
    runs = []
    for path in args.evaluations:
        evaluation, file = load_evaluation(path)
        outcomes = real_outcomes_from_store(EpisodeStore(evaluation["store"]), tuple(evaluation["seeds"]))
        truth = {k: float(np.mean(v)) for k, v in outcomes.items() if v}
        runs.append(ranking_by_horizon(file.parent, truth))
    tasks = sorted(runs[0][next(iter(runs[0]))])
    print(f"| statistic | frame | within-task Spearman (mean over tasks and {len(runs)} evaluations) | "
          + " | ".join(tasks) + " | per evaluation |")  # fmt: skip
    print("|---|---|---|" + "---|" * len(tasks) + "---|")
    for key in runs[0]:
        grid = np.array([[r[key][t] for t in tasks] for r in runs])  # evaluations x tasks
        cells = " | ".join(f"{x:.2f}" for x in grid.mean(0))
        seeds = ", ".join(f"{x:.2f}" for x in grid.mean(1))
        print(f"| {key[0]} | {key[1]} | {grid.mean():.2f} | {cells} | {seeds} |")


if __name__ == "__main__":
    main()
