"""World models shipped with wmeval as package data, so `wmeval demo` judges with models trained on more data
than its few minutes allow. Each is written by one command and never trained on the policies it is shipped
to judge:

    demo/    `wmeval bench --preset demo-model` (about 90 minutes on 2 cores), then
             `rm -r src/wmeval/models/demo && cp -r runs/bench-demo-model/packed src/wmeval/models/demo`

A packed model is an ensemble: the world models of several seeds of one recipe, trained on the same episodes
with one codec (`wmeval bench` trains its seeds so). Its weights are stored in float16 (half the bytes; loaded
back as float32), what the members share once:

    NAME/shared.safetensors    the weights every member holds alike (the codec, the normalisation)
    NAME/shared.json           the members' training split: the content digests of their training episodes
                               (the first 16 hex digits: 64 bits) and how many of each policy, so an
                               evaluation on another store tells the episodes they never saw
    NAME/seed-K/               member K, a world-model checkpoint (config.json + model.safetensors) holding
                               only its own weights (the dynamics); `load_world_model` reads it whole
    NAME/seed-K/readouts.*     optional: member K's calibration readouts (`write_readouts`): episodes of its
                               training policies it never saw, imagined closed loop (and replayed open loop)
                               by it, each kept as the value statistics the success rules read and its real
                               outcome, so an evaluation fits its rule without episodes of its own
                               (wmeval.eval.calibration, `--calibration shipped`)
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from wmeval.checkpoint import CheckpointError, atomic_directory, load_weights, read_config, save_checkpoint

SHIPPED = Path(__file__).parent
NAMES = ("demo",)
SHARED_WEIGHTS, SHARED_DATA = "shared.safetensors", "shared.json"
READOUTS = "readouts"  # READOUTS.json + READOUTS.safetensors in a member's directory
DIGEST_CHARS = 16  # of an episode's content digest kept in shared.json: 64 bits, no collision among a store's
OWN = "dynamics."  # the weights a member has of its own; every other weight is the codec's or the normalisation's


def shipped(name: str) -> Path:
    """The directory of a shipped world model, by name, or a packed model's directory."""
    if name in NAMES:
        path, make = SHIPPED / name, f"make it with `wmeval bench --preset {name}-model` and copy OUT/packed there"
    elif Path(name).is_dir():
        path, make = Path(name), "pack one with wmeval.models.pack"
    else:
        raise ValueError(f"unknown shipped world model {name!r}: neither one of {', '.join(NAMES)} nor a directory")
    if not members(path):
        raise FileNotFoundError(f"{path} holds no packed world model; {make}")
    return path


def members(path: str | Path) -> list[Path]:
    """The checkpoints of a packed model, in seed order: its `seed-K` directories, or the directory itself when
    it is one world-model checkpoint (a model packed before ensembles, or any trained model)."""
    path = Path(path)
    if (path / "model.safetensors").is_file():
        return [path]
    found = [p for p in path.glob("seed-*") if (p / "config.json").is_file()]
    return sorted(found, key=lambda p: (len(p.name), p.name))  # seed-2 before seed-10


def read_shared(path: str | Path, cfg: dict) -> tuple[dict, dict[str, torch.Tensor]]:
    """A packed member's config completed with its ensemble's training split, and the ensemble's shared weights
    ({} for a checkpoint that holds all of its own)."""
    shared = (cfg.get("packed") or {}).get("shared")
    if not shared:
        return cfg, {}
    root = Path(path) / shared
    try:
        data = json.loads((root / SHARED_DATA).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{root / SHARED_DATA}, which the member {path} needs, is missing or damaged ({e}); "
                              "copy the packed model's whole directory") from None  # fmt: skip
    return {**cfg, "data": {**(cfg.get("data") or {}), **data}}, load_weights(root, SHARED_WEIGHTS)


def pack(models: str | Path | list, out: str | Path, readouts: list | None = None) -> Path:
    """Write trained world models (seeds of one recipe: one codec, one training split) as one packed ensemble
    (the module docstring's layout): float16 weights, the shared ones once, and the digests of the training
    episodes (from the training store, which the package does not carry); `readouts`: per member a directory
    holding its calibration readouts (`write_readouts`). Atomic, as every checkpoint."""
    from wmeval.data.store import EpisodeStore

    models = [Path(m) for m in ([models] if isinstance(models, (str, Path)) else models)]
    cfgs = [read_config(m) for m in models]
    weights = [{k: v.half() if v.is_floating_point() else v for k, v in load_weights(m).items()} for m in models]
    split = {k: cfgs[0]["data"][k] for k in ("train_keys", "val_keys")}
    for m, cfg, w in zip(models[1:], cfgs[1:], weights[1:], strict=True):
        if any(cfg["data"][k] != v for k, v in split.items()):
            raise ValueError(f"{m} was trained on other episodes than {models[0]}: pack seeds of one run")
        if w.keys() != weights[0].keys() or any(not torch.equal(w[k], v) for k, v in weights[0].items()
                                                  if not k.startswith(OWN)):  # fmt: skip
            raise ValueError(f"{m} has another codec than {models[0]}: pack seeds that share one (codec_from)")
    store = EpisodeStore(cfgs[0]["data"]["store"])
    data = {"train_policies": dict(sorted(Counter(store.meta(k).policy for k in split["train_keys"]).items())),
            "train_digests": sorted(store.meta(k).digest[:DIGEST_CHARS] for k in split["train_keys"])}  # fmt: skip
    with atomic_directory(out) as tmp:
        save_file({k: v.contiguous() for k, v in weights[0].items() if not k.startswith(OWN)}, tmp / SHARED_WEIGHTS)
        (tmp / SHARED_DATA).write_text(json.dumps(data) + "\n")
        for k, (m, cfg, w) in enumerate(zip(models, cfgs, weights, strict=True)):
            cfg = {key: v for key, v in cfg.items() if key != "optimizer"}
            cfg["data"] = {key: v for key, v in cfg["data"].items() if key not in (*data, "train_keys")}
            cfg["packed"] = {"from": str(m), "dtype": "float16", "shared": ".."}  # the path as given
            save_checkpoint(tmp / f"seed-{k}", cfg, {key: v for key, v in w.items() if key.startswith(OWN)})
            if readouts:
                write_readouts(tmp / f"seed-{k}", read_readouts(readouts[k]))
        for f in tmp.rglob("*"):  # package data: readable by all, as a checkout's files are
            f.chmod(0o755 if f.is_dir() else 0o644)
    return Path(out)


LABELS = ("task", "outcome", "sample")  # per row of readouts, beside its statistics
POLICY = "policy"  # an optional label (readouts since the rate map, wmeval.eval.rates): index into "policies"


def write_readouts(path: str | Path, readouts: dict) -> None:
    """Calibration readouts beside a member's weights: `readouts` holds "parts" (the rules whose statistics
    they are, wmeval.eval.success.statistics), "frames" (the episodes' length), "tasks", "how", and per kind
    ("imagined", "replay") its rows: "z" float[N, len(parts)], "task" (index into tasks), "outcome", "sample"
    and, with "policies" (their names), "policy" (index into policies). The statistics are kept in float16 and
    the labels as bytes where they fit (a few kB per member, within the package's size); each file is written
    whole or not at all."""
    from wmeval.data.store import atomic_write_text

    path = Path(path)
    tensors = {}
    for kind in ("imagined", "replay"):
        rows = readouts[kind]
        tensors[kind] = torch.as_tensor(np.asarray(rows["z"], np.float32)).half().contiguous()
        for k in LABELS + ((POLICY,) if "policies" in readouts else ()):
            labels = np.asarray(rows[k], np.int64)
            if labels.size and not 0 <= labels.min() <= labels.max() < 2**31:
                raise ValueError(f"readouts: {kind} {k} outside 0..2**31-1")
            small = not labels.size or labels.max() < 256
            tensors[f"{kind}.{k}"] = torch.as_tensor(labels.astype(np.uint8 if small else np.int32))
    tmp = path / f".{READOUTS}.safetensors.tmp"
    save_file(tensors, tmp)
    os.replace(tmp, path / f"{READOUTS}.safetensors")
    meta = {k: readouts[k] for k in ("parts", "frames", "tasks", "policies", "how") if k in readouts}
    atomic_write_text(path / f"{READOUTS}.json", json.dumps(meta, separators=(",", ":")) + "\n")


def read_readouts(path: str | Path) -> dict | None:
    """A member's calibration readouts (`write_readouts`; "z" as float32, labels as lists), or None when it has
    none."""
    path = Path(path)
    if not (path / f"{READOUTS}.json").is_file():
        return None
    try:
        meta = json.loads((path / f"{READOUTS}.json").read_text())
        t = load_weights(path, f"{READOUTS}.safetensors")
        for kind in ("imagined", "replay"):
            labels = LABELS + ((POLICY,) if "policies" in meta else ())
            meta[kind] = {"z": t[kind].float().numpy(), **{k: t[f"{kind}.{k}"].tolist() for k in labels}}
            if not all(len(meta[kind][k]) == len(meta[kind]["z"]) for k in labels):
                raise ValueError(f"{kind}: {len(meta[kind]['z'])} rows of statistics, other counts of labels")
            for k, names in (("task", "tasks"), (POLICY, "policies")):
                if k in labels and max(meta[kind][k], default=0) >= len(meta[names]):
                    raise ValueError(f"{kind}: a {k} index past the {len(meta[names])} {names}")
    except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError, CheckpointError) as e:
        raise CheckpointError(f"{path}: its calibration readouts ({READOUTS}.json/.safetensors) are damaged ({e}); "
                              "copy the packed model's whole directory again") from None  # fmt: skip
    return meta


__all__ = ["NAMES", "SHIPPED", "members", "pack", "read_readouts", "read_shared", "shipped", "write_readouts"]
