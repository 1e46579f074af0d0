"""Commands that judge policies: evaluate in imagination, align with the truth, suggest data, report."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from wmeval.cli.common import csv_tuple


def cmd_evaluate(args: argparse.Namespace) -> int:
    from wmeval.eval.evaluate import EvalConfig, evaluate, format_evaluation

    cfg = EvalConfig(
        model=args.model, zoo=args.zoo, out=args.out, store=args.store, policies=csv_tuple(args.policies),
        tasks=csv_tuple(args.tasks), episodes=args.episodes, seed=args.seed, batch_size=args.batch_size, rule=args.rule,
        calibration=args.calibration, calibration_episodes=args.calibration_episodes,
        calibration_samples=args.calibration_samples, rate_map=not args.no_rate_map, replay=not args.no_replay,
        videos=args.videos, noise_seed=args.noise_seed, samples=args.samples, full_episodes=args.full_episodes,
        euler_steps=args.euler_steps,
        context_tau=args.context_tau, context_frames=args.context_frames, guidance=args.guidance,
        autoguide=args.autoguide, autoguide_scale=args.autoguide_scale, judge=args.judge, proprio_net=args.proprio_net,
        starts=args.starts,
        branch_frames=args.branch_frames, branch_context=args.branch_context, device=args.device,
    )  # fmt: skip
    res = evaluate(cfg, progress=not args.no_progress)
    print(format_evaluation(res))
    for e in res["errors"][:10]:
        print(f"policy error: {e['error']}", file=sys.stderr)
    if len(res["errors"]) > 10:
        print(f"... {len(res['errors']) - 10} more policy errors in {args.out}/evaluation.json", file=sys.stderr)
    print(f"wrote {args.out}/evaluation.json")
    return 0


def cmd_align(args: argparse.Namespace) -> int:
    from wmeval.align.align import run_align
    from wmeval.align.tables import format_per_task, format_policies, format_summary

    res = run_align(args.evaluation, store=args.store, true_table=args.true, out=args.out, n_boot=args.bootstrap)
    print(format_policies(res) + "\n")
    print(format_per_task(res) + "\n")
    print(format_summary(res))
    if args.out:
        print(f"wrote {args.out}")
    return 0


def cmd_suggest(args: argparse.Namespace) -> int:
    from wmeval.align.align import load_evaluation
    from wmeval.align.suggest import format_suggestion, suggest
    from wmeval.data.store import atomic_write_text

    evaluations = [load_evaluation(p)[0] for p in args.evaluation]
    res = suggest(evaluations, args.budget, args.min_episodes)
    print(format_suggestion(res))
    for p in res["policies"]:
        if p["episodes"]:
            print(
                f"  wmeval collect --zoo {res['zoo']} --policies {p['policy']} --tasks {p['task']} "
                f"--seeds {','.join(map(str, p['seeds']))} --out REAL"
            )
    if args.out:
        atomic_write_text(Path(args.out), json.dumps(res, indent=1, default=float) + "\n")
        print(f"wrote {args.out}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from wmeval.align.report import write_report

    path = write_report(args.alignment, args.out, args.evaluation)
    print(f"wrote {path} (self-contained; open it in any browser)")
    return 0


def add_parsers(sub) -> None:
    ev = sub.add_parser("evaluate", help="predicted success rates of a zoo's learned policies, in imagination")
    ev.add_argument("--model", required=True, help="world-model checkpoint (RUN/model)")
    ev.add_argument("--zoo", required=True, help="zoo file with the policies to judge")
    ev.add_argument("--out", required=True, help="directory for evaluation.json and videos (resumes)")
    ev.add_argument("--store", help="recorded starts and real episodes (default: the model's training store)")
    ev.add_argument("--policies", help="comma-separated policy names or glob patterns (default: the whole zoo)")
    ev.add_argument("--tasks", help="comma-separated tasks (default: those the model was trained on)")
    ev.add_argument("--episodes", type=int, default=50, help="imagined episodes per policy and task")
    ev.add_argument("--seed", type=int, default=1000, help="first start seed, as in `wmeval collect --seed`")
    ev.add_argument("--batch-size", type=int, default=64, help="episodes imagined in parallel")
    ev.add_argument(
        "--rule",
        default="combined",
        choices=["combined", "auto", "final", "max", "mean-last", "mean-first", "mean"],
        help="how the value trajectory is read as success (combined: a logistic mix of every statistic; auto: "
        "the one statistic with the lowest Brier on the calibration episodes; mean: the mean over every "
        "generated frame, for short rollouts such as --starts logged)",
    )
    ev.add_argument(
        "--calibration",
        default="auto",
        choices=["auto", "closed-loop", "replay", "shipped"],
        help="fit the success rule on the model's validation episodes' (learned) policies acting in imagination "
        "from the same starts (closed-loop), on the episodes replayed open loop (replay), or on the calibration "
        "readouts a packed model ships with (shipped: no episodes of the store needed); auto: shipped where the "
        "model has readouts of every judged task, else closed loop where there are at least 48 such episodes "
        "with 8 of each outcome, replay otherwise",
    )
    ev.add_argument("--calibration-episodes", type=int, default=256)
    ev.add_argument("--calibration-samples", type=int, default=None,
                    help="replays or imagined episodes per calibration episode, each with its own noise and each a "
                    "row of the success rule's fit (default: 4 when fitted in closed loop, 1 on replays)")  # fmt: skip
    ev.add_argument("--no-rate-map", action="store_true",
                    help="a policy's rate is the plain mean success probability of its imagined episodes, not read "
                    "through the line its calibration policies' real rates follow (wmeval.eval.rates)")  # fmt: skip
    ev.add_argument("--no-replay", action="store_true", help="skip open-loop replay of recorded episodes")
    ev.add_argument("--videos", type=int, default=6, help="imagined episodes saved as GIFs")
    ev.add_argument("--noise-seed", type=int, default=0)
    ev.add_argument("--samples", type=int, default=1, help="imagined episodes per (policy, start), averaged")
    ev.add_argument("--full-episodes", action="store_true",
                    help="imagine every episode to the horizon, even when the success rule reads only its first "
                    "frames (`mean-first`; by default imagination stops where the rule stops reading)")  # fmt: skip
    ev.add_argument("--starts", default="reset", choices=["reset", "logged"],
                    help="where imagined episodes begin: reset, each recorded start (seeds --seed ...), imagined to "
                    "the horizon; logged, --episodes states per task inside other policies' recorded episodes "
                    "(never a judged policy's), imagined --branch-frames on: short rollouts that rank policies by "
                    "how they act from logged states, not a rate from reset")  # fmt: skip
    ev.add_argument("--branch-frames", type=int, default=7, help="frames imagined from each logged state")
    ev.add_argument("--branch-context", type=int, default=4, help="real frames up to each logged state")
    ev.add_argument("--euler-steps", type=int, help="Euler steps per generated frame (default: the model's)")
    ev.add_argument(
        "--context-tau",
        type=float,
        help="signal level (0, 1] at which generated frames re-enter the "
        "context (1: clean; default: the model's, 0.95)",
    )
    ev.add_argument(
        "--context-frames",
        type=int,
        help="past frames a generated frame attends to (default: the "
        "training window - 1, the most a training window shows a frame)",
    )
    ev.add_argument(
        "--guidance",
        type=float,
        help="action guidance: each Euler step extrapolates from the prediction without the action "
        "through the one with it by this factor (default 1: none; > 1 needs `train --action-dropout`)",
    )
    ev.add_argument(
        "--autoguide",
        metavar="CHECKPOINT",
        help="autoguidance: an earlier checkpoint of the model's own run (a path, or a name beside the model's "
        "checkpoint such as step_004000) guides sampling: each Euler step extrapolates from its prediction "
        "through the model's by --autoguide-scale; no retraining",
    )
    ev.add_argument("--autoguide-scale", type=float, default=2.0, help="with --autoguide (default 2; 1: none)")
    ev.add_argument(
        "--judge",
        help="judge imagined episodes with this judge (`wmeval train-judge`: the value of the rendered frames "
        "and proprio alone, never the actions) instead of the dynamics' value head",
    )
    ev.add_argument(
        "--proprio-net",
        help="predict each imagined frame's proprio with this proprio net (`wmeval train-proprio`) and sample the "
        "frame given it, instead of sampling both together",
    )
    ev.add_argument("--device", default="auto")
    ev.add_argument("--no-progress", action="store_true")
    ev.set_defaults(func=cmd_evaluate)

    al = sub.add_parser("align", help="predicted vs true success: alignment metrics with intervals")
    al.add_argument(
        "evaluation",
        nargs="+",
        help="evaluation.json written by `wmeval evaluate` (or its directory); "
        "several: world models of different seeds, scored as members and as an ensemble",
    )
    al.add_argument("--store", help="real episodes of the judged policies (default: the evaluation's store)")
    al.add_argument(
        "--true",
        help="true results instead of --store: a CSV of real trials with the columns "
        "policy,task,successes,trials (e.g. a real robot's), or a true_success.json from `wmeval collect`",
    )
    al.add_argument("--out", help="write the alignment JSON here")
    al.add_argument("--bootstrap", type=int, default=1000, help="bootstrap draws for the intervals")
    al.set_defaults(func=cmd_align)

    sg = sub.add_parser(
        "suggest",
        help="which real rollouts to collect next: policies (and starts) where the "
        "verdicts are unsure and the ranking could flip",
        description=(
            "Ranks the judged policies by flips: the expected number of within-task pairwise orders "
            "each gets wrong, from the ensemble's rates and their uncertainty (between-seed sd of "
            "several world models, sampling sd of the imagined episodes); spends --budget real "
            "episodes in blocks of --min-episodes on the highest flips / (1 + blocks held), on the "
            "starts the models disagree on most. Rollouts of those policies, failures included, are "
            "what to add to the training data (see wmeval.align.suggest for why)."
        ),
    )
    sg.add_argument(
        "evaluation",
        nargs="+",
        help="evaluation.json of `wmeval evaluate` (or its directory); "
        "several: one per world-model seed, judging the same policies on the same starts",
    )
    sg.add_argument("--budget", type=int, required=True, help="real episodes you can run")
    sg.add_argument("--min-episodes", type=int, default=5, help="episodes per block (per policy at least)")
    sg.add_argument("--out", help="write the suggestion as JSON here")
    sg.set_defaults(func=cmd_suggest)

    rp = sub.add_parser("report", help="one self-contained HTML page from an alignment JSON")
    rp.add_argument("alignment", help="the JSON written by `wmeval align --out`")
    rp.add_argument("--out", required=True, help="HTML file to write")
    rp.add_argument("--evaluation", help="evaluation directory with videos/ (default: the one the alignment names)")
    rp.set_defaults(func=cmd_report)
