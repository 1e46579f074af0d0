"""Score two or more finished runs on the policies they all judged (e.g. the demo before and after its rules
were fitted on the shipped calibration readouts, which let it judge six more policies): per run, each
member's and the ensemble's mean within-task Spearman, pooled Pearson and bias on the common policies.

    python scripts/compare_on_common_policies.py runs/demo runs/demo-readouts
"""

import json
import sys
from pathlib import Path

import numpy as np
from scipy.stats import pearsonr, spearmanr


def scores(rates: np.ndarray, real: np.ndarray, task: np.ndarray) -> str:
    per = [spearmanr(rates[task == t], real[task == t]).statistic for t in sorted(set(task))]
    return (f"within-task Spearman {np.mean(per):.2f} ({' / '.join(f'{w:.2f}' for w in per)}), pooled Pearson "
            f"{pearsonr(rates, real).statistic:.2f}, bias {100 * (rates - real).mean():+.1f} points")  # fmt: skip


def main(runs: list[Path]) -> None:
    als = [json.loads((r / "alignment-heldout.json").read_text()) for r in runs]
    common = sorted(set.intersection(*({p["policy"] for p in a["policies"]} for a in als)))
    print(f"{len(common)} policies judged by every run")
    for run, a in zip(runs, als, strict=True):
        by = {p["policy"]: p for p in a["policies"]}
        real = np.array([by[q]["real_rate"] for q in common])
        task = np.array([by[q]["task"] for q in common])
        members = np.array([by[q]["member_rates"] for q in common]).T
        print(f"{run}:")
        for k, m in enumerate(members):
            print(f"  member {k}: {scores(m, real, task)}")
        print(f"  ensemble: {scores(members.mean(0), real, task)}")


if __name__ == "__main__":
    main([Path(p) for p in sys.argv[1:]])
