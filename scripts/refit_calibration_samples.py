"""Re-fit each member's success rule of a finished run on the first 1, 2 and 4 of its calibration samples (the
rows calibration.json keeps; sample k is what `--calibration-samples K` with K > k computes, noise seed + k),
re-read its judged episodes with it, and print each member's and the ensemble's ranking within tasks.

    python scripts/refit_calibration_samples.py runs/demo-ens4     # a run calibrated with 4 samples
"""

import collections
import json
import sys
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from wmeval.eval.success import fit_rule


def main(run: Path) -> None:
    evals = sorted(run.glob("eval-heldout*"), key=lambda p: (len(p.name), p.name))
    al = json.loads((run / "alignment-heldout.json").read_text())
    pols = sorted(p["policy"] for p in al["policies"])
    real = np.array([next(p["real_rate"] for p in al["policies"] if p["policy"] == q) for q in pols])
    task = np.array([next(p["task"] for p in al["policies"] if p["policy"] == q) for q in pols])

    def metrics(rates: np.ndarray) -> str:
        per = [spearmanr(rates[task == t], real[task == t]).statistic for t in sorted(set(task))]
        return (f"within-task Spearman {np.mean(per):.2f} ({' / '.join(f'{w:.2f}' for w in per)}), pooled Pearson "
                f"{np.corrcoef(rates, real)[0, 1]:.2f}, MAE {100 * np.abs(rates - real).mean():.0f}")  # fmt: skip

    for n in (1, 2, 4):
        members = []
        for ev in evals:
            rows = json.loads((ev / "calibration.json").read_text())["value"]["rows"]
            keep = np.array(rows["sample"]) < n
            rule = fit_rule(np.array(rows["values"])[keep], np.array(rows["outcome"])[keep], "combined")
            p = collections.defaultdict(list)
            for line in (ev / "episodes.jsonl").read_text().splitlines():
                e = json.loads(line)
                if e["error"] is None:
                    p[e["policy"]].append(rule.probability(np.array([e["values"]]))[0])
            members.append(np.array([np.mean(p[q]) for q in pols]))
        print(f"{n} sample(s)")
        for ev, rates in zip(evals, members, strict=True):
            print(f"  {ev.name}: {metrics(rates)}")
        print(f"  ensemble: {metrics(np.mean(members, 0))}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
