"""Controlled ablations of the world-model recipe, on the data of a `wmeval bench` run.

Each ablation changes one thing against the headline and is judged exactly like it: the same judged
policies, starts, seeds and metrics. `train` overrides retrain one world model per seed (from the
headline's shared codec, so the codec is not a source of difference, unless the ablation changes the codec:
then seed 0 trains it and seeds 1 and 2 share it); `evaluate` overrides re-judge with the headline's own
world models. Rows: the within-task metrics (mean over seeds and between-seed sd), the within-task
Spearman of open-loop replays of the judged policies' real actions (the dynamics without the closed loop),
per-episode accuracy, pooled Pearson, training minutes per world model and imagination frames/s.

    OUT/ablations/NAME/wm-sK/         retrained world models (train overrides only)
    OUT/ablations/NAME/eval-sK/       evaluations, one per seed
    OUT/ablations/NAME/alignment.json the ablation's alignment (members + ensemble)
    OUT/ablations.json                every finished row, the headline first
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from wmeval.data.store import atomic_write_text
from wmeval.pipeline import PipelineConfig, Timer, eval_config, world_model_config


@dataclass(frozen=True)
class Ablation:
    what: str
    train: dict = field(default_factory=dict)  # WMTrainConfig fields
    evaluate: dict = field(default_factory=dict)  # EvalConfig fields
    models_from: str | None = None  # another ablation whose retrained world models this one re-judges
    judge: dict | None = None  # JudgeTrainConfig fields: a judge trained for each seed's model judges its episodes
    proprio: dict | None = None  # ProprioTrainConfig fields: a proprio net trained for each seed's model predicts


ABLATIONS = {
    "closed-loop-calibration": Ablation(
        "success rule fitted on the training policies' closed-loop imagination (validation starts, real "
        "outcomes) instead of open-loop replay", evaluate={"calibration": "closed-loop"}),
    "replay-calibration": Ablation(
        "success rule fitted on open-loop replays of the validation episodes instead of the training policies' "
        "closed-loop imagination (`auto`, closed loop where the data allow)", evaluate={"calibration": "replay"}),
    "calibration-samples-1": Ablation(
        "the success rule fitted on one imagined (and replayed) sample of each calibration episode (4 in closed "
        "loop)", evaluate={"calibration_samples": 1}),
    "samples-3": Ablation("3 imagined samples per start, probabilities averaged (1)", evaluate={"samples": 3}),
    "euler-8": Ablation("8 Euler steps per generated frame (4)", evaluate={"euler_steps": 8}),
    # one Euler step from pure noise lands on the flow's estimate of E[frame | context, actions]: the mean
    # prediction, with no sampled detail (MetaWorld is deterministic given the actions)
    "euler-1": Ablation("1 Euler step per generated frame: the mean prediction (4)", evaluate={"euler_steps": 1}),
    "context-clean": Ablation("generated frames re-enter the context clean (signal level 1; 0.95)",
                              evaluate={"context_tau": 1.0}),
    # a training window of 8 frames shows a frame at most 7 past frames; rollouts before 2026-11-26 kept 8
    "context-7": Ablation("a generated frame attends to 7 past frames, the most training shows it (8, one more)",
                          evaluate={"context_frames": 7}),
    # measured: a d=128, depth-4 step costs 2.7x a `tiny` step on this CPU, so 0.375x the steps is equal wall time
    "wide": Ablation("dynamics d_model 128, depth 4, 4 heads (64, 3, 2), 0.375x the steps: equal training time",
                     train={"d_model": 128, "depth": 4, "heads": 4, "steps_scale": 0.375}),
    "success-head": Ablation("imagined episodes judged by a success-now head (is the task succeeded in this frame?, "
                             "the same for every policy) instead of the value head", train={"success_head": True}),
    "residual": Ablation("each frame predicted as the previous frame plus a change", train={"residual": True}),
    "residual-prev-noise": Ablation("residual, trained on previous frames noised to a signal level in [0.8, 1]",
                                    train={"residual": True, "prev_noise": 0.2}),
    # measured: a teacher-forced step costs 1.92x a plain one on this CPU (3000 steps: 247 s vs 128 s)
    "teacher-forcing": Ablation("trained as rollouts sample: every frame noisy, seeing context copies of the "
                                "earlier frames (independent noise levels per frame); 0.52x the steps: equal "
                                "training time", train={"teacher_forcing": True, "steps_scale": 0.52}),
    "window-12": Ablation("12-frame training windows (8)", train={"window": 12}),
    "steps-half": Ablation("half the dynamics training steps", train={"steps_scale": 0.5}),
    "steps-double": Ablation("twice the dynamics training steps", train={"steps_scale": 2.0}),
    # measured (benchmarks/codec_in_loop.py): seen through the `tiny` preset's codec (4 latent channels,
    # widths 16-64, val PSNR 27 dB) the judged policies' true success ranks within tasks at Spearman 0.62 only
    "codec-c4": Ablation("the `tiny` preset's codec: 4 latent channels, widths 16/32/64 (8; 32/64/128)",
                         train={"latent_channels": 4, "codec_width": 16}),
    # action guidance (classifier-free guidance on the actions): the same three models judged with and without
    "action-dropout": Ablation("each frame's actions hidden with probability 0.1 in training (0)",
                               train={"action_dropout": 0.1}),
    "action-guidance-2": Ablation("action-dropout's models, sampled with action guidance 2 (1)",
                                  evaluate={"guidance": 2.0}, models_from="action-dropout"),
    "action-guidance-4": Ablation("action-dropout's models, sampled with action guidance 4 (1)",
                                  evaluate={"guidance": 4.0}, models_from="action-dropout"),
    # the dropout at 0.1 cost drawer-open its ranking at guidance 1: a smaller one keeps the conditional model
    "action-dropout-0.05": Ablation("each frame's actions hidden with probability 0.05 in training (0)",
                                    train={"action_dropout": 0.05}),
    "action-dropout-0.05-guidance-2": Ablation("action-dropout-0.05's models, sampled with action guidance 2 (1)",
                                               evaluate={"guidance": 2.0}, models_from="action-dropout-0.05"),
    # autoguidance: the headline's own models, guided by their own checkpoint at a fifth of the training
    "autoguide-2": Ablation("sampled with autoguidance 2 from the same run's step-4000 checkpoint (none)",
                            evaluate={"autoguide": "step_004000", "autoguide_scale": 2.0}),
    # the value head reads tokens conditioned on the actions; this judge reads the rendered state alone
    "judge": Ablation("imagined episodes judged by a judge of the rendered state alone (`wmeval train-judge`: "
                      "latents and proprio of the newest 4 frames, no actions) instead of the value head",
                      judge={}),
    # the judge above reads imagined frames it never trained on; this one trains on the model's own imagination
    "judge-imagined": Ablation("imagined episodes judged by a judge trained on the world model's open-loop "
                               "imagination of its training episodes, with their real outcomes (`wmeval train-judge "
                               "--imagined`), instead of the value head", judge={"imagined": True}),
    # measured (scripts/policy_perception.py): the imagined proprio misleads proprio-reading policies 2-3x more
    # than the imagined frames do, and the dynamics predict it worse than constant velocity
    "proprio-net": Ablation("each imagined frame's proprio predicted by a proprio net (`wmeval train-proprio`: an MLP "
                            "on the recent motion, the chunk and the frame) and the frame sampled given it",
                            proprio={}),
    # measured (docs/RESULTS.md): trained on real frames, the net drifts after contact like the dynamics; on the
    # model's own imagined frames it drifts less at every horizon
    # measured (docs/RESULTS.md): with `proprio-net` the arm follows the actions but the frames need not: a
    # replaced proprio is pure noise at the first Euler step, where the frame's layout is decided
    "proprio-given": Ablation("the headline's dynamics fine-tuned for 0.15x its steps with each frame's proprio given "
                              "clean half the time; each imagined frame then sampled given a proprio net's "
                              "prediction, clean at every Euler step (`proprio-net`: replaced at its noise level)",
                              train={"proprio_given": 0.5, "init_from": "headline", "steps_scale": 0.15}, proprio={}),
    "proprio-given-scratch": Ablation("trained from scratch with each frame's proprio given clean half the time; "
                                      "judged as `proprio-given`", train={"proprio_given": 0.5}, proprio={}),
    "proprio-given-own": Ablation("the `proprio-given` world models sampling their own proprio (no proprio net): "
                                  "what the fine-tuning alone changes", models_from="proprio-given"),
    "proprio-net-imagined": Ablation("as proprio-net, the net trained on the world model's imagined frames of its "
                                     "training episodes (`wmeval train-proprio --imagined`)",
                                     proprio={"imagined": True}),
    # measured (scripts/outcome_location.py): window-open's outcome is plain in reality's last frame (0.96 from
    # a 16 x 16 thumbnail) yet imagination ranks it at 0.36-0.40; the window is a small share of the loss
    "motion-weight-4": Ablation("latent loss weighted by each cell's motion, 1 + 4 m / mean m (uniform)",
                                train={"motion_weight": 4.0}),
    # measured (benchmarks/world_model_speed.py --patch 1 vs 2, 1 thread, the cpu preset's codec, one run each
    # twice): a step with 65 tokens per frame costs 5.2-5.4x one with 17; imagination runs at half the rate
    "patch-1": Ablation("each dynamics token one latent cell (patch 1: 65 tokens per frame; 2: 17), 0.19x the "
                        "steps: equal training time", train={"patch": 1, "steps_scale": 0.19}),
    "logged-starts": Ablation("judged from 50 states per task inside other policies' recorded episodes, 7 "
                              "imagined frames each (from each recorded start, to the horizon)",
                              evaluate={"starts": "logged"}),
    # the combined rule mixes 5 nearly collinear statistics of 7 frames with weights of both signs, fitted on 85
    # episodes; the mean of the 7 frames is the plain reading (chosen after logged-starts ran: docs/RESULTS.md)
    "logged-starts-mean": Ablation("as logged-starts, read by the mean of the 7 frames (a logistic mix of "
                                   "statistics)", evaluate={"starts": "logged", "rule": "mean"}),
    "logged-starts-mean-150": Ablation("as logged-starts-mean, from 150 logged states per task (50)",
                                       evaluate={"starts": "logged", "rule": "mean", "episodes": 150}),
    "logged-starts-mean-proprio-net": Ablation("as logged-starts-mean, with a proprio net predicting the imagined "
                                               "proprio (as proprio-net)", proprio={},
                                               evaluate={"starts": "logged", "rule": "mean"}),
    "codec-c16": Ablation("codec with 16 latent channels (8), widths 32/64/128",
                          train={"latent_channels": 16, "codec_width": 32}),
}  # fmt: skip
CODEC_FIELDS = ("latent_channels", "codec_width", "codec_steps")
JUDGE_STEPS = 0.15  # a judge's training steps, as a share of the dynamics' (the cpu preset: 3000)


def _train_overrides(cfg: PipelineConfig, ab: Ablation, headline: Path) -> dict:
    """WMTrainConfig overrides; `init_from="headline"` fine-tunes the seed's headline world model `headline`."""
    out = dict(ab.train)
    if "steps_scale" in out:
        out["steps"] = max(1, round(cfg.wm_steps * out.pop("steps_scale")))
    if out.get("init_from") == "headline":
        out["init_from"] = str(headline)
    return out


def parse_names(text: str) -> list[str]:
    names = list(ABLATIONS) if text == "all" else [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in ABLATIONS]
    if bad or not names:
        raise ValueError(f"unknown ablation(s) {', '.join(bad) or repr(text)}; valid: {', '.join(ABLATIONS)}, all")
    return names


def run_ablation(cfg: PipelineConfig, name: str, progress: bool = True) -> dict:
    """Run (or resume) one ablation on the finished data stages of the bench run `cfg.out`."""
    if name not in ABLATIONS:
        raise ValueError(f"unknown ablation {name!r}; valid: {', '.join(ABLATIONS)}")
    return run_point(cfg, ABLATIONS[name], Path(cfg.out) / "ablations" / name, progress)


def finished_bench(cfg: PipelineConfig, models: bool = True) -> Path:
    """The bench run's policy zoo, checked: ablations and the data study reuse its data and headline. Points
    that retrain (`models=False`) need only its data and its seed-0 codec (checked when they reuse it), so they
    can run beside the headline's own world models; the others re-judge those models."""
    base = Path(cfg.out)
    zoo_path = base / "policies" / "zoo.toml"
    if not zoo_path.is_file() or (models and not (base / "wm-heldout" / "model").exists()):
        raise ValueError(f"{base} has no finished bench run to ablate; run `wmeval bench --out {base}` first")
    return zoo_path


def run_point(cfg: PipelineConfig, ab: Ablation, out: Path, progress: bool = True,
              seeds: tuple[int, ...] | None = None, models: tuple[Ablation, Path] | None = None) -> dict | None:
    """Train (if `ab` changes training), evaluate and align one variant of the headline, one world model per
    seed, in `out` (resumable). `seeds` runs only those seeds (e.g. one per process, side by side) and aligns
    only if every seed's evaluation is then finished (else returns None). `models` = (what trains them, their
    directory) judges another point's world models (e.g. a data-study point's) with `ab`'s evaluation and
    judge settings; `ab` must not retrain."""
    from wmeval.align.align import run_align
    from wmeval.eval.evaluate import evaluate
    from wmeval.train.judge import JudgeTrainConfig, train_judge
    from wmeval.train.proprio import ProprioTrainConfig, train_proprio
    from wmeval.train.world_model import train_world_model
    from wmeval.zoo import load_zoo, matches_any

    # an ablation may re-judge another one's world models (trained first if that one has not run yet); their
    # training time is recorded with the ablation that owns them, whichever of the two ran it
    if models is not None and ab.train:
        raise ValueError(f"{ab.what!r} retrains world models, so it cannot re-judge another point's")
    trained, where = models or ((ABLATIONS[ab.models_from], out.parent / ab.models_from) if ab.models_from
                                else (ab, out))  # fmt: skip
    base, zoo_path = Path(cfg.out), finished_bench(cfg, models=not trained.train)
    judged = [p.name for p in load_zoo(zoo_path).policies if matches_any(p.name, cfg.judged)]
    out.mkdir(parents=True, exist_ok=True)
    timer = Timer(out / "timings.json")
    where.mkdir(parents=True, exist_ok=True)
    train_timer = Timer(where / "timings.json") if where != out else timer
    for k in range(cfg.seeds) if seeds is None else seeds:
        model = base / ("wm-heldout" if k == 0 else f"wm-heldout-s{k}") / "model"
        if trained.train:
            own_codec = any(f in trained.train for f in CODEC_FIELDS)
            codec_from = (where / "wm-s0" if k else None) if own_codec else base / "wm-heldout"
            wm = world_model_config(cfg, where / f"wm-s{k}", k, cfg.judged, codec_from,
                                    **_train_overrides(cfg, trained, model))  # fmt: skip
            model = train_timer.run(f"world model (s{k})", train_world_model, wm, progress)
        overrides = dict(ab.evaluate)
        if ab.judge is not None:
            steps = max(1, round(JUDGE_STEPS * cfg.wm_steps))
            jcfg = JudgeTrainConfig(**{"model": str(model), "out": str(out / f"judge-s{k}"), "seed": k, "steps": steps,
                                       "device": cfg.device, **ab.judge})  # fmt: skip
            overrides["judge"] = str(timer.run(f"judge (s{k})", train_judge, jcfg, progress))
        if ab.proprio is not None:
            pcfg = ProprioTrainConfig(**{"model": str(model), "out": str(out / f"proprio-s{k}"), "seed": k,
                                         "device": cfg.device, **ab.proprio})  # fmt: skip
            overrides["proprio_net"] = str(timer.run(f"proprio net (s{k})", train_proprio, pcfg, progress))
        timer.run(f"evaluate (s{k})", evaluate, eval_config(cfg, model, out / f"eval-s{k}", zoo_path, judged, 0,
                                                            **overrides), progress)  # fmt: skip
    evals = [out / f"eval-s{k}" for k in range(cfg.seeds)]
    if seeds is not None and not all((e / "evaluation.json").is_file() for e in evals):
        return None
    return run_align(evals, out=out / "alignment.json")


ROW_HEAD = ["ablation", "what", "within-task Spearman", "replay Spearman", "within-task Pearson", "MMRV",
            "pairwise acc.", "A/B @15", "regret (points)", "episode acc.", "pooled Pearson", "train min / model",
            "imagine frames/s"]  # fmt: skip


def _cell(d: dict | None, scale: float = 1.0, digits: int = 2) -> str:
    if not isinstance(d, dict) or not np.isfinite(d["value"]):
        return "n/a"
    sd = d.get("seed_std")
    return f"{d['value'] * scale:.{digits}f}" + (f" +- {sd * scale:.{digits}f}" if sd is not None else "")


def _row(name: str, what: str, al: dict, train_s: list[float]) -> dict:
    fps = [m["timing"].get("frames_per_s") for m in al["members"]]
    fps = [f for f in fps if f]
    cells = [name, what, _cell(al["within_task_spearman"]), _cell(al.get("replay_within_task_spearman")),
             _cell(al["within_task_pearson"]),
             _cell(al["mmrv"], digits=3), _cell(al["pairwise_accuracy"]), _cell(al["ab_pick_rate_15"]),
             _cell(al["checkpoint_regret"], 100, 1), _cell(al["episode_accuracy"]), _cell(al["pearson"]),
             f"{np.mean(train_s) / 60:.1f}" if train_s else "n/a", f"{np.mean(fps):.0f}" if fps else "n/a"]  # fmt: skip
    return {"name": name, "what": what, "cells": cells, "alignment": al}


def ablation_rows(cfg: PipelineConfig) -> list[dict]:
    """The headline and every finished ablation as table rows; also written to OUT/ablations.json."""
    base = Path(cfg.out)
    timings = json.loads((base / "timings.json").read_text())
    base_train = [v for k, v in timings.items() if k.startswith("world model (heldout")]
    codec = f", codec {cfg.latent_channels} ch / width {cfg.codec_width}" if cfg.latent_channels else ""
    rows = [_row("headline", f"`{cfg.wm_preset}`{codec}, {cfg.wm_steps} steps, open-loop calibration, 1 sample",
                 json.loads((base / "alignment-heldout.json").read_text()), base_train)]  # fmt: skip
    for name, ab in ABLATIONS.items():
        path = base / "ablations" / name / "alignment.json"
        if path.is_file():
            f = base / "ablations" / (ab.models_from or name) / "timings.json"  # kept with the models' owner
            t = json.loads(f.read_text()) if f.is_file() else {}
            own = ab.train or ab.models_from
            train = [v for k, v in t.items() if k.startswith("world model")] if own else base_train
            rows.append(_row(name, ab.what, json.loads(path.read_text()), train))
    keep = [{k: r[k] for k in ("name", "what", "cells")} | {"alignment": _brief(r["alignment"])} for r in rows]
    atomic_write_text(base / "ablations.json", json.dumps(keep, indent=1, default=float) + "\n")
    return rows


def _brief(al: dict) -> dict:
    keys = ("within_task_spearman", "within_task_pearson", "mmrv", "pairwise_accuracy", "ab_pick_rate_10",
            "ab_pick_rate_15", "ab_pick_rate_20", "checkpoint_regret", "episode_accuracy", "pearson", "mae", "bias",
            "noise_ceiling_spearman", "trust_error_spearman", "replay_within_task_spearman", "n_seeds",
            "ensemble_curve")  # fmt: skip
    return {k: al.get(k) for k in keys} | {"ensemble": {k: (al.get("ensemble") or {}).get(k) for k in keys[:10]}}


def run_ablations(cfg: PipelineConfig, names: list[str], progress: bool = True) -> str:
    """Run (or resume) each named ablation, then return the table of every finished one."""
    for name in names:
        print(f"\n== ablation {name}", flush=True)
        run_ablation(cfg, name, progress)
    return format_rows(ablation_rows(cfg)) + f"\nrows written to {cfg.out}/ablations.json"


def format_rows(rows: list[dict]) -> str:
    from wmeval.align.tables import markdown

    return markdown(ROW_HEAD, [r["cells"] for r in rows])
