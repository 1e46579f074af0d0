"""How a verdict's within-task ranking grows with the number of world models averaged: the ensemble curve.

Pools the members of several alignment JSONs (`wmeval align` output, each policy carrying `member_rates`) of
the same judged policies, e.g. independent training runs of one recipe, and for every ensemble size K
averages the within-task metrics of many K-member ensembles drawn from the pool without replacement (every
subset where there are few). If the curve rises steeply, the models' errors are mostly independent (seed
variance) and more members pay; if it is flat, they share a bias no ensemble removes. Two ways of combining
members: the mean of their predicted rates (what `wmeval align` does), and the mean of their within-task
ranks (insensitive to members whose success rules put rates on different scales).

    python scripts/ensemble_curve.py docs/results/metaworld_alignment_c8_six_models.json \
        docs/results/metaworld_alignment.json --out docs/results/ensemble_curve.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from wmeval.align import metrics


def load_pool(paths: list[Path]) -> tuple[list[tuple[str, str]], np.ndarray, np.ndarray, list[str]]:
    """(task, policy) keys, true rates, member rates [members, policies] and member names, from alignment JSONs.

    A model that appears in several files (the same evaluation aligned twice) is kept once."""
    keys: list[tuple[str, str]] | None = None
    truth: dict[tuple[str, str], list[float]] = {}
    columns: list[np.ndarray] = []
    names: list[str] = []
    for path in paths:
        doc = json.loads(path.read_text())
        if doc.get("kind") != "wmeval-alignment" or "policies" not in doc:
            raise SystemExit(f"error: {path}: not an alignment JSON written by `wmeval align`")
        rows = {(p["task"], p["policy"]): p for p in doc["policies"]}
        if keys is None:
            keys = sorted(rows)
        elif set(rows) != set(keys):
            raise SystemExit(f"error: {path}: judges other policies than {paths[0]} "
                             f"(differ: {sorted(set(rows) ^ set(keys))[:4]}); pool alignments of the same zoo")
        for k in keys:
            truth.setdefault(k, []).append(rows[k]["real_rate"])
        for m, member in enumerate(doc.get("members") or [doc["evaluation"]]):
            name = f"{path.stem}:{member['model']}"
            # the same training run's model judged again appears under the same model path and identical rates
            rates = np.array([rows[k].get("member_rates", [rows[k]["predicted_rate"]])[m] for k in keys])
            if any(np.array_equal(rates, c) for c in columns):
                continue
            columns.append(rates)
            names.append(name)
    assert keys is not None
    real = np.array([np.mean(truth[k]) for k in keys])
    return keys, real, np.stack(columns), names


def within_task_ranks(tasks: list[str], rates: np.ndarray) -> np.ndarray:
    """Each member's rates turned into ranks within each task (ties averaged), [members, policies]."""
    out = np.empty_like(rates, dtype=float)
    for task in set(tasks):
        idx = np.array([i for i, t in enumerate(tasks) if t == task])
        for m in range(rates.shape[0]):
            out[m, idx] = metrics._ranks(rates[m, idx])
    return out


def curve(keys, real, members, draws: int, seed: int) -> list[dict]:
    """The ensemble curve by mean rate, with the mean-rank curve and each task's Spearman beside it."""
    tasks = [t for t, _ in keys]
    by_rate = metrics.within_tasks(tasks, metrics.spearman)
    rows = metrics.ensemble_curve(by_rate, real, members, draws, seed)
    by_rank = metrics.ensemble_curve(by_rate, real, within_task_ranks(tasks, members), draws, seed)
    for row, r in zip(rows, by_rank, strict=True):
        row["rank_mean"] = r["value"]
        row["per_task"] = {}
    for task in sorted(set(tasks)):
        idx = np.array([i for i, t in enumerate(tasks) if t == task])
        for row, r in zip(rows, metrics.ensemble_curve(metrics.spearman, real[idx], members[:, idx], draws, seed),
                          strict=True):  # fmt: skip
            row["per_task"][task] = r["value"]
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("alignments", nargs="+", type=Path, help="alignment JSONs of the same judged policies")
    ap.add_argument("--draws", type=int, default=500, help="ensembles drawn per size (all subsets if fewer)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    keys, real, members, names = load_pool(args.alignments)
    rows = curve(keys, real, members, args.draws, args.seed)
    tasks = sorted({t for t, _ in keys})
    print(f"{members.shape[0]} members, {len(keys)} policies; within-task Spearman of K-member ensembles")
    print(f"{'K':>3} {'by rate':>8} {'sd':>5} {'p10':>6} {'p90':>6} {'by rank':>8}  " + "  ".join(tasks))
    for r in rows:
        print(f"{r['members']:>3} {r['value']:>8.2f} {r['sd']:>5.2f} {r['p10']:>6.2f} {r['p90']:>6.2f} "
              f"{r['rank_mean']:>8.2f}  " + "  ".join(f"{r['per_task'][t]:.2f}" for t in tasks))
    if args.out:
        doc = {"kind": "ensemble_curve", "inputs": [str(p) for p in args.alignments], "members": names,
               "draws": args.draws, "seed": args.seed, "curve": rows}
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=1) + "\n")
        tmp.replace(args.out)


if __name__ == "__main__":
    main()
