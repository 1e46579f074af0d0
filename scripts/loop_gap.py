"""Where the closed loop loses the ranking: per task, the within-task Spearman of the open-loop replays of the
judged policies' real actions against that of the closed loop (the policies acting on imagined frames), per
world-model seed and for the seeds' mean, with each seed's per-episode replay AUROC. Where the two rank
alike, the loop adds no error beyond the dynamics' reading of given actions; where the replay ranks and the
closed loop does not, the policies are misled in imagination. Also every policy's true, replay and closed-loop
rate (mean over seeds).

    python scripts/loop_gap.py runs/bench-cpu/eval-heldout runs/bench-cpu/eval-heldout-s1 runs/bench-cpu/eval-heldout-s2
    python scripts/loop_gap.py A/eval-s0 A/eval-s1 A/eval-s2 --out docs/results/loop_gap.json
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from wmeval.align.metrics import spearman
from wmeval.data.store import atomic_write_text
from wmeval.metrics import auroc


def rates(ev: Path) -> tuple[dict, dict]:
    """((task, policy) -> {"closed", "replay", "true"} rates; task -> (real outcomes, replay probabilities))."""
    e = json.loads((ev / "evaluation.json").read_text())
    if not e.get("replay"):
        raise SystemExit(f"{ev}: no open-loop replays in this evaluation (evaluate with replays on)")
    by, episodes = defaultdict(list), defaultdict(list)
    for x in e["replay"]["episodes_list"]:
        by[(x["task"], x["policy"])].append((x["real"], x["probability"]))
        episodes[x["task"]].append((x["real"], x["probability"]))
    out = {}
    for p in e["policies"]:
        r = np.array(by[(p["task"], p["policy"])], float)
        if len(r):
            out[(p["task"], p["policy"])] = {"closed": p["predicted_rate"], "replay": r[:, 1].mean(),
                                             "true": r[:, 0].mean()}  # fmt: skip
    return out, {t: np.array(v, float) for t, v in episodes.items()}


def loop_gap(evals: list[Path]) -> dict:
    runs = [rates(ev) for ev in evals]
    keys = sorted(set.intersection(*(set(r) for r, _ in runs)))
    tasks = sorted({t for t, _ in keys})
    per_task = {}
    for t in tasks:
        ks = [k for k in keys if k[0] == t]
        true = [runs[0][0][k]["true"] for k in ks]
        row = {}
        for mode in ("replay", "closed"):
            seeds = [spearman(np.array(true), np.array([r[k][mode] for k in ks])) for r, _ in runs]
            mean = spearman(np.array(true), np.array([np.mean([r[k][mode] for r, _ in runs]) for k in ks]))
            row[mode] = {"seeds": seeds, "mean_of_seeds": float(np.mean(seeds)), "seeds_mean_rate": mean}
        row["replay_auroc"] = [auroc(ep[t][:, 1], ep[t][:, 0]) for _, ep in runs]
        per_task[t] = row
    policies = [{"task": k[0], "policy": k[1], "true": runs[0][0][k]["true"],
                 **{m: float(np.mean([r[k][m] for r, _ in runs])) for m in ("replay", "closed")}}
                for k in keys]  # fmt: skip
    return {"evaluations": [str(e) for e in evals], "per_task": per_task, "policies": policies}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("evaluations", nargs="+", type=Path, help="evaluation directories, one per world-model seed")
    ap.add_argument("--out", type=Path, help="write the JSON here")
    args = ap.parse_args()
    res = loop_gap(args.evaluations)
    print("| task | replay Spearman (seeds; mean) | closed loop Spearman (seeds; mean) | replay episode AUROC |")
    print("|---|---|---|---|")
    for t, r in res["per_task"].items():
        cell = {m: f"{' / '.join(f'{s:+.2f}' for s in r[m]['seeds'])}; {r[m]['mean_of_seeds']:+.2f}"
                for m in ("replay", "closed")}  # fmt: skip
        print(f"| {t} | {cell['replay']} | {cell['closed']} | {' / '.join(f'{a:.2f}' for a in r['replay_auroc'])} |")
    print("\n| task | policy | true % | replay % | closed loop % |\n|---|---|---|---|---|")
    for p in res["policies"]:
        rates = " | ".join(f"{100 * p[m]:.0f}" for m in ("true", "replay", "closed"))
        print(f"| {p['task']} | {p['policy']} | {rates} |")
    if args.out:
        atomic_write_text(args.out, json.dumps(res, indent=1, default=float) + "\n")


if __name__ == "__main__":
    main()
