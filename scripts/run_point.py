"""Run one seed (or a few) of one ablation or data-study point of a finished bench run's data, so that the
seeds of a point can run side by side in separate processes (one thread each on a small CPU: two 1-thread
processes do more work than one 2-thread process on the `tiny` model). Resumable, like `wmeval bench
--ablation/--study`; whichever process finishes the last seed aligns the point, and a later
`wmeval bench --ablation NAME` or `--study PART` (or `scripts/merge_study.py`) finds it finished.

    OMP_NUM_THREADS=1 python scripts/run_point.py runs/bench-cpu kind-expert --seeds 0 &
    OMP_NUM_THREADS=1 python scripts/run_point.py runs/bench-cpu kind-expert --seeds 1 &
    OMP_NUM_THREADS=1 python scripts/run_point.py runs/bench-cpu kind-expert --seeds 2

Points that retrain need only the bench run's data and its seed-0 codec, not its world models. Points
that train their own codec (`codec-*`) train it with seed 0, which the other seeds then share: run seed 0
first (the others refuse to start without it).

Point `headline` trains and evaluates the bench run's own world models, seed by seed (the codec is seed 0's:
start the other seeds once `RUN/wm-heldout/codec` is finished); `wmeval bench` then finds them finished and
aligns and reports.

`--members N` trains and judges N world models of the point instead of the preset's 3 (seeds 0..N-1), for
the ensemble curve of `scripts/ensemble_curve.py`, e.g. six half-step models, two processes:

    OMP_NUM_THREADS=1 python scripts/run_point.py runs/bench-cpu steps-half --members 6 --seeds 0,2,4 &
    OMP_NUM_THREADS=1 python scripts/run_point.py runs/bench-cpu steps-half --members 6 --seeds 1,3,5

`--rejudge ABLATION` judges the point's world models (trained first if need be) the way an evaluation-only
ablation judges the headline's, in RUN/<point's directory>-ABLATION, e.g. a judge trained in imagination for
each of the 50% point's models:

    OMP_NUM_THREADS=1 python scripts/run_point.py runs/bench-cpu size-50 --rejudge judge-imagined --seeds 0 &
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from wmeval.ablations import ABLATIONS, run_point
from wmeval.pipeline import make_config, run_headline_seeds
from wmeval.study import PARTS, points


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", help="a `wmeval bench --preset PRESET` run directory (its data stages finished)")
    ap.add_argument("point", help="headline, an ablation (wmeval/ablations.py) or a study point (size-25, ...)")
    ap.add_argument("--seeds", required=True, help="comma-separated world-model seeds to run, e.g. 0 or 1,2")
    ap.add_argument("--rejudge", metavar="ABLATION", help="judge the point's world models as this evaluation-only "
                    "ablation judges the headline's (e.g. judge-imagined)")
    ap.add_argument("--members", type=int, metavar="N", help="world models of the point (the preset's seeds): more "
                    "seeds for an ensemble curve (scripts/ensemble_curve.py); it aligns once seeds 0..N-1 finish")
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args()
    cfg = make_config(args.preset, args.run)
    if args.members is not None:
        if args.members < 1:
            raise SystemExit(f"error: --members {args.members}: give at least 1")
        cfg = dataclasses.replace(cfg, seeds=args.members)
    try:
        seeds = tuple(int(s) for s in args.seeds.split(","))
    except ValueError:
        raise SystemExit(f"error: --seeds {args.seeds!r}: give comma-separated integers, e.g. 0 or 1,2") from None
    if any(not 0 <= s < cfg.seeds for s in seeds):
        raise SystemExit(f"error: --seeds {args.seeds}: the {args.preset} preset trains seeds 0..{cfg.seeds - 1} "
                         "(--members N for more)")
    if args.point == "headline":
        if args.rejudge:
            raise SystemExit("error: judge the headline's models with `wmeval bench --ablation NAME`, not --rejudge")
        al = run_headline_seeds(cfg, seeds, progress=not args.no_progress)
        if al is None:
            print(f"seeds {args.seeds} of the headline done; it aligns when its other seeds finish")
        else:
            print(f"headline: within-task Spearman {al['within_task_spearman']['value']:.2f}; "
                  f"`wmeval bench --out {args.run}` writes its report")
        return
    if args.point in ABLATIONS:
        ab, where = ABLATIONS[args.point], Path("ablations") / args.point
        owner = Path(args.run) / "ablations" / (ab.models_from or "")
        if ab.models_from and ABLATIONS[ab.models_from].train and not all(
                (owner / f"wm-s{k}" / "model").exists() for k in seeds):  # fmt: skip
            raise SystemExit(f"error: {args.point} re-judges {ab.models_from}'s models of seeds {args.seeds}; "
                             f"train them first (`run_point.py {args.run} {ab.models_from} --seeds K`)")
    else:
        study = points(cfg, PARTS)
        if args.point not in study:
            raise SystemExit(f"error: unknown point {args.point!r}; valid: {', '.join([*ABLATIONS, *study])}")
        if args.point in ("kind-judged", "advice-suggest", "advice-random"):
            raise SystemExit(f"error: {args.point} needs episodes collected first: `wmeval bench --study kind,advice`")
        _, _, ab, where = study[args.point]
    name, models = args.point, None
    if args.rejudge:
        rj = ABLATIONS.get(args.rejudge)
        if rj is None or rj.train or rj.models_from:
            valid = [n for n, a in ABLATIONS.items() if not a.train and not a.models_from]
            raise SystemExit(f"error: --rejudge {args.rejudge!r}: give an evaluation-only ablation: {', '.join(valid)}")
        models, ab = (ab, Path(args.run) / where), rj
        name, where = f"{args.point}-{args.rejudge}", Path(f"{where}-{args.rejudge}")
    al = run_point(cfg, ab, Path(args.run) / where, progress=not args.no_progress, seeds=seeds, models=models)
    if al is None:
        print(f"seeds {args.seeds} of {name} done; the point aligns when its other seeds finish")
    else:
        print(f"{name}: within-task Spearman {al['within_task_spearman']['value']:.2f}, "
              f"written to {Path(args.run) / where / 'alignment.json'}")


if __name__ == "__main__":
    main()
