"""A finished run's alignment with and without the rate map (wmeval.eval.rates), on the same imagined
episodes: each evaluation keeps every start's probability read through the map (`probabilities`) and raw
(`raw_probabilities`), so both are aligned here, members and ensemble, without imagining anything again.
Prints the within-task metrics, pooled Pearson, MAE and bias side by side, and each member's fitted lines.

    python scripts/rate_map_effect.py runs/bench-cpu            # its eval-heldout*/ directories
"""

import sys
from pathlib import Path

from wmeval.align.align import align, load_evaluation, real_outcomes_from_store
from wmeval.data.store import EpisodeStore

KEYS = ("within_task_spearman", "mmrv", "pairwise_accuracy", "ab_pick_rate_15", "checkpoint_regret", "pearson",
        "mae", "bias")  # fmt: skip


def value(x) -> float:
    return x["value"] if isinstance(x, dict) else x


def main(run: Path) -> None:
    paths = sorted(run.glob("eval-heldout*/evaluation.json"), key=lambda p: (len(str(p)), str(p)))
    evaluations = [load_evaluation(p.parent)[0] for p in paths]
    for p, ev in zip(paths, evaluations, strict=True):
        print(f"{p.parent.name}: rate map {ev.get('rate_map', {}).get('lines') or 'none'}")
    if any("raw_probabilities" not in q for ev in evaluations for q in ev["policies"]):
        raise SystemExit(f"{run}: its evaluations predate the rate map (no raw_probabilities)")
    raw = [{**ev, "policies": [{**q, "probabilities": q["raw_probabilities"]} for q in ev["policies"]]}
           for ev in evaluations]  # fmt: skip
    store = EpisodeStore(evaluations[0]["store"])
    truth = real_outcomes_from_store(store, tuple(evaluations[0]["seeds"]))
    rows = {name: align(evs, truth, str(store.root), n_boot=200)
            for name, evs in (("plain mean", raw), ("rate map", evaluations))}  # fmt: skip
    print(f"| metric | {' | '.join(f'{n}: members | {n}: ensemble' for n in rows)} |")
    print(f"|---|{'---|---|' * len(rows)}")
    for k in KEYS:
        cells = [f"{value(a[k]):.3f} | {value(a['ensemble'][k]):.3f}" if "ensemble" in a else f"{value(a[k]):.3f} | -"
                 for a in rows.values()]  # fmt: skip
        print(f"| {k} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
