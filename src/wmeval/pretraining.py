"""World models to ship as package data (wmeval.models): `wmeval bench --preset demo-model` trains them on the
data stages of wmeval.pipeline, packs them as one ensemble, and gives each member the calibration readouts
it ships with."""

from __future__ import annotations

import json
import os
from pathlib import Path

from wmeval.collect import collect
from wmeval.data.store import EpisodeStore
from wmeval.eval.calibration import readouts
from wmeval.model.world_model import load_world_model
from wmeval.models import READOUTS, members, pack, write_readouts
from wmeval.pipeline import READOUT_SEEDS, PipelineConfig, collect_data, eval_config, start_run, world_model_config
from wmeval.reality import make_config as reality_config
from wmeval.train.common import resolve_device
from wmeval.train.world_model import train_world_model
from wmeval.zoo import load_zoo


def member_readouts(cfg: PipelineConfig, member: Path, zoo_path: Path, out: Path, progress: bool = True) -> Path:
    """One packed member's calibration readouts on its training store (wmeval.eval.calibration.readouts),
    written to `out` (readouts.json + .safetensors) for `pack` to ship beside its weights."""
    device = resolve_device(cfg.device)
    model, meta = load_world_model(member, device)
    store = EpisodeStore(Path(cfg.out) / "store")
    ev = eval_config(cfg, member, out, zoo_path, [], 0, calibration="closed-loop", calibration_episodes=100_000,
                     calibration_samples=cfg.readout_samples)  # fmt: skip
    r = readouts(model, meta, store, store.index(), tuple(cfg.tasks), ev, progress)
    out.mkdir(parents=True, exist_ok=True)
    write_readouts(out, r)
    return out


def run_pretraining(cfg: PipelineConfig, progress: bool = True) -> dict:
    """World models to ship (a preset with no judged policies, e.g. `demo-model`): the data stages, then one world
    model per seed trained on every episode (its validation split aside; seed 0 trains the codec the others
    share), packed as one ensemble for package data (`wmeval.models.pack`) in OUT/packed; with
    `readout_episodes`, new episodes of every learned policy, which each member reads as the calibration
    readouts it ships with (`member_readouts`)."""
    if cfg.judged:
        raise ValueError(f"preset judges {list(cfg.judged)}: a world model to ship is trained on every policy")
    out = Path(cfg.out)
    timer = start_run(cfg)
    collect_data(cfg, timer, progress)
    models = []
    for k in range(cfg.seeds):
        name = "wm" if k == 0 else f"wm-s{k}"
        wm = world_model_config(cfg, out / name, k, (), out / "wm" if k else None)
        models.append(timer.run(f"world model ({name})" if k else "world model", train_world_model, wm, progress))
    packed = timer.run("pack", pack, models, out / "packed", accumulate=False)
    if cfg.readout_episodes:
        zoo_path = out / "policies" / "zoo.toml"
        zoo = load_zoo(zoo_path)
        learned = zoo.select([p.name for p in zoo.policies if p.base == "checkpoint"])
        timer.run("readout rollouts", collect, str(out / "store"), learned,
                  cfg.tasks, cfg.readout_episodes, reality_config(cfg.suite), seed=cfg.seed + READOUT_SEEDS,
                  workers=cfg.workers or os.cpu_count() or 1, progress=progress,
                  command="wmeval bench: readout episodes of the learned policies")  # fmt: skip
        dirs = []
        for k, member in enumerate(members(packed)):  # read by the members as shipped (float16)
            dirs.append(out / "readouts" / f"seed-{k}")
            done = dirs[-1] / f"{READOUTS}.json"  # and made by this version: naming the policies of its rows
            if not (done.is_file() and "policies" in json.loads(done.read_text())):
                timer.run(f"readouts (seed-{k})", member_readouts, cfg, member, zoo_path, dirs[-1], progress)
        packed = timer.run("pack (with readouts)", pack, models, out / "packed", dirs, accumulate=False)
    return {"models": [str(m) for m in models], "packed": str(packed), "timings": timer.stages, "out": str(out)}


__all__ = ["member_readouts", "run_pretraining"]
