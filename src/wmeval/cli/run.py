"""`wmeval demo` and `wmeval bench`: the whole loop in one resumable command, then ablations and the study."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace


def cmd_pipeline(args: argparse.Namespace) -> int:
    from wmeval.align.tables import format_per_task, format_summary
    from wmeval.pipeline import make_config, run_pipeline
    from wmeval.pretraining import run_pretraining

    preset = args.cmd
    if args.cmd == "bench":
        import torch

        preset = args.preset if args.preset != "auto" else ("gpu" if torch.cuda.is_available() else "cpu")
    own = getattr(args, "train_world_model", False)  # the demo trains its own world model
    out = args.out or (f"runs/demo{'-trained' if own else ''}" if preset == "demo" else f"runs/bench-{preset}")
    cfg = make_config(preset, out, episodes=args.episodes, workers=args.workers, device=args.device)
    if own:  # one tiny world model, briefly trained: the ensemble the demo ships took an hour and more data
        cfg = replace(cfg, world_model=None, seeds=1, judged=("bc-*-cnn-proprio-*",))  # trained on the others
    names, parts = None, None
    if getattr(args, "ablation", None):
        from wmeval.ablations import parse_names

        names = parse_names(args.ablation)  # refused before hours of work, not after
    if getattr(args, "study", None):
        from wmeval.study import parse_parts

        parts = parse_parts(args.study)
    if not cfg.judged:  # a world model to ship
        res = run_pretraining(cfg, progress=not args.no_progress)
        print(f"world models: {', '.join(res['models'])}\npacked for package data: {res['packed']}")
        print(f"wall time per stage (s): {json.dumps(res['timings'])}")
        return 0
    res = run_pipeline(cfg, progress=not args.no_progress)
    for case, al in res["results"].items():
        label = "held out by policy" if case == "heldout" else "in distribution"
        print(f"\n## Alignment, world model {label} ({al['n_policies']} judged policies)\n")
        print(format_per_task(al) + "\n")
        print(format_summary(al))
        print(f"\nreport: {res['out']}/report-{case}.html")
    print(f"\nwall time per stage (s): {json.dumps(res['timings'])}")
    if names:
        from wmeval.ablations import run_ablations

        print("\n" + run_ablations(cfg, names, progress=not args.no_progress))
    if parts:
        from wmeval.study import format_study, run_study

        print("\n" + format_study(run_study(cfg, parts, progress=not args.no_progress)))
    return 0


def add_parsers(sub) -> None:
    for name, text in (
        ("demo", "the whole loop at toy size on a CPU (about 7 minutes on 2 cores), judged by shipped world models"),
        (
            "bench",
            "the whole held-out experiment: the headline alignment table of docs/RESULTS.md "
            "(--preset cpu: 2 cores in 2-3 hours; gpu: full size on one GPU; humanoid: the humanoid suite)",
        ),
    ):
        pp = sub.add_parser(name, help=text)
        pp.add_argument("--out", help=f"run directory (default: runs/{name}[-PRESET]); re-run to resume")
        if name == "bench":
            pp.add_argument(
                "--preset",
                default="auto",
                choices=["auto", "cpu", "gpu", "humanoid", "demo-model"],
                help="auto: gpu when CUDA is available, else cpu (both MetaWorld); humanoid: the humanoid suite "
                "on a CPU; demo-model: trains the world model `wmeval demo` ships (wmeval/models)",
            )
            pp.add_argument(
                "--ablation",
                help="then run these ablations (comma-separated, or 'all') on the same "
                "data and print the ablation table; see wmeval/ablations.py",
            )
            pp.add_argument(
                "--study",
                help="then run the data study's parts (size, kind, advice, comma-separated, or all) on the same data "
                "and write OUT/study.json and its figures; see wmeval/study.py",
            )
        if name == "demo":
            pp.add_argument(
                "--train-world-model",
                action="store_true",
                help="train a tiny world model on the demo's own data (minutes) instead of judging with the one "
                "wmeval ships (wmeval/models); default --out runs/demo-trained",
            )
        pp.add_argument("--episodes", type=int, help="episodes per policy in reality and in imagination")
        pp.add_argument("--workers", type=int, help="collection processes (default: all cores)")
        pp.add_argument("--device", default="auto")
        pp.add_argument("--no-progress", action="store_true")
        pp.set_defaults(func=cmd_pipeline)
