"""World models shipped with wmeval as package data, so `wmeval demo` judges with a model trained on more data
than its few minutes allow. Each is written by one command and never trained on the policies it is shipped
to judge:

    demo/    `wmeval bench --preset demo-model` (about an hour on 2 cores), then
             `cp runs/bench-demo-model/packed/* src/wmeval/models/demo/`

A packed model is a world-model checkpoint (config.json + model.safetensors) with its EMA weights stored in
float16 (half the bytes; loaded back as float32) and, in config.json, the content digests of the episodes it
was trained on, so an evaluation on another store calibrates on episodes it never saw (wmeval.eval.calibration).
"""

from __future__ import annotations

from pathlib import Path

from wmeval.checkpoint import load_weights, read_config, save_checkpoint

SHIPPED = Path(__file__).parent
NAMES = ("demo",)


def shipped(name: str) -> Path:
    """The directory of a shipped world model (what `--model` takes), by name, or a packed model's directory."""
    if name in NAMES:
        path, make = SHIPPED / name, f"make it with `wmeval bench --preset {name}-model` and copy OUT/packed/* there"
    elif Path(name).is_dir():
        path, make = Path(name), "pack one with wmeval.models.pack"
    else:
        raise ValueError(f"unknown shipped world model {name!r}: neither one of {', '.join(NAMES)} nor a directory")
    if not (path / "model.safetensors").is_file():
        raise FileNotFoundError(f"{path} holds no packed world model; {make}")
    return path


def pack(model: str | Path, out: str | Path) -> Path:
    """Write a trained world model as package data: float16 weights, and the config with the digests of its
    training episodes (from the training store, which the package does not carry). Atomic, as every checkpoint."""
    from wmeval.data.store import EpisodeStore

    cfg = read_config(model)
    store = EpisodeStore(cfg["data"]["store"])
    cfg["data"]["train_digests"] = sorted(store.meta(k).digest for k in cfg["data"]["train_keys"])
    cfg["packed"] = {"from": str(model), "dtype": "float16"}  # the path as given (a run's, not this machine's)
    weights = {k: v.half() if v.is_floating_point() else v for k, v in load_weights(model).items()}
    out = save_checkpoint(out, cfg, weights)
    for f in out.iterdir():  # package data: readable by all, as a checkout's files are
        f.chmod(0o644)
    return out


__all__ = ["NAMES", "SHIPPED", "pack", "shipped"]
