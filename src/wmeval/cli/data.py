"""Commands on episode stores: collect in reality, check, tables of true success, import, export, zoos."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from wmeval.cli.common import csv_tuple, split_csv, store_layout


def cmd_collect(args: argparse.Namespace) -> int:
    from wmeval.collect import collect, format_table
    from wmeval.reality import default_tasks, make_config
    from wmeval.zoo import load_zoo

    zoo = load_zoo(args.zoo).select(split_csv(args.policies))
    existing = store_layout(Path(args.out))
    # Options left out follow an existing store, so re-running a shorter command resumes it.
    fallback = {}
    if existing is not None and existing.suite != zoo.suite:
        raise ValueError(
            f"{args.out} holds {existing.suite!r} episodes and the zoo {args.zoo!r} runs in {zoo.suite!r}; "
            "collect into a new --out"
        )
    if existing is not None:
        fallback = dict(
            views=existing.views,
            image_size=existing.image_size,
            frame_skip=existing.frame_skip,
            max_steps=existing.horizon * existing.frame_skip,
        )
    given = dict(
        views=tuple(split_csv(args.views)) if args.views else None,
        image_size=args.image_size,
        frame_skip=args.frame_skip,
        max_steps=args.max_steps,
    )
    config = make_config(zoo.suite, **{k: v if v is not None else fallback.get(k) for k, v in given.items()})
    tasks = tuple(split_csv(args.tasks) or default_tasks(zoo.suite))
    workers = args.workers or os.cpu_count() or 1
    res = collect(
        args.out,
        zoo,
        tasks,
        args.episodes,
        config,
        seed=args.seed,
        workers=workers,
        progress=not args.no_progress,
        command=args.command_line,
        seeds=tuple(int(s) for s in split_csv(args.seeds)) if args.seeds else None,
    )
    print(format_table(res.rows))
    print(f"{res.new} new episodes, {res.skipped} already stored; table written to {res.table_path}")
    for e in res.errors:
        print(f"FAILED {e.key}: {e.error}", file=sys.stderr)
    return 1 if res.errors else 0


def cmd_check(args: argparse.Namespace) -> int:
    from wmeval.data.check import check_store

    rep = check_store(args.store, clean=args.clean, progress=not args.no_progress)
    for p in rep.problems:
        print(f"BAD {p.where}: {p.what}")
    for p in rep.leftovers:
        verb = "removed" if args.clean else "found (safe to delete; `--clean` removes it)"
        print(f"leftover temporary file of an interrupted write {verb}: {p}")
    print(f"{rep.n_ok}/{rep.n_episodes} episodes ok" + ("" if rep.ok else f", {len(rep.problems)} problem(s)"))
    return 0 if rep.ok else 1


def cmd_table(args: argparse.Namespace) -> int:
    from wmeval.data.store import EpisodeStore
    from wmeval.stats import format_markdown, format_table, rows_to_json, success_table

    store = EpisodeStore(args.store)
    index = store.index()
    rows = success_table((m.task, m.policy, m.outcome) for m in index if m.outcome is not None)
    unknown = sum(m.outcome is None for m in index)
    if unknown:
        print(f"{unknown} episode(s) of unknown outcome are not counted")
    print(format_markdown(rows) if args.markdown else format_table(rows))
    if args.json:
        from wmeval.data.store import atomic_write_text

        atomic_write_text(Path(args.json), json.dumps(rows_to_json(rows), indent=2) + "\n")
    if args.csv:
        from wmeval.data.store import atomic_write_text

        lines = ["policy,task,successes,trials"] + [f"{r.policy},{r.task},{r.successes},{r.episodes}" for r in rows]
        atomic_write_text(Path(args.csv), "\n".join(lines) + "\n")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from wmeval.data.importers import ImportConfig, import_episodes, read_source

    src, cameras = read_source(args.format, args.source, cameras=csv_tuple(args.cameras) or (),
                               state_keys=csv_tuple(args.state_keys) or (), action_key=args.action_key,
                               success_from=args.success_from)  # fmt: skip
    cfg = ImportConfig(out=args.out, suite=args.suite, task=args.task, policy=args.policy, image_size=args.image_size,
                       frame_skip=args.frame_skip, action_chunk=args.action_chunk, fps=args.fps, horizon=args.horizon,
                       labels=args.labels, limit=args.limit)  # fmt: skip
    print(f"{src.format} {src.path}: {len(src.lengths)} episodes, {sum(src.lengths)} steps; " + "; ".join(src.notes))
    rep = import_episodes(src, cfg, cameras, progress=not args.no_progress)
    rate = rep.frames / rep.seconds if rep.seconds else 0.0
    print(
        f"{rep.imported} imported ({rep.frames} frames, {rate:.0f} frames/s), {rep.skipped} already in "
        f"{rep.store}, {len(rep.errors)} bad" + (f"; {rep.unknown} of unknown outcome" if rep.unknown else "")
    )
    for e in rep.errors:
        print(f"error: {e}", file=sys.stderr)
    return 1 if rep.errors else 0


def cmd_export(args: argparse.Namespace) -> int:
    from wmeval.data.importers.lerobot_export import export_lerobot

    res = export_lerobot(args.store, args.out, csv_tuple(args.tasks), csv_tuple(args.policies), not args.no_progress)
    print(
        f"{res['episodes']} episodes ({res['frames']} frames, {res['codec']} video) written to {res['out']} "
        f"as a LeRobot v3.0 dataset; outcomes, policies and tasks also in {res['out']}/meta/wmeval_labels.csv"
    )
    return 0


def cmd_zoo(args: argparse.Namespace) -> int:
    from wmeval.zoo import BASES, describe_degradations, load_zoo

    zoo = load_zoo(args.zoo)
    print(f"zoo {zoo.name} (suite {zoo.suite}, {zoo.source}): {len(zoo.policies)} policies")
    for p in zoo.policies:
        base = f"checkpoint {p.checkpoint}" if p.checkpoint else p.base
        chain = " -> ".join([base] + [json.dumps(d.to_json()) for d in p.degrade])
        print(f"  {p.name:24s} {chain}" + (f"  (tasks: {', '.join(p.tasks)})" if p.tasks else ""))
    print("bases:\n" + "\n".join(f"  {k:14s} {v}" for k, v in BASES.items()))
    print("degradations:\n" + describe_degradations())
    return 0


def add_parsers(sub) -> None:
    c = sub.add_parser("collect", help="run a policy zoo in reality, store episodes, print the true success table")
    c.add_argument("--out", default="data/quickstart", help="episode store directory (created or resumed)")
    c.add_argument("--zoo", default="default", help="zoo file (.toml/.json) or built-in name: default, tiny")
    c.add_argument("--tasks", help="comma-separated tasks (default: the suite's default tasks)")
    c.add_argument("--policies", help="comma-separated policy names from the zoo (default: all)")
    c.add_argument("--episodes", type=int, default=5, help="episodes per (task, policy)")
    c.add_argument("--seed", type=int, default=0, help="first start seed; episode i uses seed + i")
    c.add_argument(
        "--seeds", help="comma-separated start seeds instead of --seed/--episodes (as `wmeval suggest` prints them)"
    )
    c.add_argument("--workers", type=int, default=0, help="processes (default: all cores)")
    c.add_argument("--views", help="comma-separated cameras (default: the suite's, metaworld corner, humanoid head)")
    c.add_argument("--image-size", type=int, help="rendered frame size in px (default 64)")
    c.add_argument("--frame-skip", type=int, help="control steps per frame (default 4)")
    c.add_argument("--max-steps", type=int, help="control steps per episode (default 200)")
    c.add_argument("--no-progress", action="store_true")
    c.set_defaults(func=cmd_collect)

    k = sub.add_parser("check", help="verify every episode of a store")
    k.add_argument("store")
    k.add_argument("--clean", action="store_true", help="delete temporary files left by interrupted writes")
    k.add_argument("--no-progress", action="store_true")
    k.set_defaults(func=cmd_check)

    t = sub.add_parser("table", help="true success table over all episodes of a store")
    t.add_argument("store")
    t.add_argument("--json", help="also write the rows as JSON here")
    t.add_argument("--csv", help="also write policy,task,successes,trials here (what `wmeval align --true` reads)")
    t.add_argument("--markdown", action="store_true", help="print a Markdown table")
    t.set_defaults(func=cmd_table)

    im = sub.add_parser("import", help="episodes recorded elsewhere (LeRobot dataset, robomimic HDF5) into a store")
    im.add_argument(
        "format",
        choices=("lerobot", "hdf5"),
        help="lerobot: a LeRobot dataset directory (meta/info.json, "
        "parquet data, mp4 videos); hdf5: a robomimic-layout file (data/demo_N/obs, actions, rewards)",
    )
    im.add_argument("source", help="the dataset directory or file")
    im.add_argument("--out", required=True, help="episode store directory (created or resumed)")
    im.add_argument("--cameras", help="comma-separated camera keys (default: all)")
    im.add_argument(
        "--state-keys",
        help="comma-separated keys concatenated into proprio (default: lerobot "
        "observation.state; hdf5: every low-dimensional obs key but object*)",
    )
    im.add_argument("--action-key", help="the action column (default: lerobot action, hdf5 actions)")
    im.add_argument(
        "--success-from",
        default="auto",
        choices=("auto", "success", "reward", "done", "none"),
        help="per-step success column: auto = a success column, else a reward column holding only 0/1, "
        "else unknown (done flags mark an episode's end, not success: only when asked)",
    )
    im.add_argument(
        "--labels",
        help="CSV with columns episode and any of success (1/0/blank), policy, task: "
        "overrides the source's success and names each episode's policy and task",
    )
    im.add_argument("--task", help="task name for every episode (default: the source's task label or file name)")
    im.add_argument("--policy", default="demonstrations", help="policy name for episodes the labels do not name")
    im.add_argument("--suite", default="imported", help="suite name recorded in the store")
    im.add_argument("--image-size", type=int, default=64, help="stored frame size in px (frames are resized)")
    im.add_argument(
        "--frame-skip", type=int, default=1, help="source steps per stored frame (their actions form its chunk)"
    )
    im.add_argument(
        "--action-chunk",
        type=int,
        default=1,
        help="control actions held in each step's action "
        "(flattened C x A values, as `wmeval export lerobot` writes them): stored as C control steps",
    )
    im.add_argument("--fps", type=float, help="source steps per second (default: the source's)")
    im.add_argument("--horizon", type=int, help="chunks an imagined episode runs (default: the longest episode's)")
    im.add_argument("--limit", type=int, help="import the first N episodes only")
    im.add_argument("--no-progress", action="store_true")
    im.set_defaults(func=cmd_import)

    ex = sub.add_parser("export", help="a store as a LeRobot v3.0 dataset (to train policies with LeRobot)")
    ex.add_argument("format", choices=("lerobot",))
    ex.add_argument("store", help="episode store directory")
    ex.add_argument("out", help="new dataset directory (never overwritten)")
    ex.add_argument("--tasks", help="comma-separated tasks (default: all)")
    ex.add_argument("--policies", help="comma-separated policies (default: all)")
    ex.add_argument("--no-progress", action="store_true")
    ex.set_defaults(func=cmd_export)

    z = sub.add_parser("zoo", help="show a zoo's policies and the available degradations")
    z.add_argument("zoo", nargs="?", default="default")
    z.set_defaults(func=cmd_zoo)
