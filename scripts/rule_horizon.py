"""How should a verdict read an imagined episode? The success rule refitted with statistics that read only the first k
generated frames, chosen on the world model's validation replays, and the `combined` rule (all candidates mixed by
a logistic regression), `average` (every candidate's calibrated probability averaged with equal weights) and
`max+combined` (the `max` and `combined` probabilities averaged), against the evaluation's own rule, and the
within-task ranking each gives.

For each evaluation (replay calibration only): its calibration episodes (the world model's validation
episodes, never trained on, never a judged policy's) are replayed again with the same noise, so the refitted
`auto` rule reproduces the stored one (checked); each candidate statistic is Platt-fitted on them; `chosen`
is what `--rule auto` picks now: the candidate with the lowest validation Brier score among the whole-episode
statistics and `mean-first` at each horizon k (`first-k`: the mean readout over generated frames 1..k). Each rule's
probabilities of the judged policies' imagined episodes (episodes.jsonl; nothing is imagined again) give
per-policy rates, ranked within each task against the true rates on the same starts (rules that read further
than the stored episodes go, when imagination stopped where the evaluation's own rule stops reading, are left
blank). Every choice is made on validation episodes; the judged policies' truth only scores the result.

    python scripts/rule_horizon.py runs/bench-cpu/study/size-25/eval-s{0,1,2} --out rule_horizon.json
"""

from __future__ import annotations

import argparse
import json
from dataclasses import fields
from pathlib import Path

import numpy as np
import torch
from horizon_ranking import frame_values  # scripts/, beside this one

from wmeval.align.align import load_evaluation
from wmeval.align.metrics import spearman, within_tasks
from wmeval.align.truth import real_outcomes_from_store
from wmeval.data.store import EpisodeStore, atomic_write_text
from wmeval.eval.calibration import calibration_episodes
from wmeval.eval.evaluate import EvalConfig, load_eval_model
from wmeval.eval.success import SuccessRule, brier, fit_rule, fitted_rules, replay_values
from wmeval.metrics import auroc


def analyse(path: str, threads: int) -> dict:
    evaluation, file = load_evaluation(path)
    names = {f.name for f in fields(EvalConfig)}
    cfg = EvalConfig(**{k: v for k, v in evaluation["config"].items() if k in names})
    if cfg.calibration != "replay":
        raise SystemExit(f"error: {path} was calibrated {cfg.calibration!r}; this analysis refits replay rules only")
    torch.set_num_threads(threads)
    model, meta = load_eval_model(cfg, "cpu")
    store = EpisodeStore(evaluation["store"])
    index = store.index()
    chosen = calibration_episodes(meta, index, tuple(evaluation["tasks"]), cfg.calibration_episodes)
    val = replay_values(model, store, chosen, cfg.batch_size, cfg.noise_seed, progress=False).astype(np.float64)
    y = np.array([m.outcome for m in chosen], float)
    stored = SuccessRule(**evaluation["rule"])
    refit = fit_rule(val, y, stored.stat)
    if refit.name != stored.name or not np.allclose((refit.a, refit.b), (stored.a, stored.b), rtol=1e-3, atol=1e-3):
        raise SystemExit(f"error: {path}: the replayed validation values give rule {refit} and not the stored "
                         f"{stored}: another store, noise or code; nothing to compare")  # fmt: skip
    combined = fit_rule(val, y, "combined")  # what `--rule combined` (the default) mixes
    table = {r.name: {"rule": r, "val_brier": brier(r.probability(val), y), "val_auroc": auroc(r.probability(val), y)}
             for r in [r for _, r in fitted_rules(val, y)] + [combined]}  # every candidate `--rule auto` weighs
    pick = fit_rule(val, y, "auto").name  # what `--rule auto` chooses
    outcomes = real_outcomes_from_store(store, tuple(evaluation["seeds"]))
    truth = {k: float(np.mean(v)) for k, v in outcomes.items() if v}
    judged = {k: v for k, v in frame_values(file.parent).items() if k[::-1] in truth}  # (task, policy) -> values
    keys = sorted(judged)
    real = np.array([truth[k[::-1]] for k in keys])
    score = within_tasks([t for t, _ in keys], spearman)
    tasks = np.array([t for t, _ in keys])

    def per_task(rates: np.ndarray) -> dict[str, float]:
        return {t: spearman(real[tasks == t], rates[tasks == t]) for t in sorted(set(tasks))}

    stored_frames = min(v.shape[1] for v in judged.values()) - 1  # fewer than the horizon when imagination stopped
    for row in table.values():
        r = row["rule"]
        readable = r.frames_read(val.shape[1] - 1) <= stored_frames  # else: the episodes stop before it reads
        rates = np.array([r.probability(judged[k]).mean() for k in keys]) if readable else None
        row["within_task_spearman"] = score(real, rates) if readable else float("nan")
        row["per_task"] = per_task(rates) if readable else {}
        row["rule"] = r.to_json()
    # equal-weight averages of calibrated probabilities (no fitted mix: nothing to overfit on the validation
    # episodes): `average`, every candidate the episodes can read; `max+combined`, the whole episode's best
    # moment (success at any time) beside the fitted mix, which leans on the early frames
    readable = [r for _, r in fitted_rules(val, y) if r.frames_read(val.shape[1] - 1) <= stored_frames]
    mixes = {"average": readable, "max+combined": [next(r for r in readable if r.stat == "max"), combined]}
    for name, parts in mixes.items():

        def prob(values: np.ndarray, parts=parts) -> np.ndarray:
            return np.mean([r.probability(values) for r in parts], 0)

        rates = np.array([prob(judged[k]).mean() for k in keys])
        table[name] = {"rule": {"stat": name, "parts": [r.to_json() for r in parts]},
                       "val_brier": brier(prob(val), y), "val_auroc": auroc(prob(val), y),
                       "within_task_spearman": score(real, rates), "per_task": per_task(rates)}  # fmt: skip
    return {"evaluation": str(file.parent), "stored": stored.name, "chosen": pick, "rules": table}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("evaluations", nargs="+", help="evaluation directories")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", help="write the rows as JSON here")
    args = ap.parse_args()
    rows = [analyse(p, args.threads) for p in args.evaluations]
    cols = list(rows[0]["rules"])
    print("| evaluation | rule (stored) | chosen on validation | within-task Spearman: stored / chosen | "
          + " | ".join(cols) + " |")  # fmt: skip
    print("|---|---|---|---|" + "---|" * len(cols))
    for r in rows:
        rs = r["rules"]
        cells = " | ".join(f"{rs[c]['within_task_spearman']:.2f}" if c in rs else "" for c in cols)
        print(f"| {r['evaluation']} | {r['stored']} | {r['chosen']} | {rs[r['stored']]['within_task_spearman']:.2f} / "
              f"{rs[r['chosen']]['within_task_spearman']:.2f} | {cells} |", flush=True)  # fmt: skip

    def col(name: str) -> np.ndarray:
        return np.array([r["rules"][r.get(name, name)]["within_task_spearman"] for r in rows])

    stored, chosen, combined = col("stored"), col("chosen"), col("combined")
    d = combined - chosen
    print(f"mean over {len(rows)} evaluations: stored rule {stored.mean():.2f}, chosen on validation (auto) "
          f"{chosen.mean():.2f}, combined {combined.mean():.2f}; combined vs auto: better by > 0.05 for "
          f"{(d > 0.05).sum()}, within 0.05 for {(abs(d) <= 0.05).sum()}, worse for {(d < -0.05).sum()}; "
          f"mean difference {d.mean():+.3f} (sd {d.std(ddof=1) if len(d) > 1 else 0:.3f})")  # fmt: skip
    if args.out:
        atomic_write_text(Path(args.out), json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
