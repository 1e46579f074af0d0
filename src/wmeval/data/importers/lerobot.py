"""LeRobot datasets from a local directory (codebase v3.0, and v2.x):

    meta/info.json        fps, features (dtype, shape per key; "video" / "image" for cameras), data_path,
                          video_path (templates), codebase_version
    meta/episodes/...     v3.0: parquet, one row per episode: episode_index, tasks, length,
                          dataset_from_index / dataset_to_index (its rows), data/chunk_index, data/file_index,
                          videos/<camera>/chunk_index, file_index, from_timestamp (its segment of the mp4)
    meta/episodes.jsonl   v2.x: one line per episode (episode_index, tasks, length); one parquet and one mp4
                          per camera per episode
    data/...parquet       one row per step: observation.state, action, timestamp, frame_index,
                          episode_index, index, task_index, next.reward / next.done / next.success if recorded
    videos/...mp4         one stream per camera; frame i of an episode is at from_timestamp + timestamp_i

Read with pyarrow and PyAV (`pip install -e .[import]`); nothing is fetched from a hub. Cameras stored as
images (dtype "image") are read from the parquet rows.
"""

from __future__ import annotations

import io
import json
from collections import defaultdict
from functools import cache
from pathlib import Path

import numpy as np

from wmeval.data.importers import EpisodeRef, Source, SourceEpisode, SourceError

# the path templates when meta/info.json has none (LeRobot's defaults)
V3_DATA = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
V3_VIDEO = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
V2_DATA = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
V2_VIDEO = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
SUCCESS_COLUMNS = {"success": ("next.success", "success"), "reward": ("next.reward", "reward"),
                   "done": ("next.done", "done")}  # fmt: skip


def _pyarrow():
    try:
        import pyarrow.parquet as pq
    except ModuleNotFoundError:
        raise SourceError("reading LeRobot datasets needs pyarrow and av: pip install -e '.[import]'") from None
    return pq


def read_lerobot(root: str | Path, cameras: tuple[str, ...] = (), state_keys: tuple[str, ...] = (),
                 action_key: str = "action", success_from: str = "auto") -> tuple[Source, tuple[str, ...]]:  # fmt: skip
    """Open a LeRobot dataset directory; returns the source and the cameras to import (all when none chosen)."""
    root = Path(root)
    info_path = root / "meta" / "info.json"
    try:
        info = json.loads(info_path.read_text())
        features, fps = info["features"], float(info["fps"])
    except FileNotFoundError:
        raise SourceError(f"{root} is not a LeRobot dataset (no meta/info.json)") from None
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise SourceError(f"{info_path}: not a LeRobot info.json ({e!r})") from None
    if success_from not in ("auto", *SUCCESS_COLUMNS, "none"):
        raise SourceError(f"--success-from {success_from!r}: choose one of auto, {', '.join(SUCCESS_COLUMNS)}, none")
    found = sorted(k for k, f in features.items() if f.get("dtype") in ("video", "image"))
    chosen = tuple(cameras) or tuple(found)
    missing = [c for c in chosen if c not in found]
    if missing or not chosen:
        raise SourceError(f"{info_path}: camera(s) {missing or '(none)'} not in features; cameras there: "
                          f"{', '.join(found) or 'none'} (--cameras)")  # fmt: skip
    keys = tuple(state_keys) or ("observation.state",)
    for k in (*keys, action_key):
        if k not in features or features[k].get("dtype") in ("video", "image", "string"):
            numeric = sorted(k for k, f in features.items() if f.get("dtype") not in ("video", "image", "string"))
            flag = "--action-key" if k == action_key else "--state-keys"
            raise SourceError(f"{info_path}: no numeric feature {k!r} ({flag}); features there: {', '.join(numeric)}")
    dims = {k: int(np.prod(features[k].get("shape") or [1])) for k in (*keys, action_key)}
    column = _success_column(features, success_from, info_path)
    episodes = _episode_table(root, info)
    version = str(info.get("codebase_version", "v3.0"))
    notes = (f"LeRobot {version} at {fps:g} fps", f"cameras: {', '.join(chosen)}",
             f"proprio: {' + '.join(keys)} ({sum(dims[k] for k in keys)} dims)",
             f"actions: {action_key} ({dims[action_key]} dims)",
             f"success: {column or 'unknown (no success column; --labels gives it)'}")  # fmt: skip
    reader = _Reader(root, info, chosen, keys, action_key, column)

    def refs():
        for e in episodes:
            yield EpisodeRef(int(e["episode_index"]), f"{root}: episode {e['episode_index']}", _task(e),
                             lambda e=e: reader.load(e))  # fmt: skip

    src = Source("lerobot", str(root), chosen, sum(dims[k] for k in keys), dims[action_key], fps,
                 tuple(int(e["length"]) for e in episodes), refs, notes)  # fmt: skip
    return src, chosen


def _success_column(features: dict, success_from: str, where) -> str | None:
    if success_from == "none":
        return None
    kinds = ("success", "reward") if success_from == "auto" else (success_from,)
    for kind in kinds:
        for name in SUCCESS_COLUMNS[kind]:
            if name in features:
                return name
    if success_from != "auto":
        raise SourceError(f"{where}: no {' or '.join(SUCCESS_COLUMNS[success_from])} feature to read success from")
    return None


def _task(e: dict) -> str | None:
    tasks = e.get("tasks")
    if isinstance(tasks, (list, tuple, np.ndarray)) and len(tasks):
        return str(tasks[0])
    return tasks if isinstance(tasks, str) else None


def _episode_table(root: Path, info: dict) -> list[dict]:
    """One dict per episode, in episode order: the v3.0 parquet files of meta/episodes, or v2.x jsonl."""
    pq = _pyarrow()
    files = sorted((root / "meta" / "episodes").glob("**/*.parquet"))
    if files:
        rows = [r for f in files for r in pq.read_table(f).to_pylist()]
    elif (root / "meta" / "episodes.jsonl").is_file():
        path = root / "meta" / "episodes.jsonl"
        try:
            rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        except json.JSONDecodeError as e:
            raise SourceError(f"{path}: line {e.lineno} is not JSON") from None
    else:
        raise SourceError(f"{root}/meta has neither episodes/*.parquet (v3.0) nor episodes.jsonl (v2.x)")
    for r in rows:
        if "episode_index" not in r or "length" not in r:
            raise SourceError(f"{root}/meta/episodes: a row lacks episode_index or length ({sorted(r)[:8]})")
    return sorted(rows, key=lambda r: int(r["episode_index"]))


class _Reader:
    """Reads one episode's rows and frames; parquet files are read once and kept while episodes use them."""

    def __init__(self, root: Path, info: dict, cameras, keys, action_key: str, success: str | None) -> None:
        self.root, self.info, self.cameras, self.keys = root, info, cameras, keys
        self.action_key, self.success = action_key, success
        self.v3 = str(info.get("codebase_version", "v3.0")).startswith("v3")
        self.chunks_size = int(info.get("chunks_size", 1000))
        self._tables: dict[Path, object] = {}

    def _path(self, template_key: str, default: str, **fields) -> Path:
        template = self.info.get(template_key) or default
        try:
            return self.root / template.format(**fields)
        except (KeyError, IndexError, ValueError) as e:
            raise SourceError(f"meta/info.json: {template_key} {template!r} cannot be filled ({e!r})") from None

    def _table(self, path: Path):
        if path not in self._tables:
            if not path.is_file():
                raise SourceError(f"{path} is missing")
            self._tables = {path: _pyarrow().read_table(path)}  # one file at a time: episodes come in order
        return self._tables[path]

    def rows(self, e: dict):
        """The episode's rows of the data parquet, as a pyarrow table in frame order."""
        ep = int(e["episode_index"])
        if self.v3:
            path = self._path("data_path", V3_DATA, chunk_index=int(e.get("data/chunk_index", 0)),
                              file_index=int(e.get("data/file_index", 0)))
            table = self._table(path)
            lo, hi = e.get("dataset_from_index"), e.get("dataset_to_index")
            col = table.column("index").to_numpy() if "index" in table.column_names else None
            if lo is not None and col is not None:
                sel = np.flatnonzero((col >= int(lo)) & (col < int(hi)))
            else:
                sel = np.flatnonzero(table.column("episode_index").to_numpy() == ep)
            rows = table.take(sel)
        else:
            path = self._path("data_path", V2_DATA, episode_chunk=ep // self.chunks_size, episode_index=ep)
            rows = self._table(path)
        if "frame_index" in rows.column_names:
            rows = rows.take(np.argsort(rows.column("frame_index").to_numpy(), kind="stable"))
        if rows.num_rows != int(e["length"]):
            raise SourceError(f"{path}: {rows.num_rows} rows for an episode of length {e['length']}")
        return rows, path

    def load(self, e: dict) -> SourceEpisode:
        rows, path = self.rows(e)

        def numeric(k: str) -> np.ndarray:
            if k not in rows.column_names:
                raise SourceError(f"{path}: no column {k!r}")
            return _column(rows.column(k), rows.num_rows, path, k)

        state = np.concatenate([numeric(k) for k in self.keys], axis=1)
        actions = numeric(self.action_key)
        success = None
        if self.success:
            s = numeric(self.success)[:, 0]
            # a shaped reward says nothing of success: unknown (--labels gives it)
            shaped = self.success.endswith("reward") and not np.isin(s, (0.0, 1.0)).all()
            success = None if shaped else s > 0.5
        ts = (numeric("timestamp")[:, 0].astype(np.float64) if "timestamp" in rows.column_names
              else np.arange(rows.num_rows) / float(self.info["fps"]))  # fmt: skip

        def frames(camera: str, steps: np.ndarray) -> np.ndarray:
            if self.info["features"][camera].get("dtype") == "image":
                return _images(rows, camera, steps, path)
            return self._video(e, camera, ts[np.asarray(steps)])

        return SourceEpisode(frames, state, actions, success)

    def _video(self, e: dict, camera: str, times: np.ndarray) -> np.ndarray:
        ep = int(e["episode_index"])
        if self.v3:
            path = self._path("video_path", V3_VIDEO, video_key=camera,
                              chunk_index=int(e.get(f"videos/{camera}/chunk_index", 0)),
                              file_index=int(e.get(f"videos/{camera}/file_index", 0)))
            offset = float(e.get(f"videos/{camera}/from_timestamp", 0.0))
        else:
            path = self._path("video_path", V2_VIDEO, episode_chunk=ep // self.chunks_size, video_key=camera,
                              episode_index=ep)
            offset = 0.0
        return decode_at(path, offset + times, float(self.info["fps"]))


def _column(col, n: int, path: Path, key: str) -> np.ndarray:
    """A numeric parquet column as float32 [n, d]: scalars, fixed-size lists (LeRobot's vectors) or lists."""
    import pyarrow as pa

    col = col.combine_chunks() if hasattr(col, "combine_chunks") else col
    try:
        if pa.types.is_fixed_size_list(col.type) or pa.types.is_list(col.type) or pa.types.is_large_list(col.type):
            values = col.flatten().to_numpy(zero_copy_only=False)
            return np.asarray(values, np.float32).reshape(n, -1)
        return np.asarray(col.to_numpy(zero_copy_only=False), np.float32).reshape(n, -1)
    except (ValueError, TypeError, pa.ArrowInvalid) as e:
        raise SourceError(f"{path}: column {key!r} is not numeric per step ({col.type}): {e}") from None


def _images(rows, camera: str, steps: np.ndarray, path: Path) -> np.ndarray:
    """Cameras stored in the parquet rows as encoded images ({bytes, path} structs)."""
    from PIL import Image

    out = []
    for i in np.asarray(steps):
        cell = rows.column(camera)[int(i)].as_py()
        data = cell.get("bytes") if isinstance(cell, dict) else cell
        if not data:
            raise SourceError(f"{path}: row {i} of {camera} holds no image bytes")
        out.append(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
    return np.stack(out)


@cache
def _av():
    try:
        import av
    except ModuleNotFoundError:
        raise SourceError("decoding LeRobot videos needs PyAV: pip install -e '.[import]'") from None
    return av


def decode_at(path: Path, times: np.ndarray, fps: float) -> np.ndarray:
    """The frames of the mp4 at `path` nearest to each of `times` (seconds, ascending), within half a frame:
    seek to the key frame before the first, then decode forward."""
    av = _av()
    if not path.is_file():
        raise SourceError(f"{path} is missing")
    tol = 0.5 / fps
    out: dict[int, np.ndarray] = {}
    want = defaultdict(list)
    for i, t in enumerate(times):
        want[round(float(t) * fps)].append(i)
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            container.seek(int(max(0.0, float(times[0]) - tol) / stream.time_base), stream=stream, backward=True)
            for frame in container.decode(stream):
                t = float(frame.pts * stream.time_base)
                k = round(t * fps)
                if k in want and abs(t - k / fps) <= tol:
                    img = frame.to_ndarray(format="rgb24")
                    for i in want.pop(k):
                        out[i] = img
                if not want or t > float(times[-1]) + tol:
                    break
    except av.error.FFmpegError as e:
        raise SourceError(f"{path}: cannot decode ({e})") from None
    if want:
        lost = sorted(k / fps for k in want)
        raise SourceError(f"{path}: no frame at {len(lost)} timestamp(s) from {lost[0]:.3f} s (the video is shorter "
                          "than its episode, or its timestamps do not match meta/episodes)")
    return np.stack([out[i] for i in range(len(times))])
