"""Commands that train: behaviour-cloned policies and the world model, and its open-loop quality."""

from __future__ import annotations

import argparse

from wmeval.cli.common import csv_tuple, split_csv


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
        store=args.store, out=args.out, tasks=tuple(split_csv(args.tasks)),
        sizes=tuple(map(int, split_csv(args.sizes))), variants=tuple(split_csv(args.variants)),
        checkpoints=tuple(map(int, split_csv(args.checkpoints))),
        batch_size=args.batch_size, seed=args.seed, device=args.device,
    )  # fmt: skip
    zoo = train_grid(cfg, progress=not args.no_progress)
    print(f"zoo written to {zoo}; collect its rollouts with `wmeval collect --zoo {zoo} --seed 1000 ...`")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from wmeval.train.world_model import WMTrainConfig, train_world_model

    cfg = WMTrainConfig(
        store=args.store, out=args.out, preset=args.preset, window=args.window, codec_batch=args.codec_batch,
        tasks=csv_tuple(args.tasks), exclude_policies=csv_tuple(args.exclude_policies) or (),
        train_seeds=tuple(int(x) for x in split_csv(args.train_seeds)) if args.train_seeds else None,
        value_scheme=args.value_scheme,
        val_fraction=args.val_fraction, codec_steps=args.codec_steps, steps=args.steps, batch_size=args.batch_size,
        lr=args.lr, eval_every=args.eval_every, save_every=args.save_every, save_minutes=args.save_minutes,
        seed=args.seed, device=args.device, codec_from=args.codec_from, d_model=args.d_model, depth=args.depth,
        heads=args.heads, patch=args.patch,
        latent_channels=args.latent_channels, codec_width=args.codec_width, success_head=args.success_head,
        residual=args.residual, prev_noise=args.prev_noise, teacher_forcing=args.teacher_forcing,
        action_dropout=args.action_dropout, motion_weight=args.motion_weight, proprio_given=args.proprio_given,
        init_from=args.init_from, train_policies=csv_tuple(args.train_policies) or (),
        train_episodes=args.train_episodes,
    )  # fmt: skip
    path = train_world_model(cfg, progress=not args.no_progress)
    print(f"world model: {path}")
    return 0


def cmd_train_judge(args: argparse.Namespace) -> int:
    from wmeval.train.judge import JudgeTrainConfig, train_judge

    cfg = JudgeTrainConfig(
        model=args.model, out=args.out, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
        frames=args.frames, d_model=args.d_model, depth=args.depth, heads=args.heads, noise=args.noise,
        imagined=args.imagined, eval_every=args.eval_every, seed=args.seed, device=args.device,
    )  # fmt: skip
    path = train_judge(cfg, progress=not args.no_progress)
    print(f"judge: {path}  (use it with `wmeval evaluate --model {args.model} --judge {path}`)")
    return 0


def cmd_train_proprio(args: argparse.Namespace) -> int:
    from wmeval.train.proprio import ProprioTrainConfig, train_proprio

    cfg = ProprioTrainConfig(
        model=args.model, out=args.out, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
        history=args.history, hidden=args.hidden, noise=args.noise, imagined=args.imagined, seed=args.seed,
        device=args.device,
    )  # fmt: skip
    path = train_proprio(cfg, progress=not args.no_progress)
    print(f"proprio net: {path}  (use it with `wmeval evaluate --model {args.model} --proprio-net {path}`)")
    return 0


def cmd_quality(args: argparse.Namespace) -> int:
    from wmeval.eval.quality import evaluate_quality

    rep = evaluate_quality(args.model, args.store, episodes=args.episodes, horizon=args.horizon, seed=args.seed,
                           out=args.out, policies=csv_tuple(args.policies), progress=not args.no_progress)  # fmt: skip
    print(f"{rep['episodes']} held-out episodes ({rep['successes']} successes), context {rep['context']} frames")
    base = rep["still_baseline"]
    print("horizon  PSNR dB  SSIM   proprio MAE   | nothing-moves baseline: PSNR dB  proprio MAE")
    for h in rep["psnr"]:
        print(f"{h:7d}  {rep['psnr'][h]:7.2f}  {rep['ssim'][h]:.3f}  {rep['proprio_mae'][h]:11.4f}   |"
              f" {base['psnr'][h]:30.2f}  {base['proprio_mae'][h]:11.4f}")  # fmt: skip
    ratio = lambda v: "n/a" if v is None else f"{v:.2f}"  # noqa: E731  (None: nothing moved in reality)
    sharp = ", ".join(f"{h}: {ratio(v)}" for h, v in rep["sharpness"].items())
    print(f"sharpness where reality moves, imagined / real (1 = as much detail) at horizon {sharp}; "
          f"the codec's round trip alone: {ratio(rep['sharpness_codec'])}")
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


def _post_hoc_args(p, what: str, steps: int, batch_size: int) -> None:
    """Arguments shared by the small modules trained for a finished world model (a judge, a proprio net)."""
    p.add_argument("--model", required=True, help=f"the world model (RUN/model); the {what} trains on its latent cache")
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=steps)
    p.add_argument("--batch-size", type=int, default=batch_size)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--noise", type=float, default=0.1,
                   help="training frames at a signal level in [1 - noise, 1], as imperfect as imagined ones")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--no-progress", action="store_true")


def add_parsers(sub) -> None:
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
    tr.add_argument("--train-seeds", help="FIRST,LAST: the held-out policies' episodes on these start seeds train "
                    "after all (never validate), e.g. a few real rollouts on starts other than the evaluation's")
    tr.add_argument(
        "--train-policies",
        help="only these policies' episodes train (globs; the validation "
        "episodes, hence calibration, stay those of every policy not held out)",
    )
    tr.add_argument(
        "--train-episodes",
        type=int,
        help="at most N training episodes (nested subsets: a smaller N keeps a subset of a larger one's)",
    )
    tr.add_argument("--value-scheme", default="linear", choices=["linear", "discounted", "outcome"])
    tr.add_argument(
        "--success-head",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="add a head for 'the task is succeeded in this frame' (a property of the state, the same "
        "for every policy); evaluation then reads it instead of the value head",
    )
    tr.add_argument(
        "--residual",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="predict each frame as the previous frame plus a change (an untrained model copies)",
    )
    tr.add_argument(
        "--prev-noise",
        type=float,
        default=0.0,
        help="with --residual: train on previous frames noised "
        "to a random signal level in [1 - x, 1], for robustness to the model's own frames",
    )
    tr.add_argument(
        "--teacher-forcing",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="train as a rollout samples: every frame noisy, seeing slightly noised copies of the "
        "earlier frames (about 2x the cost of a step)",
    )
    tr.add_argument(
        "--action-dropout",
        type=float,
        default=0.0,
        help="hide each frame's actions with this probability in training, so the model also "
        "predicts without them: what `evaluate --guidance` needs",
    )
    tr.add_argument(
        "--motion-weight",
        type=float,
        default=0.0,
        help="weight each latent cell's loss by how much it moves between frames (1 + A * motion / mean "
        "motion, normalised): the arm and the objects it moves weigh more than the static scene",
    )
    tr.add_argument(
        "--proprio-given",
        type=float,
        default=0.0,
        help="give each frame's proprio clean with this probability in training, so a frame can be sampled "
        "given a proprio predicted elsewhere (`evaluate --proprio-net`) instead of sampled with it",
    )
    tr.add_argument(
        "--init-from",
        help="a trained world model (its model/ folder) whose dynamics weights this run starts from: fine-tuning, "
        "e.g. for --proprio-given; the codec comes from --codec-from",
    )
    tr.add_argument("--val-fraction", type=float, default=0.1, help="episodes held out for validation")
    tr.add_argument("--window", type=int, help="frames per training window (default: the preset's)")
    tr.add_argument("--codec-steps", type=int, default=1000)
    tr.add_argument("--latent-channels", type=int, help="codec latent channels (default: the preset's)")
    tr.add_argument(
        "--codec-width", type=int, help="codec channels at half resolution, doubled twice below (default: the preset's)"
    )
    tr.add_argument("--codec-batch", type=int, default=32)
    tr.add_argument("--steps", type=int, default=2000, help="dynamics steps")
    tr.add_argument("--batch-size", type=int, default=16)
    tr.add_argument("--lr", type=float, default=5e-4)
    tr.add_argument("--eval-every", type=int, default=250)
    tr.add_argument("--save-every", type=int, default=500)
    tr.add_argument("--save-minutes", type=float, default=10.0,
                    help="also checkpoint when this many minutes passed since the last one (kept until the next)")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--codec-from", help="reuse this run's finished codec and latent cache (e.g. another seed)")
    tr.add_argument("--d-model", type=int, help="dynamics width (default: the preset's)")
    tr.add_argument("--depth", type=int, help="dynamics blocks (default: the preset's)")
    tr.add_argument("--heads", type=int, help="attention heads (default: the preset's)")
    tr.add_argument("--patch", type=int, help="latent cells per token side (default: the preset's 2; 1: 4x the tokens, "
                    "each token one latent cell, for small objects)")
    tr.add_argument("--device", default="auto")
    tr.add_argument("--no-progress", action="store_true")
    tr.set_defaults(func=cmd_train)

    tj = sub.add_parser(
        "train-judge",
        help="train a judge for a world model: the value of an imagined episode read from the rendered frames and "
        "proprio alone, never the actions (see wmeval/model/judge.py); for `evaluate --judge`",
    )
    _post_hoc_args(tj, "judge", steps=3000, batch_size=64)
    tj.add_argument("--frames", type=int, default=4, help="the newest frames the judge reads")
    tj.add_argument("--d-model", type=int, default=64)
    tj.add_argument("--depth", type=int, default=2)
    tj.add_argument("--heads", type=int, default=2)
    tj.add_argument("--imagined", action="store_true",
                    help="train on the world model's open-loop imagination of its training episodes (their first "
                    "frame and recorded actions), labelled with their real outcomes, instead of their real frames")
    tj.add_argument("--eval-every", type=int, default=500)
    tj.set_defaults(func=cmd_train_judge)

    tp = sub.add_parser(
        "train-proprio",
        help="train a proprio net for a world model: the robot's next proprio regressed from its recent motion, "
        "actions and frame (see wmeval/model/proprio.py); for `evaluate --proprio-net`",
    )
    _post_hoc_args(tp, "net", steps=6000, batch_size=256)
    tp.add_argument("--history", type=int, default=3, help="past frames of motion and chunks it reads")
    tp.add_argument("--hidden", type=int, default=256)
    tp.add_argument("--imagined", action="store_true",
                    help="read the frames the world model imagines for its training episodes (open loop, recorded "
                    "actions) with their real proprio, instead of the real frames")
    tp.set_defaults(func=cmd_train_proprio)

    q = sub.add_parser("quality", help="open-loop prediction quality of a world model on held-out episodes")
    q.add_argument("--model", required=True, help="world-model checkpoint (RUN/model)")
    q.add_argument("--store", help="episodes to evaluate (default: the model's validation episodes)")
    q.add_argument("--episodes", type=int, default=64)
    q.add_argument(
        "--policies",
        help="evaluate these policies' episodes instead (comma list, glob patterns), e.g. "
        "the judged ones: where does the model lose their outcome?",
    )
    q.add_argument("--horizon", type=int, default=32)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--out", help="write quality.json and real-vs-imagined GIFs here")
    q.add_argument("--no-progress", action="store_true")
    q.set_defaults(func=cmd_quality)
