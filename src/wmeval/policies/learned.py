"""A learned (behaviour-cloned) policy loaded from a checkpoint, usable anywhere a `Policy` is."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wmeval.checkpoint import CheckpointError, load_weights, read_config
from wmeval.policies.bc import BCModelConfig, BCPolicyNet
from wmeval.reality.base import Layout
from wmeval.types import Observation

KIND = "bc-policy"
LAYOUT_KEYS = ("suite", "views", "image_size", "frame_skip", "action_dim", "state_dim")


def layout_mismatch(trained: dict[str, Any], layout: Layout) -> str | None:
    """What differs between a checkpoint's layout and `layout`; a policy runs where the cameras it was trained
    on are among those rendered (a world model may see more views than the policies it judges)."""
    here = layout.to_json()
    diffs = [f"{k}: {trained.get(k)!r} vs {here[k]!r}" for k in LAYOUT_KEYS if trained.get(k) != here[k]
             and not (k == "views" and view_indices(trained.get(k) or [], here[k]) is not None)]  # fmt: skip
    return ", ".join(diffs) or None


def view_indices(trained: list[str] | tuple[str, ...], rendered: list[str] | tuple[str, ...]) -> tuple[int, ...] | None:
    """Where the cameras a policy was trained on sit among the rendered ones, in the policy's order; None when
    one of them is not rendered."""
    if not trained or not set(trained) <= set(rendered):
        return None
    return tuple(list(rendered).index(v) for v in trained)


def check_fits(cfg: dict[str, Any], path: str | Path, task: str, layout: Layout) -> None:
    diff = layout_mismatch(cfg.get("layout", {}), layout)
    if diff:
        raise CheckpointError(f"{path} was trained on another layout ({diff}; checkpoint vs here)")
    if task != cfg.get("task"):
        raise CheckpointError(f"{path} was trained on task {cfg.get('task')!r}, asked to run on {task!r}")


@lru_cache(maxsize=16)
def load_cached(path: str, views: tuple[int, ...] | None = None) -> LearnedPolicy:
    """A collect worker runs the same checkpoint for many episodes; load it once (the policy is stateless)."""
    return LearnedPolicy(path, views=views)


def for_layout(path: str, task: str, layout: Layout) -> LearnedPolicy:
    """The checkpoint at `path`, checked against `task` and `layout`, reading its own cameras among the
    layout's. Called for every episode: the checkpoint is read once per process."""
    learned = load_cached(str(path))
    learned.check(task, layout)
    idx = view_indices(learned.config["layout"]["views"], layout.views)
    return learned if idx == tuple(range(len(layout.views))) else load_cached(str(path), idx)


class LearnedPolicy:
    """Reads `obs.images` (and `obs.state` if the variant uses proprio) and returns a K-action chunk. `views`:
    which of the rendered views are its cameras, in its order (None: all of them, as trained)."""

    def __init__(self, path: str | Path, device: str = "cpu", views: tuple[int, ...] | None = None) -> None:
        self.path = Path(path)
        self.views = views
        cfg = read_config(self.path)
        if cfg.get("kind") != KIND:
            raise CheckpointError(f"{self.path} holds a {cfg.get('kind')!r} checkpoint, not a {KIND!r}")
        self.config = cfg
        self.model_cfg = BCModelConfig(**cfg["model"])
        self.device = torch.device(device)
        self.net = BCPolicyNet(self.model_cfg)
        self.net.load_state_dict(load_weights(self.path))
        self.net.eval().to(self.device)
        norm = cfg["norm"]
        self.state_mean = torch.tensor(norm["state_mean"], dtype=torch.float32, device=self.device)
        self.state_std = torch.tensor(norm["state_std"], dtype=torch.float32, device=self.device)

    def to(self, device: str | torch.device) -> LearnedPolicy:
        """Move the network (e.g. next to the world model that feeds it frames)."""
        self.device = torch.device(device)
        self.net.to(self.device)
        self.state_mean, self.state_std = self.state_mean.to(self.device), self.state_std.to(self.device)
        return self

    def check(self, task: str, layout: Layout) -> None:
        """Refuse to run where the policy was not trained: another task, cameras or action layout."""
        check_fits(self.config, self.path, task, layout)

    @staticmethod
    def check_config(path: str | Path, task: str, layout: Layout) -> None:
        """`check` from the checkpoint's config alone, without loading its weights."""
        check_fits(read_config(path), path, task, layout)

    @staticmethod
    def read_layout(path: str | Path) -> dict[str, Any]:
        """The layout the checkpoint was trained on."""
        return dict(read_config(path)["layout"])

    @staticmethod
    def read_tags(path: str | Path) -> dict[str, Any]:
        """What identifies a learned policy in stored episodes: variant, step, training data."""
        cfg = read_config(path)
        model = BCModelConfig(**cfg["model"])
        return {
            "task": cfg["task"],
            "variant": model.variant,
            "encoder": model.encoder,
            "proprio": model.use_proprio,
            "step": cfg["step"],
            "train_episodes": cfg["data"]["train_episodes"],
            "data_fingerprint": cfg["data"]["fingerprint"],
        }

    def reset(self, seed: int) -> None:
        pass  # deterministic

    @torch.inference_mode()
    def act_batch(self, images_BVHWC: np.ndarray, states_BS: np.ndarray | None) -> np.ndarray:
        images = np.asarray(images_BVHWC)
        images = torch.as_tensor(images if self.views is None else images[:, list(self.views)], device=self.device)
        proprio = None
        if self.model_cfg.use_proprio:  # the proprio-free variant never touches the state
            state = torch.as_tensor(np.asarray(states_BS, dtype=np.float32), device=self.device)
            proprio = (state - self.state_mean) / self.state_std
        return self.net(images, proprio).float().cpu().numpy()  # (B, K, A)

    def act(self, obs: Observation) -> np.ndarray:
        state = obs.state[None] if self.model_cfg.use_proprio else None
        return self.act_batch(obs.images[None], state)[0]
