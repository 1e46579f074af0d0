"""The `wmeval` command. Each subcommand is a plain function of parsed arguments, callable from tests."""

from __future__ import annotations

import argparse
import errno
import json
import os
import shlex
import sys
from pathlib import Path

from wmeval.reality.base import Layout


def _csv(text: str | None) -> list[str] | None:
    return [x.strip() for x in text.split(",") if x.strip()] if text else None


def _tuple(text: str | None) -> tuple[str, ...] | None:
    items = _csv(text)
    return tuple(items) if items else None


def _store_layout(root: Path) -> Layout | None:
    manifest = root / "store.json"
    if manifest.is_file():
        from wmeval.data.store import EpisodeStore

        return EpisodeStore(root).layout
    return None


def cmd_collect(args: argparse.Namespace) -> int:
    from wmeval.collect import collect, format_table
    from wmeval.reality import default_tasks, make_config
    from wmeval.zoo import load_zoo

    zoo = load_zoo(args.zoo).select(_csv(args.policies))
    existing = _store_layout(Path(args.out))
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
        views=tuple(_csv(args.views)) if args.views else None,
        image_size=args.image_size,
        frame_skip=args.frame_skip,
        max_steps=args.max_steps,
    )
    config = make_config(zoo.suite, **{k: v if v is not None else fallback.get(k) for k, v in given.items()})
    tasks = tuple(_csv(args.tasks) or default_tasks(zoo.suite))
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
        seeds=tuple(int(s) for s in _csv(args.seeds)) if args.seeds else None,
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

    src, cameras = read_source(args.format, args.source, cameras=_tuple(args.cameras) or (),
                               state_keys=_tuple(args.state_keys) or (), action_key=args.action_key,
                               success_from=args.success_from)  # fmt: skip
    cfg = ImportConfig(out=args.out, suite=args.suite, task=args.task, policy=args.policy, image_size=args.image_size,
                       frame_skip=args.frame_skip, action_chunk=args.action_chunk, fps=args.fps, horizon=args.horizon,
                       labels=args.labels, limit=args.limit)  # fmt: skip
    print(f"{src.format} {src.path}: {len(src.lengths)} episodes, {sum(src.lengths)} steps; " + "; ".join(src.notes))
    rep = import_episodes(src, cfg, cameras, progress=not args.no_progress)
    rate = rep.frames / rep.seconds if rep.seconds else 0.0
    print(f"{rep.imported} imported ({rep.frames} frames, {rate:.0f} frames/s), {rep.skipped} already in "
          f"{rep.store}, {len(rep.errors)} bad" + (f"; {rep.unknown} of unknown outcome" if rep.unknown else ""))
    for e in rep.errors:
        print(f"error: {e}", file=sys.stderr)
    return 1 if rep.errors else 0


def cmd_export(args: argparse.Namespace) -> int:
    from wmeval.data.importers.lerobot_export import export_lerobot

    res = export_lerobot(args.store, args.out, _tuple(args.tasks), _tuple(args.policies), not args.no_progress)
    print(f"{res['episodes']} episodes ({res['frames']} frames, {res['codec']} video) written to {res['out']} "
          f"as a LeRobot v3.0 dataset; outcomes, policies and tasks also in {res['out']}/meta/wmeval_labels.csv")
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


def cmd_policy_train(args: argparse.Namespace) -> int:
    from wmeval.policies.train_bc import BCTrainConfig, train_bc

    cfg = BCTrainConfig(
        store=args.store, task=args.task, out=args.out, source=args.source, episodes=args.episodes,
        val_episodes=args.val_episodes, encoder=args.encoder, use_proprio=not args.no_proprio,
        chunk_frames=args.chunk_frames, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
        save_every=args.save_every, eval_every=args.eval_every, seed=args.seed, device=args.device,
    )  # fmt: skip
    last = train_bc(cfg, resume=args.resume, progress=not args.no_progress)
    print(f"trained {args.task} policy; last checkpoint: {last}")
    return 0


def cmd_policy_grid(args: argparse.Namespace) -> int:
    from wmeval.policies.grid import GridConfig, train_grid

    cfg = GridConfig(
        store=args.store, out=args.out, tasks=tuple(_csv(args.tasks)), sizes=tuple(map(int, _csv(args.sizes))),
        variants=tuple(_csv(args.variants)), checkpoints=tuple(map(int, _csv(args.checkpoints))),
        batch_size=args.batch_size, seed=args.seed, device=args.device,
    )  # fmt: skip
    zoo = train_grid(cfg, progress=not args.no_progress)
    print(f"zoo written to {zoo}; collect its rollouts with `wmeval collect --zoo {zoo} --seed 1000 ...`")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from wmeval.train.world_model import WMTrainConfig, train_world_model

    cfg = WMTrainConfig(
        store=args.store, out=args.out, preset=args.preset, window=args.window, codec_batch=args.codec_batch,
        tasks=_tuple(args.tasks), exclude_policies=_tuple(args.exclude_policies) or (), value_scheme=args.value_scheme,
        val_fraction=args.val_fraction, codec_steps=args.codec_steps, steps=args.steps, batch_size=args.batch_size,
        lr=args.lr, eval_every=args.eval_every, save_every=args.save_every, seed=args.seed, device=args.device,
        codec_from=args.codec_from, d_model=args.d_model, depth=args.depth, heads=args.heads,
        latent_channels=args.latent_channels, codec_width=args.codec_width, success_head=args.success_head,
        residual=args.residual, prev_noise=args.prev_noise, teacher_forcing=args.teacher_forcing,
        train_policies=_tuple(args.train_policies) or (), train_episodes=args.train_episodes,
    )  # fmt: skip
    path = train_world_model(cfg, progress=not args.no_progress)
    print(f"world model: {path}")
    return 0


def cmd_quality(args: argparse.Namespace) -> int:
    from wmeval.eval.quality import evaluate_quality

    rep = evaluate_quality(args.model, args.store, episodes=args.episodes, horizon=args.horizon, seed=args.seed,
                           out=args.out, policies=_tuple(args.policies), progress=not args.no_progress)  # fmt: skip
    print(f"{rep['episodes']} held-out episodes ({rep['successes']} successes), context {rep['context']} frames")
    base = rep["still_baseline"]
    print("horizon  PSNR dB  SSIM   proprio MAE   | nothing-moves baseline: PSNR dB  proprio MAE")
    for h in rep["psnr"]:
        print(f"{h:7d}  {rep['psnr'][h]:7.2f}  {rep['ssim'][h]:.3f}  {rep['proprio_mae'][h]:11.4f}   |"
              f" {base['psnr'][h]:30.2f}  {base['proprio_mae'][h]:11.4f}")  # fmt: skip
    print(f"readout AUROC: real last frame {rep['value_auroc_real_last_frame']:.3f}, "
          f"imagined final frame {rep['value_auroc_imagined_final_frame']:.3f}")  # fmt: skip
    print("readout AUROC over whole episodes (max / final): real frames | open loop from the first frame")
    for task, r in rep["readout"].items():
        print(f"  {task:24s} {r['episodes']:4d} episodes: {r['real_max']:.3f} / {r['real_final']:.3f} | "
              f"{r['imagined_max']:.3f} / {r['imagined_final']:.3f}")  # fmt: skip
    o = rep["one_step"]
    print(f"one step from real context: latent MSE {o['latent_mse']:.4f} (still {o['latent_mse_still']:.4f}); "
          f"proprio MAE {o['proprio_mae']:.4f} (still {o['proprio_mae_still']:.4f}, "
          f"constant velocity {o['proprio_mae_constant_velocity']:.4f})")  # fmt: skip
    if args.out:
        print(f"report and real-vs-imagined GIFs in {args.out}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from wmeval.eval.evaluate import EvalConfig, evaluate, format_evaluation

    cfg = EvalConfig(
        model=args.model, zoo=args.zoo, out=args.out, store=args.store, policies=_tuple(args.policies),
        tasks=_tuple(args.tasks), episodes=args.episodes, seed=args.seed, batch_size=args.batch_size, rule=args.rule,
        calibration=args.calibration, calibration_episodes=args.calibration_episodes, replay=not args.no_replay,
        videos=args.videos, noise_seed=args.noise_seed, samples=args.samples, euler_steps=args.euler_steps,
        context_tau=args.context_tau, context_frames=args.context_frames, device=args.device,
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
            print(f"  wmeval collect --zoo {res['zoo']} --policies {p['policy']} --tasks {p['task']} "
                  f"--seeds {','.join(map(str, p['seeds']))} --out REAL")
    if args.out:
        atomic_write_text(Path(args.out), json.dumps(res, indent=1, default=float) + "\n")
        print(f"wrote {args.out}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from wmeval.align.report import write_report

    path = write_report(args.alignment, args.out, args.evaluation)
    print(f"wrote {path} (self-contained; open it in any browser)")
    return 0


def cmd_pipeline(args: argparse.Namespace) -> int:
    from wmeval.align.tables import format_per_task, format_summary
    from wmeval.pipeline import make_config, run_pipeline

    preset = args.cmd
    if args.cmd == "bench":
        import torch

        preset = args.preset if args.preset != "auto" else ("gpu" if torch.cuda.is_available() else "cpu")
    out = args.out or ("runs/demo" if preset == "demo" else f"runs/bench-{preset}")
    cfg = make_config(preset, out, episodes=args.episodes, workers=args.workers, device=args.device)
    names, parts = None, None
    if getattr(args, "ablation", None):
        from wmeval.ablations import parse_names

        names = parse_names(args.ablation)  # refused before hours of work, not after
    if getattr(args, "study", None):
        from wmeval.study import parse_parts

        parts = parse_parts(args.study)
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


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="wmeval", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)

    c = sub.add_parser("collect", help="run a policy zoo in reality, store episodes, print the true success table")
    c.add_argument("--out", default="data/quickstart", help="episode store directory (created or resumed)")
    c.add_argument("--zoo", default="default", help="zoo file (.toml/.json) or built-in name: default, tiny")
    c.add_argument("--tasks", help="comma-separated tasks (default: the suite's default tasks)")
    c.add_argument("--policies", help="comma-separated policy names from the zoo (default: all)")
    c.add_argument("--episodes", type=int, default=5, help="episodes per (task, policy)")
    c.add_argument("--seed", type=int, default=0, help="first start seed; episode i uses seed + i")
    c.add_argument("--seeds", help="comma-separated start seeds instead of --seed/--episodes (as `wmeval suggest` "
                   "prints them)")
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
    im.add_argument("format", choices=("lerobot", "hdf5"), help="lerobot: a LeRobot dataset directory (meta/info.json, "
                    "parquet data, mp4 videos); hdf5: a robomimic-layout file (data/demo_N/obs, actions, rewards)")
    im.add_argument("source", help="the dataset directory or file")
    im.add_argument("--out", required=True, help="episode store directory (created or resumed)")
    im.add_argument("--cameras", help="comma-separated camera keys (default: all)")
    im.add_argument("--state-keys", help="comma-separated keys concatenated into proprio (default: lerobot "
                    "observation.state; hdf5: every low-dimensional obs key but object*)")
    im.add_argument("--action-key", help="the action column (default: lerobot action, hdf5 actions)")
    im.add_argument("--success-from", default="auto", choices=("auto", "success", "reward", "done", "none"),
                    help="per-step success column: auto = a success column, else a reward column holding only 0/1, "
                    "else unknown (done flags mark an episode's end, not success: only when asked)")
    im.add_argument("--labels", help="CSV with columns episode and any of success (1/0/blank), policy, task: "
                    "overrides the source's success and names each episode's policy and task")
    im.add_argument("--task", help="task name for every episode (default: the source's task label or file name)")
    im.add_argument("--policy", default="demonstrations", help="policy name for episodes the labels do not name")
    im.add_argument("--suite", default="imported", help="suite name recorded in the store")
    im.add_argument("--image-size", type=int, default=64, help="stored frame size in px (frames are resized)")
    im.add_argument("--frame-skip", type=int, default=1,
                    help="source steps per stored frame (their actions form its chunk)")
    im.add_argument("--action-chunk", type=int, default=1, help="control actions held in each step's action "
                    "(flattened C x A values, as `wmeval export lerobot` writes them): stored as C control steps")
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

    pol = sub.add_parser("policy", help="learned policies: train behaviour cloning from pixels")
    psub = pol.add_subparsers(dest="policy_cmd", required=True)
    pt = psub.add_parser("train", help="behaviour-clone a pixel policy on a task's demonstrations")
    pt.add_argument("--store", required=True, help="episode store holding the demonstrations")
    pt.add_argument("--task", required=True)
    pt.add_argument("--out", required=True, help="run directory; checkpoints go to OUT/step_XXXXXX")
    pt.add_argument("--source", default="expert", help="policy whose successful episodes are the demos")
    pt.add_argument("--episodes", type=int, default=40, help="training demonstrations (in seed order)")
    pt.add_argument("--val-episodes", type=int, default=5, help="held-out demonstrations for validation loss")
    pt.add_argument("--encoder", default="cnn", choices=["cnn", "vit"])
    pt.add_argument("--no-proprio", action="store_true", help="images only: the policy never reads proprio")
    pt.add_argument("--chunk-frames", type=int, default=1, help="frames of actions predicted per query")
    pt.add_argument("--steps", type=int, default=2000)
    pt.add_argument("--batch-size", type=int, default=64)
    pt.add_argument("--lr", type=float, default=3e-4)
    pt.add_argument("--save-every", type=int, default=500)
    pt.add_argument("--eval-every", type=int, default=250)
    pt.add_argument("--seed", type=int, default=0)
    pt.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    pt.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    pt.add_argument("--no-progress", action="store_true")
    pt.set_defaults(func=cmd_policy_train)

    pg = psub.add_parser("grid", help="train tasks x data sizes x variants and write a zoo of their checkpoints")
    pg.add_argument("--store", required=True)
    pg.add_argument("--out", required=True)
    pg.add_argument("--tasks", required=True, help="comma-separated tasks")
    pg.add_argument("--sizes", default="10,40", help="training demonstrations per run")
    pg.add_argument("--variants", default="cnn-proprio,cnn-noproprio,vit-proprio")
    pg.add_argument("--checkpoints", default="100,500,1500", help="steps named in the zoo; the last ends training")
    pg.add_argument("--batch-size", type=int, default=64)
    pg.add_argument("--seed", type=int, default=0)
    pg.add_argument("--device", default="auto")
    pg.add_argument("--no-progress", action="store_true")
    pg.set_defaults(func=cmd_policy_grid)

    tr = sub.add_parser("train", help="train the world model (codec, latent cache, dynamics); resumes by itself")
    tr.add_argument("--store", required=True)
    tr.add_argument("--out", required=True, help="run directory; OUT/model is the trained model")
    tr.add_argument("--preset", default="tiny", choices=["tiny", "small", "base"])
    tr.add_argument("--tasks", help="comma-separated tasks to train on (default: all in the store)")
    tr.add_argument("--exclude-policies", help="comma-separated policies or glob patterns to hold out")
    tr.add_argument("--train-policies", help="only these policies' episodes train (globs; the validation "
                    "episodes, hence calibration, stay those of every policy not held out)")
    tr.add_argument("--train-episodes", type=int, help="at most N training episodes (nested subsets: a smaller N "
                    "keeps a subset of a larger one's)")
    tr.add_argument("--value-scheme", default="linear", choices=["linear", "discounted", "outcome"])
    tr.add_argument("--success-head", action=argparse.BooleanOptionalAction, default=False,
                    help="add a head for 'the task is succeeded in this frame' (a property of the state, the same "
                    "for every policy); evaluation then reads it instead of the value head")
    tr.add_argument("--residual", action=argparse.BooleanOptionalAction, default=False,
                    help="predict each frame as the previous frame plus a change (an untrained model copies)")
    tr.add_argument("--prev-noise", type=float, default=0.0, help="with --residual: train on previous frames noised "
                    "to a random signal level in [1 - x, 1], for robustness to the model's own frames")
    tr.add_argument("--teacher-forcing", action=argparse.BooleanOptionalAction, default=False,
                    help="train as a rollout samples: every frame noisy, seeing slightly noised copies of the "
                    "earlier frames (about 2x the cost of a step)")
    tr.add_argument("--val-fraction", type=float, default=0.1, help="episodes held out for validation")
    tr.add_argument("--window", type=int, help="frames per training window (default: the preset's)")
    tr.add_argument("--codec-steps", type=int, default=1000)
    tr.add_argument("--latent-channels", type=int, help="codec latent channels (default: the preset's)")
    tr.add_argument("--codec-width", type=int,
                    help="codec channels at half resolution, doubled twice below (default: the preset's)")
    tr.add_argument("--codec-batch", type=int, default=32)
    tr.add_argument("--steps", type=int, default=2000, help="dynamics steps")
    tr.add_argument("--batch-size", type=int, default=16)
    tr.add_argument("--lr", type=float, default=5e-4)
    tr.add_argument("--eval-every", type=int, default=250)
    tr.add_argument("--save-every", type=int, default=500)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--codec-from", help="reuse this run's finished codec and latent cache (e.g. another seed)")
    tr.add_argument("--d-model", type=int, help="dynamics width (default: the preset's)")
    tr.add_argument("--depth", type=int, help="dynamics blocks (default: the preset's)")
    tr.add_argument("--heads", type=int, help="attention heads (default: the preset's)")
    tr.add_argument("--device", default="auto")
    tr.add_argument("--no-progress", action="store_true")
    tr.set_defaults(func=cmd_train)

    q = sub.add_parser("quality", help="open-loop prediction quality of a world model on held-out episodes")
    q.add_argument("--model", required=True, help="world-model checkpoint (RUN/model)")
    q.add_argument("--store", help="episodes to evaluate (default: the model's validation episodes)")
    q.add_argument("--episodes", type=int, default=64)
    q.add_argument("--policies", help="evaluate these policies' episodes instead (comma list, glob patterns), e.g. "
                   "the judged ones: where does the model lose their outcome?")
    q.add_argument("--horizon", type=int, default=32)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--out", help="write quality.json and real-vs-imagined GIFs here")
    q.add_argument("--no-progress", action="store_true")
    q.set_defaults(func=cmd_quality)

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
        default="auto",
        choices=["auto", "final", "max", "mean-last"],
        help="value statistic read as success (auto: lowest Brier on calibration episodes)",
    )
    ev.add_argument("--calibration", default="replay", choices=["replay", "closed-loop"],
                    help="fit the success rule on the model's validation episodes replayed open loop, or on their "
                         "(learned) policies acting in imagination from the same starts")
    ev.add_argument("--calibration-episodes", type=int, default=256)
    ev.add_argument("--no-replay", action="store_true", help="skip open-loop replay of recorded episodes")
    ev.add_argument("--videos", type=int, default=6, help="imagined episodes saved as GIFs")
    ev.add_argument("--noise-seed", type=int, default=0)
    ev.add_argument("--samples", type=int, default=1, help="imagined episodes per (policy, start), averaged")
    ev.add_argument("--euler-steps", type=int, help="Euler steps per generated frame (default: the model's)")
    ev.add_argument("--context-tau", type=float, help="signal level (0, 1] at which generated frames re-enter the "
                    "context (1: clean; default: the model's, 0.95)")
    ev.add_argument("--context-frames", type=int, help="past frames a generated frame attends to (default: the "
                    "training window - 1, the most a training window shows a frame)")
    ev.add_argument("--device", default="auto")
    ev.add_argument("--no-progress", action="store_true")
    ev.set_defaults(func=cmd_evaluate)

    al = sub.add_parser("align", help="predicted vs true success: alignment metrics with intervals")
    al.add_argument("evaluation", nargs="+", help="evaluation.json written by `wmeval evaluate` (or its directory); "
                    "several: world models of different seeds, scored as members and as an ensemble")
    al.add_argument("--store", help="real episodes of the judged policies (default: the evaluation's store)")
    al.add_argument("--true", help="true results instead of --store: a CSV of real trials with the columns "
                    "policy,task,successes,trials (e.g. a real robot's), or a true_success.json from `wmeval collect`")
    al.add_argument("--out", help="write the alignment JSON here")
    al.add_argument("--bootstrap", type=int, default=1000, help="bootstrap draws for the intervals")
    al.set_defaults(func=cmd_align)

    sg = sub.add_parser("suggest", help="which real rollouts to collect next: policies (and starts) where the "
                        "verdicts are unsure and the ranking could flip", description=(
                        "Ranks the judged policies by flips: the expected number of within-task pairwise orders "
                        "each gets wrong, from the ensemble's rates and their uncertainty (between-seed sd of "
                        "several world models, sampling sd of the imagined episodes); spends --budget real "
                        "episodes in blocks of --min-episodes on the highest flips / (1 + blocks held), on the "
                        "starts the models disagree on most. Rollouts of those policies, failures included, are "
                        "what to add to the training data (see wmeval.align.suggest for why)."))
    sg.add_argument("evaluation", nargs="+", help="evaluation.json of `wmeval evaluate` (or its directory); "
                    "several: one per world-model seed, judging the same policies on the same starts")
    sg.add_argument("--budget", type=int, required=True, help="real episodes you can run")
    sg.add_argument("--min-episodes", type=int, default=5, help="episodes per block (per policy at least)")
    sg.add_argument("--out", help="write the suggestion as JSON here")
    sg.set_defaults(func=cmd_suggest)

    rp = sub.add_parser("report", help="one self-contained HTML page from an alignment JSON")
    rp.add_argument("alignment", help="the JSON written by `wmeval align --out`")
    rp.add_argument("--out", required=True, help="HTML file to write")
    rp.add_argument("--evaluation", help="evaluation directory with videos/ (default: the one the alignment names)")
    rp.set_defaults(func=cmd_report)

    for name, text in (
        ("demo", "the whole loop at toy size on a CPU (about 10 minutes on 2 cores)"),
        ("bench", "the whole held-out experiment: the headline alignment table of docs/RESULTS.md "
                  "(--preset cpu: 2 cores in under 2 hours; gpu: full size on one GPU)"),
    ):
        pp = sub.add_parser(name, help=text)
        pp.add_argument("--out", help=f"run directory (default: runs/{name}[-PRESET]); re-run to resume")
        if name == "bench":
            pp.add_argument("--preset", default="auto", choices=["auto", "cpu", "gpu"],
                            help="auto: gpu when CUDA is available, else cpu")
            pp.add_argument("--ablation", help="then run these ablations (comma-separated, or 'all') on the same "
                                               "data and print the ablation table; see wmeval/ablations.py")
            pp.add_argument("--study", help="then run the data study's parts (size, kind, or all) on the same data "
                                            "and write OUT/study.json and its figures; see wmeval/study.py")
        pp.add_argument("--episodes", type=int, help="episodes per policy in reality and in imagination")
        pp.add_argument("--workers", type=int, help="collection processes (default: all cores)")
        pp.add_argument("--device", default="auto")
        pp.add_argument("--no-progress", action="store_true")
        pp.set_defaults(func=cmd_pipeline)

    z = sub.add_parser("zoo", help="show a zoo's policies and the available degradations")
    z.add_argument("zoo", nargs="?", default="default")
    z.set_defaults(func=cmd_zoo)
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.command_line = "wmeval " + shlex.join(argv)
    try:
        return args.func(args)
    except (ValueError, RuntimeError) as e:  # user-facing errors: one clear line, no traceback
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a full disk, a read-only or missing directory, a permission: say which file
        where = f": {e.filename}" if e.filename else ""
        fix = "free some space and run the same command again: it resumes" if e.errno == errno.ENOSPC else (
            "check the path and its permissions")  # fmt: skip
        print(f"error: {e.strerror or e}{where}; {fix}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: committed episodes are kept; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
