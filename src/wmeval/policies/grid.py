"""`wmeval policy grid`: train a grid of behaviour-cloning policies and write the zoo that names them.

The grid spans what the 1X report's experiments judge: checkpoints from early to late training, training
data sizes, and architecture variants (encoder, with/without proprio). Each run is resumable and a
finished run is skipped, so re-running the same command completes an interrupted grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from wmeval.data.store import EpisodeStore, atomic_write_text
from wmeval.policies.train_bc import BCTrainConfig, train_bc
from wmeval.train.common import latest_step_dir

VARIANTS = {
    "cnn-proprio": ("cnn", True),
    "cnn-noproprio": ("cnn", False),
    "vit-proprio": ("vit", True),
    "vit-noproprio": ("vit", False),
}


@dataclass(frozen=True)
class GridConfig:
    store: str
    out: str
    tasks: tuple[str, ...]
    sizes: tuple[int, ...] = (10, 40)
    variants: tuple[str, ...] = ("cnn-proprio", "cnn-noproprio", "vit-proprio")
    checkpoints: tuple[int, ...] = (100, 500, 1500)  # the steps the zoo names; the last is the run length
    # Degraded copies of each task's final checkpoint (largest data size, first variant): learned policies
    # fail in the same ways as scripted ones (noise, latency), which fills in the middle of the range.
    degraded: tuple[tuple[str, str], ...] = (
        ("noise0.5", '{ kind = "noise", std = 0.5 }'),
        ("latency8", '{ kind = "latency", steps = 8 }'),
    )
    val_episodes: int = 5
    batch_size: int = 64
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        bad = [v for v in self.variants if v not in VARIANTS]
        if bad:
            raise ValueError(f"unknown variant(s) {', '.join(bad)}; valid variants: {', '.join(VARIANTS)}")
        if not self.checkpoints or sorted(self.checkpoints) != list(self.checkpoints) or self.checkpoints[0] < 1:
            raise ValueError(f"checkpoints must be increasing positive steps, got {self.checkpoints}")


def run_dir(task: str, variant: str, size: int) -> str:
    return f"{task}/{variant}-n{size}"


def train_grid(cfg: GridConfig, progress: bool = True) -> Path:
    """Train every (task, size, variant) run, then write OUT/zoo.toml; returns its path."""
    out = Path(cfg.out)
    steps = cfg.checkpoints[-1]
    runs = [(t, v, n) for t in cfg.tasks for n in cfg.sizes for v in cfg.variants]
    for i, (task, variant, size) in enumerate(runs):
        encoder, proprio = VARIANTS[variant]
        run = out / run_dir(task, variant, size)
        last = latest_step_dir(run)
        if last is not None and last.name == f"step_{steps:06d}":
            continue
        if progress:
            print(f"[{i + 1}/{len(runs)}] {run}", flush=True)
        train_bc(
            BCTrainConfig(
                store=cfg.store,
                task=task,
                out=str(run),
                episodes=size,
                val_episodes=cfg.val_episodes,
                encoder=encoder,
                use_proprio=proprio,
                steps=steps,
                batch_size=cfg.batch_size,
                save_every=steps,
                save_at=cfg.checkpoints,
                eval_every=_gcd_steps(cfg.checkpoints),
                seed=cfg.seed,
                device=cfg.device,
            ),
            resume=last is not None,
            progress=progress,
        )
    zoo = out / "zoo.toml"
    atomic_write_text(zoo, grid_zoo(cfg, EpisodeStore(cfg.store).layout.suite))
    return zoo


def _gcd_steps(steps: tuple[int, ...]) -> int:
    from math import gcd

    g = 0
    for s in steps:
        g = gcd(g, s)
    return g


def grid_zoo(cfg: GridConfig, suite: str) -> str:
    lines = [
        "# Learned policies written by `wmeval policy grid`: behaviour cloning from pixels, per task,",
        f"# data sizes {list(cfg.sizes)}, variants {list(cfg.variants)}, checkpoints at steps {list(cfg.checkpoints)}.",
        "# Checkpoint paths are relative to this file.",
        "[zoo]",
        f'name = "{Path(cfg.out).name}"',
        f'suite = "{suite}"',
    ]
    for task in cfg.tasks:
        for size in cfg.sizes:
            for variant in cfg.variants:
                for step in cfg.checkpoints:
                    lines += _policy(f"bc-{task}-{variant}-n{size}-s{step}", run_dir(task, variant, size), step)
        best = (max(cfg.sizes), cfg.variants[0], cfg.checkpoints[-1])
        for tag, degrade in cfg.degraded:
            name = f"bc-{task}-{best[1]}-n{best[0]}-s{best[2]}-{tag}"
            lines += _policy(name, run_dir(task, best[1], best[0]), best[2], degrade)
    return "\n".join(lines) + "\n"


def _policy(name: str, run: str, step: int, degrade: str | None = None) -> list[str]:
    lines = ["", "[[policy]]", f'name = "{name}"', 'base = "checkpoint"', f'checkpoint = "{run}/step_{step:06d}"']
    return lines + ([f"degrade = [{degrade}]"] if degrade else [])
