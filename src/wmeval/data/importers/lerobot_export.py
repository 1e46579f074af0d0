"""`wmeval export lerobot STORE OUT`: an episode store as a LeRobot v3.0 dataset, to train policies with
LeRobot on wmeval data (the layout `lerobot.py` reads; see its docstring).

One dataset row per stored frame, at the store's frame rate: `observation.images.<view>` (one mp4 per view,
AV1 yuv420p as LeRobot writes, episodes back to back), `observation.state` (proprio), `action` (the chunk of
`frame_skip` control actions executed after the frame, flattened: K x A values), `next.success` /
`next.reward` (the task succeeded after this row's action), `next.done` (the episode's last row). Episodes
of unknown outcome are written as failures; `meta/wmeval_labels.csv` keeps every episode's outcome (blank
when unknown), policy and task, so `wmeval import lerobot OUT --labels OUT/meta/wmeval_labels.csv` restores
them. The dataset appears whole or not at all (written beside OUT, then renamed).
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from wmeval.data.importers import SourceError
from wmeval.data.store import EpisodeStore

QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)


def video_codec(size: int) -> tuple[str, str]:
    """(encoder, codec name for info.json): AV1 as LeRobot writes it where the encoder exists and the frames
    are at least 64 px (older SVT-AV1 builds, e.g. PyAV 15's, crash the process on smaller ones), else H.264."""
    import av

    os.environ.setdefault("SVT_LOG", "1")  # the AV1 encoder's banner and notes: errors only
    return ("libsvtav1", "av1") if "libsvtav1" in av.codecs_available and size >= 64 else ("libx264", "h264")


def _stats(x: np.ndarray) -> dict:
    """LeRobot's per-feature statistics over rows (axis 0): min, max, mean, std, count and quantiles."""
    x = x.astype(np.float64)
    out = {"min": x.min(0), "max": x.max(0), "mean": x.mean(0), "std": x.std(0), "count": np.array([len(x)])}
    out |= {f"q{round(q * 100):02d}": np.quantile(x, q, axis=0) for q in QUANTILES}
    return {k: v.tolist() for k, v in out.items()}


def _image_stats(pixels: np.ndarray) -> dict:
    """Per-channel statistics of frames in [0, 1], shaped (3, 1, 1) as LeRobot keeps them for cameras."""
    s = _stats(pixels.reshape(-1, 3) / 255.0)
    return {k: [[[c]] for c in v] if k != "count" else v for k, v in s.items()}


def _tasks_table(pa, tasks: list[str]):
    """meta/tasks.parquet as pandas writes it (LeRobot reads it with pandas): the task strings are the
    frame's index, `task_index` its one column."""
    pandas_meta = {
        "index_columns": ["__index_level_0__"],
        "column_indexes": [{"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "object",
                            "metadata": {"encoding": "UTF-8"}}],
        "columns": [{"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64",
                     "metadata": None},
                    {"name": None, "field_name": "__index_level_0__", "pandas_type": "unicode", "numpy_type": "object",
                     "metadata": None}],
        "attributes": {}, "creator": {"library": "pyarrow", "version": pa.__version__}, "pandas_version": "2.2.0",
    }  # fmt: skip
    table = pa.table({"task_index": pa.array(range(len(tasks)), pa.int64()), "__index_level_0__": tasks})
    return table.replace_schema_metadata({"pandas": json.dumps(pandas_meta)})


def export_lerobot(store_path: str | Path, out: str | Path, tasks: tuple[str, ...] | None = None,
                   policies: tuple[str, ...] | None = None, progress: bool = True) -> dict:  # fmt: skip
    """Write the store's episodes (of `tasks` and `policies`, all if None) as a LeRobot v3.0 dataset at `out`."""
    import av
    import pyarrow as pa
    import pyarrow.parquet as pq

    store, out = EpisodeStore(store_path), Path(out)
    if out.exists():
        raise SourceError(f"{out} exists; choose a new directory (an export never overwrites)")
    metas = [m for m in store.index()
             if (tasks is None or m.task in tasks) and (policies is None or m.policy in policies)]
    if not metas:
        raise SourceError(f"{store.root}: no episode of tasks {tasks or 'any'} and policies {policies or 'any'}")
    L = store.layout
    fps, cams = L.fps, [f"observation.images.{v}" for v in L.views]
    task_names = sorted({m.task for m in metas})
    task_index = {t: i for i, t in enumerate(task_names)}
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    encoder, codec = video_codec(L.image_size)
    try:
        containers, streams = {}, {}
        for cam in cams:
            path = tmp / "videos" / cam / "chunk-000" / "file-000.mp4"
            path.parent.mkdir(parents=True)
            containers[cam] = av.open(str(path), "w")
            s = containers[cam].add_stream(encoder, rate=round(fps) if float(fps).is_integer() else fps)
            s.width = s.height = L.image_size
            s.pix_fmt, s.options = "yuv420p", {"g": "2", "crf": "20"} | ({"preset": "8"} if codec == "av1" else {})
            streams[cam] = s
        rows, eps, labels = defaultdict(list), defaultdict(list), []
        state, action, pixels = [], [], defaultdict(list)
        index = 0
        for e, m in enumerate(tqdm(metas, desc="export lerobot", unit="ep", disable=not progress)):
            ep = store.load(m.key)
            T = len(ep.frames)
            for v, cam in enumerate(cams):
                for f in np.asarray(ep.frames[:, v]):
                    for packet in streams[cam].encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                        containers[cam].mux(packet)
                pixels[cam].append(np.asarray(ep.frames[:: max(1, T // 4), v]))
            succ_after = np.append(np.asarray(ep.success[1:]), False)  # succeeded after this row's action
            rows["observation.state"] += np.asarray(ep.proprio, np.float32).tolist()
            rows["action"] += np.asarray(ep.actions, np.float32).reshape(T, -1).tolist()
            rows["next.success"] += succ_after.tolist()
            rows["next.reward"] += succ_after.astype(np.float32).tolist()
            rows["next.done"] += (np.arange(T) == T - 1).tolist()
            rows["timestamp"] += (np.arange(T, dtype=np.float32) / np.float32(fps)).tolist()
            rows["frame_index"] += list(range(T))
            rows["episode_index"] += [e] * T
            rows["index"] += list(range(index, index + T))
            rows["task_index"] += [task_index[m.task]] * T
            state.append(np.asarray(ep.proprio))
            action.append(np.asarray(ep.actions).reshape(T, -1))
            t0 = index / fps
            for k, val in (("episode_index", e), ("tasks", [m.task]), ("length", T), ("data/chunk_index", 0),
                           ("data/file_index", 0), ("dataset_from_index", index), ("dataset_to_index", index + T)):
                eps[k].append(val)
            for cam in cams:
                for k, val in (("chunk_index", 0), ("file_index", 0), ("from_timestamp", t0),
                               ("to_timestamp", t0 + T / fps)):
                    eps[f"videos/{cam}/{k}"].append(val)
            labels.append((e, "" if m.outcome is None else int(m.outcome), m.policy, m.task))
            index += T
        for cam in cams:
            for packet in streams[cam].encode():
                containers[cam].mux(packet)
            containers[cam].close()
        S, A = L.state_dim, L.frame_skip * L.action_dim
        fixed = lambda n: pa.list_(pa.float32(), n)  # noqa: E731
        schema = pa.schema([("observation.state", fixed(S)), ("action", fixed(A)), ("next.success", pa.bool_()),
                            ("next.reward", pa.float32()), ("next.done", pa.bool_()), ("timestamp", pa.float32()),
                            ("frame_index", pa.int64()), ("episode_index", pa.int64()), ("index", pa.int64()),
                            ("task_index", pa.int64())])  # fmt: skip
        (tmp / "data" / "chunk-000").mkdir(parents=True)
        (tmp / "meta" / "episodes" / "chunk-000").mkdir(parents=True)
        pq.write_table(pa.Table.from_pydict(dict(rows), schema=schema), tmp / "data/chunk-000/file-000.parquet")
        pq.write_table(pa.table(dict(eps)), tmp / "meta/episodes/chunk-000/file-000.parquet")
        pq.write_table(_tasks_table(pa, task_names), tmp / "meta/tasks.parquet")
        scalar = lambda dtype: {"dtype": dtype, "shape": [1], "names": None}  # noqa: E731
        video_info = {"video.height": L.image_size, "video.width": L.image_size, "video.codec": codec,
                      "video.pix_fmt": "yuv420p", "video.is_depth_map": False, "video.fps": fps,
                      "video.channels": 3, "has_audio": False}  # fmt: skip
        features = {cam: {"dtype": "video", "shape": [L.image_size, L.image_size, 3],
                          "names": ["height", "width", "channels"], "info": video_info} for cam in cams}
        features |= {
            "observation.state": {"dtype": "float32", "shape": [S], "names": [f"s{i}" for i in range(S)]},
            "action": {"dtype": "float32", "shape": [A], "names": [f"a{k}.{j}" for k in range(L.frame_skip)
                                                                    for j in range(L.action_dim)]},
            "next.success": scalar("bool"), "next.reward": scalar("float32"), "next.done": scalar("bool"),
            "timestamp": scalar("float32"), "frame_index": scalar("int64"), "episode_index": scalar("int64"),
            "index": scalar("int64"), "task_index": scalar("int64"),
        }  # fmt: skip
        info = {"codebase_version": "v3.0", "robot_type": L.suite, "total_episodes": len(metas), "total_frames": index,
                "total_tasks": len(task_names), "chunks_size": 1000, "data_files_size_in_mb": 100,
                "video_files_size_in_mb": 200, "fps": fps, "splits": {"train": f"0:{len(metas)}"},
                "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
                "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
                "features": features}  # fmt: skip
        (tmp / "meta" / "info.json").write_text(json.dumps(info, indent=4) + "\n")
        stats = {"observation.state": _stats(np.concatenate(state)), "action": _stats(np.concatenate(action))}
        stats |= {cam: _image_stats(np.concatenate(pixels[cam])) for cam in cams}
        (tmp / "meta" / "stats.json").write_text(json.dumps(stats, indent=4) + "\n")
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows([("episode", "success", "policy", "task"), *labels])
        (tmp / "meta" / "wmeval_labels.csv").write_text(buf.getvalue())
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"out": str(out), "episodes": len(metas), "frames": index, "tasks": task_names, "codec": codec}
