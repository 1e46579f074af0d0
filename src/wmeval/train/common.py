"""Shared training utilities: run directories, logging (JSONL + TensorBoard), EMA, distributed set-up."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch


def latest_step_dir(out: Path) -> Path | None:
    """The newest complete checkpoint `out/step_XXXXXX/` (complete: it has its config.json)."""
    steps = sorted(Path(out).glob("step_*/config.json"))
    return steps[-1].parent if steps else None


def link_latest(link: Path, steps_dir: Path) -> Path:
    """Point `link` (a run's `model`) at the newest complete checkpoint in `steps_dir`, relative to the link's
    folder so the run directory can move; returns the link."""
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(latest_step_dir(steps_dir).relative_to(link.parent))
    return link


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class Logger:
    """Scalars to `<dir>/log.jsonl` and, where the tensorboard package is installed, TensorBoard."""

    def __init__(self, run_dir: Path, prefix: str, enabled: bool = True) -> None:
        self.enabled, self.prefix = enabled, prefix
        self.path = Path(run_dir) / "log.jsonl"
        self.tb = None
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(Path(run_dir) / "tb"))
            except ImportError:
                self.tb = None

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps({"step": step, **values}) + "\n")
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(f"{self.prefix}/{k}", v, step)

    def image(self, step: int, tag: str, image_HWC: torch.Tensor) -> None:
        """A uint8 image (e.g. a strip of real over imagined frames) to TensorBoard."""
        if self.enabled and self.tb is not None:
            self.tb.add_image(f"{self.prefix}/{tag}", image_HWC, step, dataformats="HWC")

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


class EMA:
    """Exponential moving average of a module's parameters (and a copy of its buffers)."""

    def __init__(self, module: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in module.state_dict().items()}

    @contextmanager
    def applied(self, module: torch.nn.Module) -> Iterator[torch.nn.Module]:
        """Temporarily load the EMA weights into `module` (for evaluation), then restore the raw ones."""
        raw = {k: v.clone() for k, v in module.state_dict().items()}
        module.load_state_dict(self.shadow)
        try:
            yield module
        finally:
            module.load_state_dict(raw)

    @torch.no_grad()
    def update(self, module: torch.nn.Module) -> None:
        for k, v in module.state_dict().items():
            if v.dtype.is_floating_point:
                self.shadow[k].lerp_(v.detach(), 1 - self.decay)
            else:
                self.shadow[k].copy_(v)


def dist_info() -> tuple[int, int, int]:
    """(rank, local_rank, world_size) from torchrun's environment; (0, 0, 1) otherwise."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
