"""`wmeval import`: episodes recorded elsewhere (a real robot's logs) into an episode store.

A reader (one module per format) yields each source episode at its control rate: per step a frame of
every chosen camera, the proprio state, the action executed after it, and, where the source says, whether
the task was succeeded after that action. `import_episodes` turns each into the store's layout and
commits it atomically:

- frames: one every `frame_skip` steps (steps 0, K, 2K, ...), resized to `image_size` (squashed to a square:
  nothing at the image's edges is lost, the world model does not care about aspect);
- actions[t]: the K actions executed after frame t (the last chunk padded with its last action);
- proprio[t]: the state at frame t;
- success[t]: the task succeeded after an action of the chunk ending at frame t; successes after the
  last frame (an episode that ends on success) count at the last frame, so the outcome is never lost.
  Success comes, in order of preference, from the per-episode labels CSV, else the source's success
  column, else its reward column (rewards in {0, 1}), else it is unknown: the episode is stored with
  `outcome = None`, the dynamics learn from it and the value head does not.

An episode's key is TASK/POLICY/SEED with SEED its index in the source, so an interrupted import resumes
where it stopped and re-running it adds nothing twice. A bad episode gets one error naming it and the
import goes on with the others; the command fails at the end if any was bad.
"""

from __future__ import annotations

import csv
import errno
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from wmeval.data.store import Episode, EpisodeMeta, EpisodeStore, StoreError, check_name, episode_key
from wmeval.reality.base import Layout
from wmeval.types import Start


class SourceError(ValueError):
    """A source episode (or the whole source) cannot be imported; the message says where and what to do."""


@dataclass
class SourceEpisode:
    """One source episode at its control rate: N steps, step i = (observation i, action i)."""

    frames: Callable[[str, np.ndarray], np.ndarray]  # (camera, steps) -> uint8 [len(steps), H, W, 3]
    state: np.ndarray  # [N, S]
    actions: np.ndarray  # [N, A]
    success: np.ndarray | None  # [N] succeeded after action i; None: the source does not say


@dataclass(frozen=True)
class EpisodeRef:
    """An episode of the source before it is read: `load()` reads it (and may raise SourceError)."""

    index: int  # the episode's number in the source: its seed in the store
    where: str  # for messages, e.g. "demo.hdf5:data/demo_3"
    task: str | None  # the source's own task label, if any
    load: Callable[[], SourceEpisode]


@dataclass(frozen=True)
class Source:
    """What a reader found: its cameras, state and action sizes, control rate, and episodes."""

    format: str
    path: str
    cameras: tuple[str, ...]
    state_dim: int
    action_dim: int
    fps: float | None  # control rate, steps per second; None when the source does not say
    lengths: tuple[int, ...]  # steps per episode, in source order
    episodes: Callable[[], Iterator[EpisodeRef]]
    notes: tuple[str, ...] = ()  # what the reader chose (keys, success column), printed before importing


@dataclass(frozen=True)
class ImportConfig:
    out: str
    suite: str = "imported"
    task: str | None = None  # None: the source's task label, else the source file's name
    policy: str = "demonstrations"
    image_size: int = 64
    frame_skip: int = 1  # source steps per stored frame
    action_chunk: int = 1  # control actions in each source step's action (a chunk, flattened: C x A values)
    fps: float | None = None  # source steps per second; overrides the source's
    horizon: int | None = None  # chunks an imagined episode runs; None: the store's, else the longest episode's
    labels: str | None = None  # CSV: episode, success (1/0/blank), optional policy and task
    limit: int | None = None  # import the first `limit` episodes only
    views: dict = field(default_factory=dict)  # camera -> view name in the store (default: the camera's)


def view_name(camera: str) -> str:
    """A camera key as a short view name: `observation.images.top` -> `top`."""
    return camera.rsplit(".", 1)[-1].rsplit("/", 1)[-1]


def safe_name(text: str) -> str:
    """Any label (a LeRobot task sentence, a file name) as a store name: `Pick the cube.` -> `pick-the-cube`."""
    name = re.sub(r"[^A-Za-z0-9_.+\-]+", "-", text.strip().lower()).strip("-.")[:128]
    return name or "task"


TRUE, FALSE = {"1", "true", "yes", "success", "y", "t"}, {"0", "false", "no", "failure", "n", "f"}


def read_labels(path: str | Path) -> dict[int, dict]:
    """The per-episode labels CSV: column `episode` (the source's episode index), and any of `success`
    (1/0, true/false; blank: unknown, whatever the source says), `policy`, `task`. Episodes it does not list
    keep the source's success. Returns {episode: {column: value}}."""
    path = Path(path)
    try:
        rows = list(csv.DictReader(path.read_text().splitlines()))
    except OSError as e:
        raise SourceError(f"{path}: cannot read the labels CSV ({e.strerror})") from None
    if not rows or "episode" not in (rows[0]):
        raise SourceError(f"{path}: a labels CSV needs a header with an `episode` column (and success, policy, "
                           "task as needed), e.g.\n  episode,success,policy\n  0,1,ckpt-10k")  # fmt: skip
    out = {}
    for line, row in enumerate(rows, start=2):
        try:
            ep = int(row["episode"])
        except (TypeError, ValueError):
            raise SourceError(f"{path}, line {line}: episode {row['episode']!r} is not an integer") from None
        if ep in out:
            raise SourceError(f"{path}, line {line}: episode {ep} is labelled twice")
        label = {}
        s = (row.get("success") or "").strip().lower()
        if s in TRUE | FALSE:
            label["success"] = s in TRUE
        elif not s and "success" in row:  # a success column left blank: unknown, whatever the source says
            label["success"] = None
        elif s:
            raise SourceError(f"{path}, line {line}: success {row['success']!r} is not 1/0, true/false or blank")
        for col in ("policy", "task"):
            if (row.get(col) or "").strip():
                label[col] = check_label(path, line, col, row[col].strip())
        out[ep] = label
    return out


def check_label(path, line: int, col: str, value: str) -> str:
    try:
        return check_name(col, value)
    except StoreError as e:
        raise SourceError(f"{path}, line {line}: {e}") from None


def resize(frames: np.ndarray, size: int) -> np.ndarray:
    """uint8 [N, H, W, 3] -> uint8 [N, size, size, 3], antialiased bilinear (area-like when shrinking)."""
    if frames.shape[1] == size and frames.shape[2] == size:
        return np.ascontiguousarray(frames)
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def chunk(src: SourceEpisode, cameras: tuple[str, ...], k: int, size: int, success: np.ndarray | None,
          action_chunk: int = 1):  # fmt: skip
    """The store's tensors of one source episode (see the module docstring for the alignment). With
    `action_chunk` C, each source step's action holds C control actions: a frame's chunk is K x C of them."""
    n = len(src.actions)
    steps = np.arange(0, n, k)
    frames = np.stack([resize(np.asarray(src.frames(c, steps)), size) for c in cameras], axis=1)
    if len(frames) != len(steps):
        raise SourceError(f"{len(frames)} frames read for {len(steps)} wanted")
    idx = np.minimum(steps[:, None] + np.arange(k)[None], n - 1)  # the last chunk padded with its last action
    actions = np.asarray(src.actions, np.float32)[idx]
    actions = actions.reshape(len(steps), k * action_chunk, -1)
    proprio = np.asarray(src.state, np.float32)[steps]
    flags = np.zeros(len(steps), bool)
    if success is not None:
        after = np.flatnonzero(success)  # succeeded after action i: seen at the first frame after step i
        flags[np.minimum((after + k) // k, len(steps) - 1)] = True
    return frames, actions, proprio, flags


def source_layout(src: Source, cfg: ImportConfig, cameras: tuple[str, ...], existing: Layout | None) -> Layout:
    fps = cfg.fps or src.fps
    if not fps or fps <= 0:
        raise SourceError(f"{src.path} does not say its control rate: pass --fps (steps per second)")
    if cfg.action_chunk < 1 or src.action_dim % cfg.action_chunk:
        raise SourceError(f"{src.path}: its action has {src.action_dim} values, which --action-chunk "
                          f"{cfg.action_chunk} does not divide into control actions")  # fmt: skip
    # an episode of n steps stores frames at steps 0, K, ..., (n - 1) // K transitions after the first
    horizon = cfg.horizon or (existing.horizon if existing else max((n - 1) // cfg.frame_skip for n in src.lengths))
    return Layout(suite=cfg.suite, views=tuple(cfg.views.get(c, view_name(c)) for c in cameras),
                  image_size=cfg.image_size, frame_skip=cfg.frame_skip * cfg.action_chunk, horizon=max(1, horizon),
                  action_dim=src.action_dim // cfg.action_chunk, state_dim=src.state_dim,
                  control_hz=float(fps) * cfg.action_chunk)  # fmt: skip


def existing_layout(out: Path) -> Layout | None:
    return EpisodeStore(out).layout if (out / "store.json").is_file() else None


@dataclass
class ImportReport:
    store: str
    imported: int = 0
    skipped: int = 0  # already in the store
    unknown: int = 0  # imported without a known outcome
    errors: list[str] = field(default_factory=list)
    frames: int = 0
    seconds: float = 0.0


def import_episodes(src: Source, cfg: ImportConfig, cameras: tuple[str, ...], progress: bool = True) -> ImportReport:
    """Write every episode of `src` into the store at `cfg.out` (created for the source's layout)."""
    import time

    if not src.lengths:
        raise SourceError(f"{src.path} holds no episode")
    out = Path(cfg.out)
    layout = source_layout(src, cfg, cameras, existing_layout(out))
    store = EpisodeStore.create(out, layout)
    labels = read_labels(cfg.labels) if cfg.labels else {}
    default_task = cfg.task and check_name("task", cfg.task)
    check_name("policy", cfg.policy)
    report, t0 = ImportReport(str(out)), time.perf_counter()
    total = len(src.lengths) if cfg.limit is None else min(cfg.limit, len(src.lengths))
    bar = tqdm(total=total, desc=f"import {src.format}", unit="ep", disable=not progress, dynamic_ncols=True)
    for i, ref in enumerate(src.episodes()):
        if i >= total:
            break
        bar.update(1)
        label = labels.get(ref.index, {})
        task = label.get("task") or default_task or safe_name(ref.task or Path(src.path).stem)
        policy = label.get("policy") or cfg.policy
        key = episode_key(task, policy, ref.index)
        if store.has(key):
            report.skipped += 1
            continue
        try:
            episode = to_episode(ref.load(), ref.index, label, key, task, policy, layout, src, cameras)
            store.append(episode)
        except (SourceError, StoreError, ValueError, OSError) as e:
            if isinstance(e, OSError) and e.errno == errno.ENOSPC:
                raise  # a full disk fails every episode after it: stop (what is committed stays)
            report.errors.append(f"{ref.where}: {e}")
            tqdm.write(f"error: {ref.where}: {e}")
            continue
        report.imported += 1
        report.unknown += episode.meta.outcome is None
        report.frames += len(episode.frames)
        bar.set_postfix(frames=report.frames, refresh=False)
    bar.close()
    report.seconds = time.perf_counter() - t0
    return report


def to_episode(ep: SourceEpisode, index: int, label: dict, key: str, task: str, policy: str, layout: Layout,
               src: Source, cameras: tuple[str, ...]) -> Episode:  # fmt: skip
    n = len(ep.actions)
    if n < 2:
        raise SourceError(f"{n} step(s): an episode needs at least 2")
    if ep.state.shape != (n, layout.state_dim) or ep.actions.shape != (n, src.action_dim):
        raise SourceError(f"state {list(ep.state.shape)} and actions {list(ep.actions.shape)} do not match "
                          f"[{n}, {layout.state_dim}] and [{n}, {src.action_dim}]")  # fmt: skip
    for name, a in (("state", ep.state), ("actions", ep.actions)):
        bad = np.flatnonzero(~np.isfinite(np.asarray(a, np.float64)).all(-1))
        if len(bad):
            raise SourceError(f"{name} is NaN/inf at step(s) {bad[:5].tolist()}: fix or drop the episode")
    success = ep.success
    if "success" in label:  # the user's label overrides the source: the outcome, timed at the last frame
        success = None if label["success"] is None else np.zeros(n, bool)
        if success is not None:
            success[-1] = label["success"]
    c = src.action_dim // layout.action_dim  # control actions per source step
    frames, actions, proprio, flags = chunk(ep, cameras, layout.frame_skip // c, layout.image_size, success, c)
    outcome = None if success is None else bool(flags.any())
    start = Start(layout.suite, task, index, {"source": src.path, "format": src.format, "episode": index})
    meta = EpisodeMeta(key=key, suite=layout.suite, task=task, policy=policy,
                       policy_spec={"name": policy, "base": "imported", "source": src.path, "format": src.format},
                       seed=index, start=start.to_json(), outcome=outcome, length=len(frames),
                       fps=layout.fps, frame_skip=layout.frame_skip)  # fmt: skip
    return Episode(frames=frames, actions=actions, proprio=proprio, success=flags, meta=meta)


def read_source(fmt: str, path: str, cameras: tuple[str, ...] = (), state_keys: tuple[str, ...] = (),
                action_key: str | None = None, success_from: str = "auto") -> tuple[Source, tuple[str, ...]]:
    """Open a source of format `fmt` (lerobot, hdf5); returns it and the cameras to import."""
    if fmt == "hdf5":
        from wmeval.data.importers.hdf5 import read_hdf5

        return read_hdf5(path, cameras, state_keys, action_key or "actions", success_from)
    if fmt == "lerobot":
        from wmeval.data.importers.lerobot import read_lerobot

        return read_lerobot(path, cameras, state_keys, action_key or "action", success_from)
    raise SourceError(f"unknown import format {fmt!r}; valid: lerobot, hdf5")
