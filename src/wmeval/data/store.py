"""The episode store: an append-only directory of episodes, one safetensors file each.

    <root>/store.json                               format, layout (views, image size, fps, ...), created
    <root>/episodes/<task>/<policy>/<seed>.safetensors
        frames   uint8  [T, V, H, W, 3]  the frames the world model sees, one every frame_skip control steps
        actions  f32    [T, K, A]        actions[t]: the K = frame_skip control-rate actions executed after
                                         frames[t]; actions[T-1] is the chunk the policy chose at the last
                                         frame (never executed)
        proprio  f32    [T, S]           proprioception at each frame
        success  bool   [T]              true success at any control step of the chunk ending at frame t
                                         (all False when the outcome is unknown: meta.outcome is None)
        __metadata__["wmeval"]: JSON      EpisodeMeta (task, policy spec, seed, start, outcome, digest, ...)

An episode becomes visible only when its file is complete: it is written to a temporary name in the
same directory, fsynced, then renamed (atomic on POSIX). A crash leaves at most a `*.tmp` file that no
reader lists; `wmeval check` reports it. Reads are memory-mapped.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import re
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from wmeval.data.safetensors_io import CorruptFile, memmap_tensors, os_errors, read_header
from wmeval.reality.base import Layout

FORMAT = "wmeval-episodes/1"
TENSORS = ("frames", "actions", "proprio", "success")


class StoreError(ValueError):
    """The store, or what is asked of it, is inconsistent; the message says where and what to do."""


@dataclass(frozen=True)
class EpisodeMeta:
    key: str  # "<task>/<policy>/<seed:06d>", unique in a store
    suite: str
    task: str
    policy: str
    policy_spec: dict[str, Any]
    seed: int
    start: dict[str, Any]
    outcome: bool | None  # None: not known (imported data without success labels)
    length: int  # T, frames
    fps: float
    frame_skip: int
    digest: str = ""  # sha256 over the tensors, filled in on write
    created: str = ""
    versions: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> EpisodeMeta:
        return cls(**json.loads(text))


@dataclass
class Episode:
    frames: np.ndarray  # uint8 [T, V, H, W, 3]
    actions: np.ndarray  # float32 [T, K, A]
    proprio: np.ndarray  # float32 [T, S]
    success: np.ndarray  # bool [T]
    meta: EpisodeMeta

    def tensors(self) -> dict[str, np.ndarray]:
        return {"frames": self.frames, "actions": self.actions, "proprio": self.proprio, "success": self.success}


# A task or policy name is one path component of an episode's file: no separators, no leading dot (so never
# "." or ".."), printable ASCII only. Names from imported data or zoo files cannot leave the store this way.
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+\-]{0,127}$")


def check_name(kind: str, name: str) -> str:
    if not isinstance(name, str) or not SAFE_NAME.match(name):
        raise StoreError(
            f"{kind} name {name!r} cannot name a file in a store: use letters, digits and _ . + - (up to 128, "
            "starting with a letter or digit)"
        )
    return name


def episode_key(task: str, policy: str, seed: int) -> str:
    return f"{check_name('task', task)}/{check_name('policy', policy)}/{seed:06d}"


def tensor_digest(tensors: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        h.update(f"{name}:{a.dtype.str}:{a.shape};".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def software_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("wmeval", "numpy", "mujoco", "metaworld", "safetensors"):
        with contextlib.suppress(PackageNotFoundError):
            out[pkg] = version(pkg)
    return out


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` so a reader sees the old file or the new one, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o644)
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _layout_diff(a: dict, b: dict) -> str:
    keys = sorted(set(a) | set(b))
    return ", ".join(f"{k}: {a.get(k)!r} vs {b.get(k)!r}" for k in keys if a.get(k) != b.get(k))


class EpisodeStore:
    """An append-only, crash-safe directory of episodes sharing one `Layout`."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        manifest = self.root / "store.json"
        if not manifest.is_file():
            raise StoreError(f"{self.root} is not an episode store (no store.json); create it with `wmeval collect`")
        try:
            info = json.loads(manifest.read_text())
            if info.get("format") != FORMAT:
                raise StoreError(f"{manifest}: format {info.get('format')!r}, this wmeval reads {FORMAT!r}")
            self.layout = Layout.from_json(info["layout"])
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise StoreError(f"{manifest} is damaged ({e!r}); restore it from a copy of the store") from None
        self.info = info

    @classmethod
    def create(cls, root: str | Path, layout: Layout) -> EpisodeStore:
        """Open the store at `root`, creating it for `layout` if absent; refuse a different layout."""
        root = Path(root)
        manifest = root / "store.json"
        if manifest.is_file():
            store = cls(root)
            if store.layout != layout:
                diff = _layout_diff(store.layout.to_json(), layout.to_json())
                raise StoreError(
                    f"{root} holds episodes with another layout ({diff}; store vs request): "
                    f"use a new --out directory or match the store's settings"
                )
            return store
        if root.exists() and any(root.iterdir()):
            raise StoreError(f"{root} exists and is not an episode store; choose an empty or new directory")
        info = {"format": FORMAT, "layout": layout.to_json(), "created": datetime.now(UTC).isoformat()}
        atomic_write_text(manifest, json.dumps(info, indent=2) + "\n")
        return cls(root)

    # ---- paths and listing ----
    def path(self, key: str) -> Path:
        parts = key.split("/")
        if len(parts) != 3 or not parts[2].isdigit():
            raise StoreError(f"{key!r} is not an episode key (TASK/POLICY/SEED)")
        check_name("task", parts[0])
        check_name("policy", parts[1])
        return self.root / "episodes" / f"{key}.safetensors"

    def has(self, key: str) -> bool:
        return self.path(key).is_file()

    def _files(self) -> Iterator[Path]:
        base = self.root / "episodes"
        if base.is_dir():
            yield from sorted(base.glob("*/*/*.safetensors"))

    def key_of(self, path: Path) -> str:
        return str(path.relative_to(self.root / "episodes").with_suffix(""))

    def keys(self) -> list[str]:
        return [self.key_of(p) for p in self._files()]

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return sum(1 for _ in self._files())

    def meta(self, key: str) -> EpisodeMeta:
        path = self.path(key)
        try:
            _, meta, _ = read_header(path)
            return EpisodeMeta.from_json(meta["wmeval"])
        except FileNotFoundError:
            raise StoreError(f"{self.root}: no episode {key!r}") from None
        except (KeyError, TypeError, json.JSONDecodeError) as e:
            raise StoreError(f"{path}: episode metadata is missing or damaged ({e!r}); run `wmeval check`") from None
        except CorruptFile as e:
            raise StoreError(f"{e}; run `wmeval check {self.root}`") from None

    def index(self) -> list[EpisodeMeta]:
        """Metadata of every committed episode (reads headers only)."""
        return [self.meta(k) for k in self.keys()]

    # ---- write ----
    def validate(self, ep: Episode) -> None:
        L, key = self.layout, ep.meta.key
        want_key = episode_key(ep.meta.task, ep.meta.policy, ep.meta.seed)  # refuses unsafe names
        if key != want_key:
            raise StoreError(f"episode key {key!r} does not match its task, policy and seed ({want_key!r})")
        T = ep.frames.shape[0]
        expected = {
            "frames": ((T, len(L.views), L.image_size, L.image_size, 3), np.uint8),
            "actions": ((T, L.frame_skip, L.action_dim), np.float32),
            "proprio": ((T, L.state_dim), np.float32),
            "success": ((T,), np.bool_),
        }
        for name, (shape, dtype) in expected.items():
            a = getattr(ep, name)
            if a.shape != shape or a.dtype != dtype:
                raise StoreError(
                    f"episode {key}: {name} is {a.dtype}{list(a.shape)} but the store at {self.root} holds "
                    f"{np.dtype(dtype)}{list(shape)} (views={list(L.views)}, image_size={L.image_size}, "
                    f"frame_skip={L.frame_skip}, action_dim={L.action_dim}, state_dim={L.state_dim}); "
                    f"write it to a new store or match the store's layout"
                )
        if ep.meta.fps != L.fps or ep.meta.frame_skip != L.frame_skip or ep.meta.suite != L.suite:
            raise StoreError(
                f"episode {key}: suite/fps/frame_skip {ep.meta.suite}/{ep.meta.fps}/{ep.meta.frame_skip} "
                f"differ from the store's {L.suite}/{L.fps}/{L.frame_skip} at {self.root}"
            )
        if ep.meta.outcome is None and np.any(ep.success):
            raise StoreError(f"episode {key}: its outcome is unknown (None) but its success flags are set")
        if not (np.all(np.isfinite(ep.actions)) and np.all(np.isfinite(ep.proprio))):
            raise StoreError(f"episode {key}: actions or proprio contain NaN/inf; refusing to store it")

    def append(self, ep: Episode) -> EpisodeMeta:
        """Commit one whole episode atomically. Episodes are immutable: an existing key is refused."""
        from safetensors.numpy import save_file

        self.validate(ep)
        target = self.path(ep.meta.key)
        if target.exists():
            raise StoreError(f"episode {ep.meta.key} is already in {self.root}; episodes are immutable")
        tensors = {k: np.ascontiguousarray(v) for k, v in ep.tensors().items()}
        meta = EpisodeMeta(
            **{
                **asdict(ep.meta),
                "digest": tensor_digest(tensors),
                "created": datetime.now(UTC).isoformat(),
                "versions": software_versions(),
            }
        )
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}.", suffix=".tmp")
        os.close(fd)
        try:
            save_file(tensors, tmp, metadata={"wmeval": meta.to_json()})
            os.chmod(tmp, 0o644)  # mkstemp makes 0600; episodes are for sharing
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            with os_errors(target):  # a full disk: an OSError naming the episode
                raise
        return meta

    # ---- read ----
    def load(self, key: str, verify: bool = True) -> Episode:
        """The episode as read-only memory maps. `verify` re-hashes the tensors against the stored digest
        (about a millisecond per 64 px episode) so silent corruption is never used."""
        path = self.path(key)
        if not path.is_file():
            raise StoreError(f"{self.root}: no episode {key!r}")
        try:
            arrays, raw = memmap_tensors(path)
        except CorruptFile as e:
            raise StoreError(f"{e}; run `wmeval check {self.root}`") from None
        meta = self.meta(key)
        missing = [t for t in TENSORS if t not in arrays]
        if missing:
            raise StoreError(f"{path}: missing tensor(s) {', '.join(missing)}; run `wmeval check {self.root}`")
        if verify and tensor_digest({t: arrays[t] for t in TENSORS}) != meta.digest:
            raise StoreError(f"{path}: content does not match its digest (corrupted); run `wmeval check {self.root}`")
        return Episode(meta=meta, **{t: arrays[t] for t in TENSORS})

    def fingerprint(self) -> str:
        """Identifies the store's content: the layout and every episode's key and digest."""
        h = hashlib.sha256(json.dumps(self.layout.to_json(), sort_keys=True).encode())
        for m in self.index():
            h.update(f"{m.key}={m.digest};".encode())
        return h.hexdigest()[:16]

    def temp_files(self) -> list[Path]:
        base = self.root / "episodes"
        return sorted(base.rglob(".*.tmp")) if base.is_dir() else []
