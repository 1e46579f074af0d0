"""`wmeval demo` and `wmeval bench`: the whole loop in one command.

    1. demos      scripted-expert episodes per task (the behaviour-cloning data)
    2. scripted   optional: a scripted zoo's episodes (failures for the world model to learn from)
    3. policies   a grid of behaviour-cloned pixel policies (checkpoints, data sizes, variants, degradations)
    4. rollouts   every learned policy in reality on the evaluation starts: the truth for the judged ones,
                  on-policy training data for the others
    5. world      the world model, trained with the judged policies' episodes held out (one per seed,
                  sharing the first one's codec)
    6. evaluate   the judged policies in imagination (+ open-loop replay of their recorded episodes)
    7. align      predicted vs true, with intervals; several seeds: members, ensemble and trust
    8. report     one HTML page
    (5-8 again with a world model that saw every policy, when `in_distribution` is set)

Every step is resumable: re-running the same command skips what is done. `demo` is sized for a 2-core CPU
(7 minutes judged by the shipped ensemble, `world_model`; 6-15 minutes training its own); `bench`
reproduces the headline alignment table of docs/RESULTS.md: preset `cpu` on a 2-core CPU in under 2 hours
(about 3 on a slower AVX2-only one), preset `gpu` at full size on one GPU; preset `demo-model` trains the
world models the demo ships (wmeval.pretraining).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path

from wmeval.data.store import atomic_write_text


@dataclass(frozen=True)
class PipelineConfig:
    out: str
    tasks: tuple[str, ...]
    demos: int  # expert episodes per task; the grid trains on the first `max(sizes)` + 5 validation
    sizes: tuple[int, ...]
    variants: tuple[str, ...]
    checkpoints: tuple[int, ...]
    judged: tuple[str, ...]  # glob patterns of the policies judged (and held out of the world model's data)
    episodes: int  # per judged policy, in reality and in imagination
    wm_preset: str
    codec_steps: int
    wm_steps: int
    train_episodes: int | None = None  # per other learned policy in reality (world-model data); None: `episodes`
    seeds: int = 1  # world models trained held out, one per seed (the codec is shared), judged as an ensemble
    val_fraction: float = 0.1  # world-model validation episodes: never trained on, they calibrate the success rule
    wm_batch: int = 16
    latent_channels: int | None = None  # the codec's latent channels and base width (None: the preset's)
    codec_width: int | None = None
    bc_batch: int = 64
    scripted_zoo: str | None = None
    scripted_episodes: int = 0
    seed: int = 1000  # first evaluation start
    in_distribution: bool = False
    workers: int = 0  # 0: all cores
    device: str = "auto"
    eval_batch: int = 64
    calibration_samples: int | None = None  # per calibration episode (EvalConfig; None: its default)
    videos: int = 6
    suite: str = "metaworld"  # the reality (see `wmeval.reality`): its expert and scripted zoo give the data
    # judge with this shipped world model (wmeval.models) instead of training one on the run's data (the run's
    # episodes of the policies not judged then calibrate its success rule)
    world_model: str | None = None
    # real episodes per learned policy not judged, from start seed + READOUT_SEEDS, that no world model trains on:
    # a held-out run's world models validate on them, so the success rule and rate map are calibrated on them
    # too (wmeval.eval.calibration, wmeval.eval.rates); a world model to ship (wmeval.pretraining) collects them
    # after training and each member reads them as its calibration readouts (wmeval.models.write_readouts) with
    # `readout_samples` imagined samples each; 0: none
    readout_episodes: int = 0
    readout_samples: int = 2

    def to_json(self) -> dict:
        return json.loads(json.dumps(asdict(self)))

    def same_run(self, saved: dict) -> bool:
        """Whether `saved` (a run's pipeline.json) holds these settings; a setting added after the run was
        written reads as its default."""
        defaults = {f.name: f.default for f in fields(self) if f.default is not MISSING}
        return json.loads(json.dumps({**defaults, **saved})) == self.to_json()


PRESETS = {
    # A 2-core CPU in under 10 minutes: two tasks, two variants of one data size, 16 learned policies, all judged
    # by the shipped world models (`demo-model` below; three seeds, an ensemble), each calibrated on the readouts
    # it ships with; with world_model=None (`wmeval demo --train-world-model`) one tiny world model briefly
    # trained here on the `cnn-noproprio` policies' episodes judges the others, less well.
    "demo": dict(
        tasks=("door-open", "drawer-open"), demos=25, sizes=(20,), variants=("cnn-proprio", "cnn-noproprio"),
        checkpoints=(50, 150, 400), judged=("bc-*",), episodes=20, wm_preset="tiny",
        codec_steps=600, wm_steps=2400, bc_batch=32, val_fraction=0.2, world_model="demo", seeds=3,
        calibration_samples=1,  # three members' calibrations within the 10 minutes (docs/RESULTS.md)
    ),
    # The world model `wmeval demo` ships (wmeval.models; wmeval.pretraining): the demo's two tasks, trained on
    # experts, the scripted zoo's failures and the rollouts of behaviour-cloned policies other than the demo's
    # judged ones (10 and 40 demonstrations; the demo judges those trained on 20), from the starts the demo
    # judges on (held out by policy, as the bench is); the cpu preset's 8-channel codec; three seeds sharing it,
    # packed as one ensemble (wmeval.models; 4.9 MB). About 75 minutes on 2 cores.
    "demo-model": dict(
        tasks=("door-open", "drawer-open"), demos=50, sizes=(10, 40), variants=("cnn-proprio", "cnn-noproprio"),
        checkpoints=(50, 150, 400), judged=(), episodes=20, wm_preset="tiny", codec_steps=1500, wm_steps=15000,
        bc_batch=32, latent_channels=8, codec_width=32, scripted_zoo="default", scripted_episodes=10, seeds=3,
        readout_episodes=10,  # 280 more episodes the members read as their calibration (docs/RESULTS.md)
    ),
    # The held-out headline on a fast 2-core CPU in under 2 hours: 3 tasks whose learned policies span >= 70 points
    # of true success (probed: drawer-open 0-100%, button-press-topdown 10-100%, window-open 15-85%), two
    # variants x three checkpoints x two data sizes + two degraded copies per task; the 24 policies trained on
    # 40 demonstrations (and their degraded copies) are judged (50 starts each) and never in the world models'
    # data; the 18 trained on 10 give on-policy data (30 episodes each) beside the scripted zoo's failures;
    # three `tiny` world models (seeds 0-2, one shared codec) judge as an ensemble. The codec is 4x the `tiny`
    # preset's (8 latent channels, widths 32/64/128): measured, the `tiny` codec alone caps within-task ranking
    # at Spearman 0.62 (benchmarks/codec_in_loop.py), this one at 0.90.
    "cpu": dict(
        tasks=("drawer-open", "button-press-topdown", "window-open"), demos=50, sizes=(10, 40),
        variants=("cnn-proprio", "cnn-noproprio"), checkpoints=(100, 300, 1000), judged=("bc-*-n40-*",),
        episodes=50, train_episodes=30, wm_preset="tiny", codec_steps=2000, wm_steps=20000, seeds=3, val_fraction=0.15,
        latent_channels=8, codec_width=32, scripted_zoo="default", scripted_episodes=10,
        readout_episodes=10,  # 180 calibration episodes of the 18 policies not judged (docs/RESULTS.md)
    ),
    # The humanoid headline on a 2-core CPU in about 1.5 hours: the cpu preset's recipe on the humanoid suite's
    # three tasks (head camera, 16 joint-space action dims); 24 judged learned policies (30 starts each), the
    # 18 others and the humanoid scripted zoo give the world models' data.
    "humanoid": dict(
        suite="humanoid", tasks=("button-press", "box-push", "box-lift"), demos=50, sizes=(10, 40),
        variants=("cnn-proprio", "cnn-noproprio"), checkpoints=(100, 300, 1000), judged=("bc-*-n40-*",),
        episodes=30, train_episodes=20, wm_preset="tiny", codec_steps=2000, wm_steps=20000, seeds=3,
        val_fraction=0.15, latent_channels=8, codec_width=32, scripted_zoo="humanoid", scripted_episodes=10,
    ),
    # One GPU: the cpu preset's tasks (push was dropped there: its learned policies all sit at 0-10%) with a
    # larger zoo (a ViT variant, 3 checkpoints per run, 33 judged policies), the default scripted zoo for
    # failures, a `small` world model, and the in-distribution case.
    "gpu": dict(
        tasks=("drawer-open", "button-press-topdown", "window-open"), demos=60, sizes=(10, 40),
        variants=("cnn-proprio", "cnn-noproprio", "vit-proprio"), checkpoints=(100, 500, 1500),
        judged=("bc-*-n40-*",), episodes=50, wm_preset="small", codec_steps=4000, wm_steps=20000, wm_batch=64,
        scripted_zoo="default", scripted_episodes=20, in_distribution=True, eval_batch=256, seeds=3,
    ),
}  # fmt: skip


def make_config(name: str, out: str, **overrides) -> PipelineConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown pipeline preset {name!r}; valid: {', '.join(PRESETS)}")
    return PipelineConfig(out=out, **{**PRESETS[name], **{k: v for k, v in overrides.items() if v is not None}})


class Timer:
    """Wall time per stage, written to OUT/timings.json after each stage. Resumable stages add up over the
    runs that resumed them (a finished stage adds next to nothing); stages that redo their work every run
    (`accumulate=False`: align, report) keep their last time. Processes that share the file (one seed each)
    each add their own stages."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.stages: dict[str, float] = json.loads(path.read_text()) if path.is_file() else {}

    def run(self, name: str, fn, *args, accumulate: bool = True, **kwargs):
        print(f"== {name}", flush=True)
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:  # an interrupted stage still counts what it did
            if self.path.is_file():  # stages another process (another seed) finished meanwhile are kept
                self.stages = {**self.stages, **json.loads(self.path.read_text())}
            before = self.stages.get(name, 0.0) if accumulate else 0.0
            self.stages[name] = round(before + time.perf_counter() - t0, 1)
            self.stages["total"] = round(sum(v for k, v in self.stages.items() if k != "total"), 1)
            atomic_write_text(self.path, json.dumps(self.stages, indent=2) + "\n")


def validate_seeds(cfg: PipelineConfig) -> tuple[int, int] | None:
    """The start seeds (first, last) of a held-out run's calibration episodes (`readout_episodes`), which its
    world models only validate on; None when it has none."""
    if not (cfg.readout_episodes and cfg.judged):
        return None
    first = cfg.seed + READOUT_SEEDS
    return first, first + cfg.readout_episodes - 1


def world_model_config(cfg: PipelineConfig, out: Path, seed: int, exclude: tuple[str, ...], codec_from: Path | None,
                       **overrides):  # fmt: skip
    """The world-model training run of one seed; `overrides` are WMTrainConfig fields (ablations)."""
    from wmeval.train.world_model import WMTrainConfig

    steps = overrides.get("steps", cfg.wm_steps)
    if seeds := validate_seeds(cfg):
        overrides = {"validate_seeds": seeds, **overrides}
    return WMTrainConfig(**{
        "store": str(Path(cfg.out) / "store"), "out": str(out), "preset": cfg.wm_preset, "tasks": cfg.tasks,
        "exclude_policies": tuple(exclude), "codec_steps": cfg.codec_steps, "steps": cfg.wm_steps,
        "batch_size": cfg.wm_batch, "latent_channels": cfg.latent_channels, "codec_width": cfg.codec_width,
        "device": cfg.device, "seed": seed, "val_fraction": cfg.val_fraction,
        "codec_from": str(codec_from) if codec_from else None, "eval_every": max(50, steps // 10),
        "save_every": max(100, steps // 5), **overrides,
    })  # fmt: skip


def eval_config(cfg: PipelineConfig, model: Path, out: Path, zoo: Path, judged: list[str], videos: int, **overrides):
    """The evaluation of the judged policies by one world model; `overrides` are EvalConfig fields."""
    from wmeval.eval.evaluate import EvalConfig

    return EvalConfig(**{
        "model": str(model), "zoo": str(zoo), "out": str(out), "store": str(Path(cfg.out) / "store"),
        "policies": tuple(judged), "episodes": cfg.episodes, "seed": cfg.seed, "batch_size": cfg.eval_batch,
        "videos": videos, "device": cfg.device, "calibration_samples": cfg.calibration_samples, **overrides,
    })  # fmt: skip


def seed_name(case: str, k: int) -> str:
    """How a bench run names seed k's world model and evaluation (`wm-NAME`, `eval-NAME`)."""
    return case if k == 0 else f"{case}-s{k}"


def shipped_members(cfg: PipelineConfig) -> list[Path]:
    """The members of the shipped world model a run judges with, one per seed of the run."""
    from wmeval.models import members, shipped

    ensemble = members(shipped(cfg.world_model))
    if cfg.seeds > len(ensemble):
        raise ValueError(f"the shipped world model {cfg.world_model!r} holds {len(ensemble)} seed(s), not the "
                         f"{cfg.seeds} this run judges with: judge with {len(ensemble)} seeds or fewer")  # fmt: skip
    return ensemble[: cfg.seeds]


def headline_seed(cfg: PipelineConfig, k: int, case: str, exclude: tuple[str, ...], zoo_path: Path,
                  judged: list[str], timer: Timer, progress: bool = True) -> Path:
    """Train (or resume) the world model of seed `k` of one case ("heldout": `exclude` = the judged patterns;
    "indist": none), and evaluate the judged policies with it; returns the evaluation's directory. Seed 0
    trains the codec the other seeds share, so they start once it is finished."""
    from wmeval.eval.evaluate import evaluate
    from wmeval.train.world_model import train_world_model

    out = Path(cfg.out)
    name = seed_name(case, k)
    if cfg.world_model:
        model = shipped_members(cfg)[k]
    else:
        wm = world_model_config(cfg, out / f"wm-{name}", k, exclude, out / f"wm-{case}" if k else None)
        model = timer.run(f"world model ({name})", train_world_model, wm, progress)
    ev = out / f"eval-{name}"
    timer.run(f"evaluate ({name})", evaluate, eval_config(cfg, model, ev, zoo_path, judged,
                                                          videos=cfg.videos if k == 0 else 0), progress)  # fmt: skip
    return ev


def run_headline_seeds(cfg: PipelineConfig, seeds: tuple[int, ...], progress: bool = True) -> dict | None:
    """Train and evaluate only these seeds of a bench run's held-out world models, on its finished data stages
    (one process per seed, side by side: `scripts/run_point.py RUN headline --seeds K`). Aligns when every
    seed's evaluation is finished (else returns None); `run_pipeline` then finds them all done."""
    from wmeval.align.align import run_align
    from wmeval.zoo import load_zoo, matches_any

    out = Path(cfg.out)
    zoo_path = out / "policies" / "zoo.toml"
    if not zoo_path.is_file():
        raise ValueError(f"{out} has no finished data stages; run `wmeval bench --out {out}` first")
    judged = [p.name for p in load_zoo(zoo_path).policies if matches_any(p.name, cfg.judged)]
    timer = Timer(out / "timings.json")
    for k in seeds:
        headline_seed(cfg, k, "heldout", cfg.judged, zoo_path, judged, timer, progress)
    evals = [out / f"eval-{seed_name('heldout', k)}" for k in range(cfg.seeds)]
    if not all((e / "evaluation.json").is_file() for e in evals):
        return None
    return timer.run("align (heldout)", run_align, evals, out=out / "alignment-heldout.json", accumulate=False)


def collect_data(cfg: PipelineConfig, timer: Timer, progress: bool = True) -> tuple[Path, list[str]]:
    """Stages 1-4: demonstrations, the scripted zoo, the behaviour-cloned grid and every learned policy's
    rollouts in reality; returns the grid's zoo file and the judged policies (those `cfg.judged` selects)."""
    from wmeval.collect import collect
    from wmeval.policies.grid import GridConfig, train_grid
    from wmeval.reality import default_zoo
    from wmeval.reality import make_config as reality_config
    from wmeval.zoo import load_zoo, matches_any

    store = str(Path(cfg.out) / "store")
    workers = cfg.workers or os.cpu_count() or 1
    reality = reality_config(cfg.suite)
    expert = load_zoo(default_zoo(cfg.suite)).select(["expert"])
    timer.run("demos", collect, store, expert, cfg.tasks, cfg.demos, reality, seed=0, workers=workers,
              progress=progress, command="wmeval demo/bench: demonstrations")  # fmt: skip
    if cfg.scripted_zoo and cfg.scripted_episodes:
        timer.run("scripted", collect, store, load_zoo(cfg.scripted_zoo), cfg.tasks, cfg.scripted_episodes, reality,
                  seed=0, workers=workers, progress=progress, command="wmeval demo/bench: scripted zoo")  # fmt: skip
    grid = GridConfig(store=store, out=str(Path(cfg.out) / "policies"), tasks=cfg.tasks, sizes=cfg.sizes,
                      variants=cfg.variants, checkpoints=cfg.checkpoints, batch_size=cfg.bc_batch,
                      device=cfg.device)  # fmt: skip
    zoo_path = timer.run("policies", train_grid, grid, progress)
    zoo = load_zoo(zoo_path)
    judged = [p.name for p in zoo.policies if matches_any(p.name, cfg.judged)]
    others = [p.name for p in zoo.policies if p.name not in judged]
    if judged:
        timer.run("rollouts", collect, store, zoo.select(judged), cfg.tasks, cfg.episodes, reality, seed=cfg.seed,
                  workers=workers, progress=progress, command="wmeval demo/bench: judged learned policies")  # fmt: skip
    if others:
        timer.run("rollouts (others)", collect, store, zoo.select(others), cfg.tasks,
                  cfg.train_episodes or cfg.episodes, reality, seed=cfg.seed, workers=workers, progress=progress,
                  command="wmeval demo/bench: other learned policies")  # fmt: skip
    if others and judged and cfg.readout_episodes:
        timer.run("rollouts (calibration)", collect, store, zoo.select(others), cfg.tasks, cfg.readout_episodes,
                  reality, seed=cfg.seed + READOUT_SEEDS, workers=workers, progress=progress,
                  command="wmeval bench: calibration episodes of the other learned policies")  # fmt: skip
    return zoo_path, judged


def start_run(cfg: PipelineConfig) -> Timer:
    """Create (or check, when resuming) the run directory; its stage timer."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    saved = out / "pipeline.json"
    if saved.is_file() and not cfg.same_run(json.loads(saved.read_text())):
        raise ValueError(f"{out} holds a run with other settings; use a new --out or delete {out}")
    atomic_write_text(saved, json.dumps(cfg.to_json(), indent=2) + "\n")
    return Timer(out / "timings.json")


def run_pipeline(cfg: PipelineConfig, progress: bool = True) -> dict:
    from wmeval.align.align import run_align
    from wmeval.align.report import write_report
    from wmeval.zoo import load_zoo

    if not cfg.judged:
        raise ValueError("a pipeline with no judged policies trains a world model to ship: "
                         "wmeval.pretraining.run_pretraining")
    if cfg.world_model:
        shipped_members(cfg)  # refused before the data stages, not after
    out = Path(cfg.out)
    timer = start_run(cfg)
    zoo_path, judged = collect_data(cfg, timer, progress)
    if not judged or (len(judged) == len(load_zoo(zoo_path).policies) and not cfg.world_model):
        raise ValueError(f"the judged patterns {list(cfg.judged)} must select some but not all of {zoo_path}")

    results = {}
    cases = [("heldout", cfg.judged, cfg.seeds)] + ([("indist", (), 1)] if cfg.in_distribution else [])
    for case, exclude, seeds in cases:
        evals = [headline_seed(cfg, k, case, exclude, zoo_path, judged, timer, progress) for k in range(seeds)]
        align_path = out / f"alignment-{case}.json"
        results[case] = timer.run(f"align ({case})", run_align, evals, out=align_path, accumulate=False)
        timer.run(f"report ({case})", write_report, align_path, out / f"report-{case}.html", evals[0],
                  accumulate=False)  # fmt: skip
    return {"results": results, "timings": timer.stages, "out": str(out)}


READOUT_SEEDS = 2000  # readout episodes start at seed + this, past every start the data stages use


__all__ = ["PRESETS", "PipelineConfig", "Timer", "collect_data", "eval_config", "headline_seed", "make_config",
           "run_headline_seeds", "run_pipeline", "validate_seeds", "world_model_config"]
