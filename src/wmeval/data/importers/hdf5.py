"""HDF5 logs in the robomimic layout:

    data/                 attrs: env_args (JSON; env_kwargs.control_freq is the control rate)
      demo_0/             one group per episode, numbered in order
        actions           [N, A]
        rewards, dones    [N] (optional): reward / done after action i
        obs/<camera>      uint8 [N, H, W, 3] (any dataset of that shape is a camera)
        obs/<key>         [N, d] low-dimensional observations; the chosen ones, concatenated, are proprio

Read with h5py (`pip install -e .[import]`); images are read only at the frames the store keeps.
"""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path

import numpy as np

from wmeval.data.importers import EpisodeRef, Source, SourceEpisode, SourceError

SUCCESS_FROM = ("auto", "success", "reward", "done", "none")


def _h5py():
    try:
        import h5py
    except ModuleNotFoundError:
        raise SourceError("reading HDF5 needs h5py: pip install -e '.[import]'") from None
    return h5py


def _demo_number(name: str) -> int:
    m = re.fullmatch(r"demo_(\d+)", name)
    return int(m.group(1)) if m else -1


def _is_camera(d) -> bool:
    return d.ndim == 4 and d.shape[-1] == 3 and d.dtype == np.uint8


def read_hdf5(path: str | Path, cameras: tuple[str, ...] = (), state_keys: tuple[str, ...] = (),
              action_key: str = "actions", success_from: str = "auto") -> tuple[Source, tuple[str, ...]]:  # fmt: skip
    """Open a robomimic-layout file; returns the source and the cameras to import (all when none chosen)."""
    h5py = _h5py()
    path = Path(path)
    if success_from not in SUCCESS_FROM:
        raise SourceError(f"--success-from {success_from!r}: choose one of {', '.join(SUCCESS_FROM)}")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise SourceError(f"{path}: not a readable HDF5 file ({e})") from None
    with f:
        if "data" not in f:
            raise SourceError(f"{path}: no `data` group; expected the robomimic layout data/demo_N/{{obs,actions}}")
        demos = sorted((n for n in f["data"] if _demo_number(n) >= 0), key=_demo_number)
        if not demos:
            raise SourceError(f"{path}: `data` holds no demo_N group")
        first = f["data"][demos[0]]
        if "obs" not in first or action_key not in first:
            raise SourceError(f"{path}:data/{demos[0]}: needs `obs/` and `{action_key}` (--action-key)")
        obs = first["obs"]
        found = sorted(k for k in obs if _is_camera(obs[k]))
        chosen = tuple(cameras) or tuple(found)
        missing = [c for c in chosen if c not in found]
        if missing or not chosen:
            raise SourceError(f"{path}:data/{demos[0]}/obs: camera(s) {missing or '(none)'} not found; "
                              f"image datasets there: {', '.join(found) or 'none'} (--cameras)")  # fmt: skip
        low_dim = sorted(k for k in obs if not _is_camera(obs[k]) and obs[k].ndim in (1, 2))
        keys = tuple(state_keys) or tuple(k for k in low_dim if not k.startswith("object"))
        bad = [k for k in keys if k not in low_dim]
        if bad or not keys:
            raise SourceError(f"{path}:data/{demos[0]}/obs: state key(s) {bad or '(none)'} not found; "
                              f"low-dimensional datasets there: {', '.join(low_dim) or 'none'} (--state-keys)")
        state_dim = sum(int(np.prod(obs[k].shape[1:])) for k in keys)
        action_dim = int(np.prod(first[action_key].shape[1:]))
        lengths = tuple(int(f["data"][d][action_key].shape[0]) for d in demos)
        fps = None
        with contextlib.suppress(KeyError, TypeError, ValueError, json.JSONDecodeError):
            fps = float(json.loads(f["data"].attrs["env_args"])["env_kwargs"]["control_freq"])
    notes = (f"cameras: {', '.join(chosen)}", f"proprio: {' + '.join(keys)} ({state_dim} dims)",
             f"actions: {action_key} ({action_dim} dims)")  # fmt: skip

    def episodes():
        with h5py.File(path, "r") as f:
            for d in demos:
                yield EpisodeRef(_demo_number(d), f"{path}:data/{d}", None,
                                 lambda d=d: _episode(f["data"][d], chosen, keys, action_key, success_from))

    return Source("hdf5", str(path), chosen, state_dim, action_dim, fps, lengths, episodes, notes), chosen


def _episode(g, cameras, keys, action_key: str, success_from: str) -> SourceEpisode:
    for k in (*cameras, *keys):
        if k not in g["obs"]:
            raise SourceError(f"obs/{k} is missing")
    if action_key not in g:
        raise SourceError(f"`{action_key}` is missing")
    n = g[action_key].shape[0]
    state = np.concatenate([np.asarray(g["obs"][k], np.float32).reshape(len(g["obs"][k]), -1) for k in keys], 1)
    actions = np.asarray(g[action_key], np.float32).reshape(n, -1)
    if len(state) != n:
        raise SourceError(f"{len(state)} observations for {n} actions")
    return SourceEpisode(lambda camera, steps: g["obs"][camera][np.asarray(steps)], state, actions,
                         _success(g, n, success_from))


def _success(g, n: int, success_from: str) -> np.ndarray | None:
    """Per-step success: a `success` dataset, else `rewards` holding only 0/1 (auto); `dones` only when asked."""
    if success_from in ("auto", "success") and "success" in g:
        return np.asarray(g["success"]).astype(bool).reshape(n)
    if success_from in ("auto", "reward") and "rewards" in g:
        r = np.asarray(g["rewards"], np.float64).reshape(n)
        if np.isin(r, (0.0, 1.0)).all():
            return r > 0.5
        if success_from == "reward":
            raise SourceError("rewards are not all 0 or 1: they do not say success; use --success-from none "
                              "or a labels CSV (--labels)")
    if success_from == "done" and "dones" in g:
        return np.asarray(g["dones"]).astype(bool).reshape(n)
    if success_from in ("success", "reward", "done"):
        raise SourceError(f"no `{ {'success': 'success', 'reward': 'rewards', 'done': 'dones'}[success_from]}` "
                          "dataset to read success from (--success-from)")
    return None
