"""Policies from anywhere: a Python callable (`base = "python"`) or a LeRobot pretrained policy directory
(`base = "lerobot"`). Both read only what a learned policy reads (images and proprio), so they run in
reality and in imagination alike, and degradations wrap them as any policy.

The Python contract. `entry = "module:factory"` (an importable module) or `"file.py:factory"` (relative to
the zoo file) names a factory; it is called once per episode with the zoo entry's `kwargs`, plus `task` and
`layout` if it takes them, and returns either an object with `reset(seed)` and `act(obs)`, or a plain
callable `obs -> actions`. `obs` is a `wmeval.types.Observation` (`images` uint8[V, H, W, 3] in the layout's
view order, `state` float32[S]); the actions are float32[K, A], K a multiple of the layout's `frame_skip`
(the chunk runs open loop), values in [-1, 1]. Batching: a stateless policy object that also has
`act_batch(images uint8[B, V, H, W, 3], states float32[B, S]) -> float32[B, K, A]` and that the factory
returns for every episode (cache it) is asked for a whole batch of imagined episodes at once.
Example (`policies/reach.py`, zoo entry
`{ name = "mine", base = "python", entry = "policies/reach.py:make", kwargs = { gain = 2.0 } }`):

    import numpy as np

    def make(task, layout, gain=1.0):
        def act(obs):
            target = np.zeros(layout.action_dim, np.float32)
            target[:3] = np.clip(gain * (0.5 - obs.state[:3]), -1, 1)
            return np.repeat(target[None], layout.frame_skip, axis=0)
        return act
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import inspect
import json
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from wmeval.reality.base import Layout
from wmeval.types import Observation


class _Callable:
    """A plain `obs -> actions` callable as a policy (reset does nothing)."""

    def __init__(self, fn) -> None:
        self.fn = fn

    def reset(self, seed: int) -> None:
        pass

    def act(self, obs: Observation) -> np.ndarray:
        return self.fn(obs)


def resolve_entry(entry: str, root: Path | None, where: str) -> str:
    """Check `module:name` / `file.py:name`; a file is made absolute (relative to the zoo file)."""
    module, sep, name = entry.rpartition(":")
    if not sep or not module or not name.isidentifier():
        raise ValueError(f"{where}: entry {entry!r} must be 'package.module:factory' or 'path/to/file.py:factory'")
    if module.endswith(".py"):
        path = Path(module)
        if not path.is_absolute() and root is not None:
            path = root / path
        if not path.is_file():
            raise ValueError(f"{where}: entry file {str(path)!r} does not exist")
        return f"{path.resolve()}:{name}"
    return entry


@lru_cache(maxsize=32)
def load_entry(entry: str):
    """The factory an entry names (modules are imported once)."""
    module, _, name = entry.rpartition(":")
    try:
        if module.endswith(".py"):
            spec = importlib.util.spec_from_file_location(f"wmeval_user_{abs(hash(module))}", module)
            mod = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = mod
            spec.loader.exec_module(mod)
        else:
            mod = importlib.import_module(module)
    except Exception as e:
        raise ValueError(f"entry {entry!r}: importing {module!r} raised {type(e).__name__}: {e}") from e
    factory = getattr(mod, name, None)
    if not callable(factory):
        raise ValueError(f"entry {entry!r}: {module!r} has no callable {name!r}")
    return factory


def build_python(entry: str, kwargs: dict[str, Any], task: str, layout: Layout):
    factory = load_entry(entry)
    params = inspect.signature(factory).parameters
    takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    extra = {k: v for k, v in (("task", task), ("layout", layout)) if k in params or takes_all}
    try:
        made = factory(**extra, **kwargs)
    except Exception as e:
        raise ValueError(f"entry {entry!r}: the factory raised {type(e).__name__}: {e}") from e
    if hasattr(made, "act") and hasattr(made, "reset"):
        return made
    if callable(made):
        return _Callable(made)
    raise ValueError(f"entry {entry!r}: the factory returned {type(made).__name__}, neither a policy "
                     "(reset, act) nor a callable obs -> actions")  # fmt: skip


# ---- LeRobot ----


def _lerobot():
    try:
        from lerobot.policies.factory import get_policy_class, make_pre_post_processors
    except ModuleNotFoundError:
        raise ValueError(
            "base = \"lerobot\" needs the `lerobot` package in this environment (pip install lerobot; see the "
            "README's \"Your own robot\" for the versions that run beside this torch)"
        ) from None
    return get_policy_class, make_pre_post_processors


@lru_cache(maxsize=8)
def _load_lerobot(path: str, device: str):
    """LeRobot's own loading: the policy class named in config.json, its weights, its pre/post processors."""
    get_policy_class, make_pre_post_processors = _lerobot()
    try:
        kind = json.loads((Path(path) / "config.json").read_text())["type"]
    except (OSError, json.JSONDecodeError, KeyError) as e:
        raise ValueError(f"{path}: not a LeRobot pretrained policy directory (config.json: {e!r})") from None
    policy = get_policy_class(kind).from_pretrained(path)
    policy.config.device = device
    policy.to(device).eval()
    pre, post = make_pre_post_processors(policy.config, pretrained_path=path)
    return policy, pre, post


def build_lerobot(path: str, task: str, layout: Layout, cameras: dict[str, str] | None = None, device: str = "cpu"):
    """A LeRobot policy for one episode: the shared, batchable `LeRobotChunker` when the policy predicts
    action chunks from the current observation alone (ACT without temporal ensembling, and any policy with
    one observation step and no ensembling), else a per-episode `LeRobotPolicy` through `select_action`."""
    policy, _, _ = _load_lerobot(str(path), device)
    c = policy.config
    stateless = (hasattr(policy, "predict_action_chunk") and getattr(c, "n_action_steps", None)
                 and getattr(c, "n_obs_steps", 1) == 1
                 and getattr(c, "temporal_ensemble_coeff", None) is None)  # fmt: skip
    if stateless:
        return _chunker(str(path), task, layout, tuple(sorted((cameras or {}).items())), device)
    return LeRobotPolicy(path, task, layout, cameras, device)


class _LeRobotBase:
    """Loading, camera mapping and observation batches shared by both ways of running a LeRobot policy."""

    def __init__(self, path: str, task: str, layout: Layout, cameras: dict[str, str] | None, device: str) -> None:
        import torch

        self.torch, self.layout, self.task, self.device = torch, layout, task, device
        self.loaded, self.pre, self.post = _load_lerobot(str(path), device)
        feats = self.loaded.config.input_features
        self.image_keys = [k for k in feats if k.startswith("observation.image")]
        self.views = self._map_cameras(path, cameras or {})
        self.shapes = {k: tuple(feats[k].shape) for k in self.image_keys}  # (C, H, W)
        self.use_state = "observation.state" in feats
        if self.use_state and tuple(feats["observation.state"].shape) != (layout.state_dim,):
            raise ValueError(f"{path}: observation.state has shape {tuple(feats['observation.state'].shape)}, the "
                             f"layout's proprio {layout.state_dim} values")  # fmt: skip
        out = int(np.prod(self.loaded.config.output_features["action"].shape))
        if out not in (layout.frame_skip * layout.action_dim, layout.action_dim if layout.frame_skip == 1 else -1):
            raise ValueError(f"{path}: the policy's action has {out} values; this layout needs frame_skip x "
                             f"action_dim = {layout.frame_skip} x {layout.action_dim}")  # fmt: skip

    def _map_cameras(self, path, cameras: dict[str, str]) -> dict[str, int]:
        views = list(self.layout.views)
        out = {}
        for i, key in enumerate(self.image_keys):
            view = cameras.get(key) or (key.rsplit(".", 1)[-1] if key.rsplit(".", 1)[-1] in views else None)
            if view is None and len(self.image_keys) == 1 and len(views) == 1:
                view = views[0]
            if view not in views:
                raise ValueError(f"{path}: camera {key!r} has no view among {views}; map it in the zoo entry with "
                                 f"cameras = {{ \"{key}\" = \"{views[min(i, len(views) - 1)]}\" }}")  # fmt: skip
            out[key] = views.index(view)
        return out

    def _batch(self, images_BVHWC: np.ndarray, states_BS: np.ndarray | None) -> dict[str, Any]:
        torch = self.torch
        images = torch.from_numpy(np.ascontiguousarray(images_BVHWC))
        batch: dict[str, Any] = {"task": [self.task] * len(images)}
        for key, v in self.views.items():
            img = images[:, v].permute(0, 3, 1, 2).float() / 255
            c, h, w = self.shapes[key]
            if img.shape[-2:] != (h, w):
                img = torch.nn.functional.interpolate(img, size=(h, w), mode="bilinear", antialias=True)
            batch[key] = img.to(self.device)
        if self.use_state:
            batch["observation.state"] = torch.from_numpy(np.asarray(states_BS, np.float32)).to(self.device)
        return self.pre(batch)


@lru_cache(maxsize=16)
def _chunker(path: str, task: str, layout: Layout, cameras: tuple, device: str) -> LeRobotChunker:
    return LeRobotChunker(path, task, layout, dict(cameras), device)


class LeRobotChunker(_LeRobotBase):
    """A LeRobot policy that predicts a chunk of actions from the current observation (ACT): exactly what
    its `select_action` does, without the queue. Each call returns the policy's next `n_action_steps`
    frames of actions as one chunk (run open loop, as the queue would be), so the policy keeps no state and
    one object serves every episode: imagination asks it for a whole batch at once (`act_batch`)."""

    def reset(self, seed: int) -> None:
        pass  # stateless

    def act_batch(self, images_BVHWC: np.ndarray, states_BS: np.ndarray | None) -> np.ndarray:
        torch, L = self.torch, self.layout
        with torch.no_grad():
            chunk = self.loaded.predict_action_chunk(self._batch(images_BVHWC, states_BS))
            chunk = chunk[:, : self.loaded.config.n_action_steps]
            steps = [self.post(chunk[:, i]) for i in range(chunk.shape[1])]  # unnormalised one step at a time
        a = torch.stack(steps, 1).detach().float().cpu().numpy()  # (B, n, K * A)
        return a.reshape(len(a), -1, L.action_dim).astype(np.float32)  # (B, n * K, A)

    def act(self, obs: Observation) -> np.ndarray:
        return self.act_batch(obs.images[None], obs.state[None])[0]


class LeRobotPolicy(_LeRobotBase):
    """A LeRobot policy with state across calls (observation history, temporal ensembling: Diffusion, ...),
    acting through `select_action`, one episode at a time. Each episode gets its own shallow copy of the
    loaded policy (shared weights, its own queues after `reset`). The policy acts at the store's frame rate:
    its action has `frame_skip * action_dim` values (a chunk, as `wmeval export lerobot` writes it) or
    `action_dim` when `frame_skip` is 1."""

    def __init__(self, path: str, task: str, layout: Layout, cameras: dict[str, str] | None = None,
                 device: str = "cpu") -> None:  # fmt: skip
        super().__init__(path, task, layout, cameras, device)
        self.policy = copy.copy(self.loaded)

    def reset(self, seed: int) -> None:
        self.policy.reset()  # new queues on this episode's copy
        self.torch.manual_seed(seed)  # diffusion policies sample noise from torch's global generator

    def act(self, obs: Observation) -> np.ndarray:
        with self.torch.no_grad():
            action = self.post(self.policy.select_action(self._batch(obs.images[None], obs.state[None])))
        a = action.detach().float().cpu().numpy().reshape(-1)
        return a.reshape(self.layout.frame_skip, self.layout.action_dim).astype(np.float32)
