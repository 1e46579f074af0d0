"""Checkpoints: a directory with safetensors weights and a JSON config, written atomically; no pickle.

<dir>/config.json          everything needed to rebuild and trust the model: kind, model config,
                           layout, normalisation stats, training config, data fingerprint, versions
<dir>/model.safetensors    weights
<dir>/optim.safetensors    optimiser state (optional; for exact resume)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from wmeval.data.safetensors_io import os_errors


class CheckpointError(ValueError):
    """A checkpoint is missing, damaged or does not fit what it is asked to do."""


def git_sha() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Flatten an optimiser's state dict into named tensors + a JSON-able remainder."""
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for pid, state in sd["state"].items():
        for name, value in state.items():
            if torch.is_tensor(value):
                tensors[f"{pid}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{pid}.{name}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def load_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], extra: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    for key, value in extra["scalars"].items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    opt.load_state_dict({"state": state, "param_groups": extra["param_groups"]})


@contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """A temporary sibling of `path` to fill; when the block ends it replaces `path` whole (its files synced
    first), so a reader sees all of it or none; when the block raises it is removed and `path` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        yield tmp
        for f in tmp.rglob("*"):
            if f.is_file():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
        os.chmod(tmp, 0o755)
        if path.exists():  # replacing an older save
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        with os_errors(path):  # a full disk: an OSError naming the checkpoint
            raise


def save_checkpoint(
    path: str | Path,
    config: dict[str, Any],
    model: torch.nn.Module | dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer | None = None,
    extra: dict[str, dict[str, torch.Tensor]] | None = None,
) -> Path:
    """Write the checkpoint (weights, optimiser, `extra` safetensors files by name) atomically
    (`atomic_directory`): a reader sees the whole checkpoint or none of it."""
    with atomic_directory(path) as tmp:
        state = model if isinstance(model, dict) else model.state_dict()
        save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, tmp / "model.safetensors")
        for name, tensors in (extra or {}).items():
            save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, tmp / name)
        if optimizer is not None:
            tensors, extra = optimizer_tensors(optimizer)
            save_file(tensors, tmp / "optim.safetensors")
            config = {**config, "optimizer": extra}
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return Path(path)


def read_config(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    cfg = path / "config.json"
    if not cfg.is_file():
        raise CheckpointError(f"{path} is not a checkpoint (no config.json)")
    try:
        return json.loads(cfg.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{cfg} is damaged: {e}") from None


def load_module(path: str | Path, kind: str, build, command: str, device: str | torch.device = "cpu"):
    """A small trained module of checkpoint kind `kind` (a judge, a proprio net): `build(config)` makes it from
    its config.json, the weights are loaded into it; returns (module in eval mode on `device`, config).
    `command` trains one (named in the errors)."""
    cfg = read_config(path)
    if cfg.get("kind") != kind:
        raise CheckpointError(f"{path} holds a {cfg.get('kind')!r} checkpoint, not a {kind!r} (`{command}`)")
    try:
        module = build(cfg)
        module.load_state_dict(load_weights(path))
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{Path(path) / 'config.json'} is damaged or from another version ({e}); "
                              f"train it again (`{command}`)") from None  # fmt: skip
    return module.to(device).eval(), cfg


def load_weights(path: str | Path, name: str = "model.safetensors") -> dict[str, torch.Tensor]:
    f = Path(path) / name
    if not f.is_file():
        raise CheckpointError(f"{path}: missing {name}")
    try:
        return load_file(f)
    except Exception as e:  # safetensors raises its own error types on truncated files
        raise CheckpointError(f"{f} is damaged ({e}); use another checkpoint") from None
