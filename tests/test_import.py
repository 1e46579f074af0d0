"""`wmeval import`: robomimic HDF5 and LeRobot datasets into the episode store, written by the tests."""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np
import pytest

from wmeval.cli import main
from wmeval.data.check import check_store
from wmeval.data.importers import SourceEpisode, SourceError, chunk, read_labels, resize, safe_name
from wmeval.data.store import EpisodeStore

h5py = pytest.importorskip("h5py")


def frame_at(step: int, size: int = 32) -> np.ndarray:
    """A frame whose pixels encode its step (red channel), so alignment can be read back."""
    f = np.zeros((size, size, 3), np.uint8)
    f[..., 0] = step * 5 % 256
    f[..., 1] = 100
    return f


def write_robomimic(path, lengths=(9, 13, 6), rewards="sparse", fps=20, nan_in=None):
    """A robomimic-layout file: data/demo_i with obs/agentview_image, obs/robot0_eef_pos, obs/object,
    actions (action i = i + 0.5 in every dim), rewards (1 at the last step of even demos), dones."""
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        data.attrs["env_args"] = json.dumps({"env_name": "Lift", "env_kwargs": {"control_freq": fps}})
        for i, n in enumerate(lengths):
            g = data.create_group(f"demo_{i}")
            steps = np.arange(n)
            g["obs/agentview_image"] = np.stack([frame_at(s) for s in steps])
            g["obs/robot0_eef_pos"] = np.stack([steps, -steps, 2 * steps], 1).astype(np.float64)
            g["obs/robot0_gripper_qpos"] = np.stack([steps * 0.1, steps * 0.2], 1)
            g["obs/object"] = np.ones((n, 10))
            act = np.repeat((steps + 0.5)[:, None], 7, 1).astype(np.float32)
            if nan_in == i:
                act[3, 2] = np.nan
            g["actions"] = act
            r = np.zeros(n)
            if i % 2 == 0:
                r[-1] = 1.0
            if rewards == "dense":
                r = np.linspace(0, 0.7, n)
            g["rewards"] = r
            g["dones"] = (steps == n - 1).astype(np.uint8)
    return path


def test_hdf5_import_aligns_frames_actions_proprio_and_success(tmp_path):
    src = write_robomimic(tmp_path / "demo.hdf5")
    out = tmp_path / "store"
    assert main(["import", "hdf5", str(src), "--out", str(out), "--frame-skip", "4", "--image-size", "16",
                 "--no-progress"]) == 0
    store = EpisodeStore(out)
    L = store.layout
    assert (L.views, L.image_size, L.frame_skip, L.action_dim, L.state_dim, L.control_hz) == (
        ("agentview_image",), 16, 4, 7, 5, 20.0)
    assert L.horizon == 3  # the longest episode: 13 steps, frames at 0, 4, 8, 12
    keys = store.keys()
    assert keys == ["demo/demonstrations/000000", "demo/demonstrations/000001", "demo/demonstrations/000002"]
    ep = store.load("demo/demonstrations/000000")  # 9 steps: frames at steps 0, 4, 8
    assert ep.frames.shape == (3, 1, 16, 16, 3)
    assert ep.frames[:, 0, 5, 5, 0].tolist() == [0, 20, 40]  # the red channel encodes the step
    # actions[t] = the 4 actions after frame t; the last chunk padded with the episode's last action
    assert ep.actions[:, :, 0].tolist() == [[0.5, 1.5, 2.5, 3.5], [4.5, 5.5, 6.5, 7.5], [8.5, 8.5, 8.5, 8.5]]
    # proprio: eef_pos (3) + gripper_qpos (2), `object` left out, at the frames' steps
    np.testing.assert_allclose(ep.proprio[:, :3], [[0, 0, 0], [4, -4, 8], [8, -8, 16]])
    # success after the last action (step 8) is seen at the last frame
    assert ep.success.tolist() == [False, False, True] and ep.meta.outcome is True
    assert store.meta("demo/demonstrations/000001").outcome is False
    assert ep.meta.start["params"]["episode"] == 0 and ep.meta.policy_spec["base"] == "imported"
    assert check_store(out, progress=False).ok


def test_import_resumes_and_adds_nothing_twice(tmp_path, capsys):
    src = write_robomimic(tmp_path / "demo.hdf5")
    out = tmp_path / "store"
    assert main(["import", "hdf5", str(src), "--out", str(out), "--limit", "2", "--no-progress"]) == 0
    assert len(EpisodeStore(out)) == 2
    before = {k: EpisodeStore(out).meta(k).digest for k in EpisodeStore(out)}
    assert main(["import", "hdf5", str(src), "--out", str(out), "--no-progress"]) == 0
    assert "1 imported" in capsys.readouterr().out
    store = EpisodeStore(out)
    assert len(store) == 3 and all(store.meta(k).digest == d for k, d in before.items())


def test_labels_csv_names_policies_and_outcomes_and_unknown_outcomes(tmp_path, capsys):
    src = write_robomimic(tmp_path / "demo.hdf5", rewards="dense")  # dense rewards say nothing of success
    labels = tmp_path / "labels.csv"
    labels.write_text("episode,success,policy\n0,1,ckpt-a\n1,0,ckpt-b\n2,,ckpt-b\n")
    out = tmp_path / "store"
    assert main(["import", "hdf5", str(src), "--out", str(out), "--labels", str(labels), "--task", "lift",
                 "--no-progress"]) == 0
    store = EpisodeStore(out)
    outcomes = {k: store.meta(k).outcome for k in store}
    assert outcomes == {"lift/ckpt-a/000000": True, "lift/ckpt-b/000001": False, "lift/ckpt-b/000002": None}
    assert "1 of unknown outcome" in capsys.readouterr().out
    assert main(["table", str(out), "--csv", str(tmp_path / "trials.csv")]) == 0
    assert "1 episode(s) of unknown outcome are not counted" in capsys.readouterr().out
    from wmeval.align.truth import real_outcomes_from_csv

    assert real_outcomes_from_csv(tmp_path / "trials.csv") == {("ckpt-a", "lift"): [True], ("ckpt-b", "lift"): [False]}
    assert check_store(out, progress=False).ok


def test_bad_episode_gets_one_error_and_the_others_are_imported(tmp_path, capsys):
    src = write_robomimic(tmp_path / "demo.hdf5", nan_in=1)
    out = tmp_path / "store"
    assert main(["import", "hdf5", str(src), "--out", str(out), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "demo.hdf5:data/demo_1" in err and "NaN" in err and "step(s) [3]" in err
    store = EpisodeStore(out)
    assert len(store) == 2 and not store.temp_files()


def test_hdf5_errors_name_what_and_where(tmp_path, capsys):
    src = write_robomimic(tmp_path / "demo.hdf5")
    out = str(tmp_path / "store")
    assert main(["import", "hdf5", str(src), "--out", out, "--cameras", "wrist"]) == 2
    assert "camera(s) ['wrist'] not found; image datasets there: agentview_image" in capsys.readouterr().err
    assert main(["import", "hdf5", str(src), "--out", out, "--state-keys", "joint_pos"]) == 2
    assert "robot0_eef_pos" in capsys.readouterr().err
    assert main(["import", "hdf5", str(tmp_path / "missing.hdf5"), "--out", out]) == 2
    assert "missing.hdf5" in capsys.readouterr().err
    labels = tmp_path / "labels.csv"
    labels.write_text("episode,success\n0,maybe\n")
    assert main(["import", "hdf5", str(src), "--out", out, "--labels", str(labels)]) == 2
    assert "labels.csv, line 2: success 'maybe'" in capsys.readouterr().err
    assert not (tmp_path / "store").exists() or not EpisodeStore(out).keys()


def test_chunk_alignment_by_hand():
    n, k = 7, 3  # frames at steps 0, 3, 6
    ep = SourceEpisode(lambda cam, steps: np.stack([frame_at(s, 8) for s in steps]),
                       np.arange(n, dtype=np.float32)[:, None], np.arange(n, dtype=np.float32)[:, None], None)
    success = np.zeros(n, bool)
    success[2] = True  # after action 2 (state 3): seen at frame 1 (step 3)
    frames, actions, proprio, flags = chunk(ep, ("cam",), k, 8, success)
    assert actions[:, :, 0].tolist() == [[0, 1, 2], [3, 4, 5], [6, 6, 6]]
    assert proprio[:, 0].tolist() == [0, 3, 6] and flags.tolist() == [False, True, False]
    success[:] = False
    success[6] = True  # after the last action: counted at the last frame
    assert chunk(ep, ("cam",), k, 8, success)[3].tolist() == [False, False, True]


def test_resize_and_names():
    x = np.full((2, 48, 64, 3), 200, np.uint8)
    assert resize(x, 16).shape == (2, 16, 16, 3) and (resize(x, 16) == 200).all()
    assert safe_name("Pick up the red cube.") == "pick-up-the-red-cube"
    assert safe_name("  ") == "task"


def test_labels_csv_errors(tmp_path):
    p = tmp_path / "l.csv"
    p.write_text("ep,success\n0,1\n")
    with pytest.raises(SourceError, match="`episode` column"):
        read_labels(p)
    p.write_text("episode,success\n0,1\n0,0\n")
    with pytest.raises(SourceError, match="line 3: episode 0 is labelled twice"):
        read_labels(p)
    p.write_text("episode,policy\n0,../x\n")
    with pytest.raises(SourceError, match="line 2"):
        read_labels(p)
    p.write_text("episode,success,task\n4,yes,lift\n5,,\n")
    assert read_labels(p) == {4: {"success": True, "task": "lift"}, 5: {"success": None}}
    p.write_text("episode,policy\n4,a\n")
    assert read_labels(p) == {4: {"policy": "a"}}  # no success column: the source's success stands


def test_world_model_trains_on_an_imported_store_with_unknown_outcomes(tmp_path):
    """Imported episodes train the world model; those of unknown outcome carry NaN value labels, which the
    loss skips (a NaN would otherwise stop training at its finiteness check)."""
    import torch

    from wmeval.model.value import masked_bce
    from wmeval.model.world_model import load_world_model
    from wmeval.train.world_model import WMTrainConfig, train_world_model

    src = write_robomimic(tmp_path / "demo.hdf5", lengths=(14, 13, 12, 15, 14, 13))
    labels = tmp_path / "labels.csv"
    labels.write_text("episode,success\n0,1\n1,0\n2,\n3,\n")  # 2, 3 unknown; 4, 5 from the rewards
    out = tmp_path / "store"
    assert main(["import", "hdf5", str(src), "--out", str(out), "--labels", str(labels), "--frame-skip", "2",
                 "--image-size", "16", "--no-progress"]) == 0
    store = EpisodeStore(out)
    assert [store.meta(k).outcome for k in store] == [True, False, None, None, True, False]
    cfg = WMTrainConfig(store=str(out), out=str(tmp_path / "wm"), preset="tiny", window=4, codec_steps=4,
                        codec_batch=4, steps=4, batch_size=4, eval_every=2, save_every=2, warmup=1, device="cpu",
                        val_fraction=0.2)
    _, meta = load_world_model(train_world_model(cfg, progress=False))
    assert meta["step"] == 4
    logits, labels_t = torch.zeros(2, 3), torch.tensor([[1.0, 0.0, float("nan")], [float("nan")] * 3])
    w = torch.ones(2, 3)
    loss = masked_bce(logits, labels_t, w)
    assert torch.isclose(loss, torch.log(torch.tensor(2.0)))  # the mean over the two known labels only


# ---- LeRobot datasets, laid out as the format documents (codebase v3.0), written with pyarrow and PyAV ----


def encode_mp4(path, frames, fps, codec="libsvtav1"):
    """Frames (uint8 [N, H, W, 3]) as one mp4 stream, yuv420p, as LeRobot writes its videos."""
    av = pytest.importorskip("av")
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        if codec == "libsvtav1":
            stream.options = {"crf": "20", "preset": "12"}  # LeRobot's default codec, fast preset
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def flat_frame(step: int, size: int = 64) -> np.ndarray:
    """A frame of one colour that encodes its step: survives lossy video coding to within a few levels."""
    f = np.empty((size, size, 3), np.uint8)
    f[...] = (step * 9 % 240 + 8, 128, 60)
    return f


def write_lerobot_v3(root, lengths=(10, 7, 12), fps=10, success=True, tasks=("Open the drawer.",)):
    """A LeRobot v3.0 dataset: meta/info.json, meta/tasks.parquet, meta/episodes/chunk-000/file-000.parquet,
    data/chunk-000/file-000.parquet (all episodes), videos/observation.images.top/chunk-000/file-000.mp4 (all
    episodes concatenated; each episode's from_timestamp in meta/episodes)."""
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    cam = "observation.images.top"
    features = {
        cam: {"dtype": "video", "shape": [64, 64, 3], "names": ["height", "width", "channels"],
              "info": {"video.fps": fps, "video.codec": "av1", "video.pix_fmt": "yuv420p"}},
        "observation.state": {"dtype": "float32", "shape": [3], "names": ["x", "y", "z"]},
        "action": {"dtype": "float32", "shape": [2], "names": ["a0", "a1"]},
        "timestamp": {"dtype": "float32", "shape": [1], "names": None},
        "frame_index": {"dtype": "int64", "shape": [1], "names": None},
        "episode_index": {"dtype": "int64", "shape": [1], "names": None},
        "index": {"dtype": "int64", "shape": [1], "names": None},
        "task_index": {"dtype": "int64", "shape": [1], "names": None},
    }
    if success:
        features["next.success"] = {"dtype": "bool", "shape": [1], "names": None}
    info = {"codebase_version": "v3.0", "robot_type": "test", "fps": fps, "total_episodes": len(lengths),
            "total_frames": sum(lengths), "total_tasks": len(tasks), "chunks_size": 1000,
            "data_files_size_in_mb": 100, "video_files_size_in_mb": 500, "splits": {"train": f"0:{len(lengths)}"},
            "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
            "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
            "features": features}
    (root / "meta" / "episodes" / "chunk-000").mkdir(parents=True)
    (root / "data" / "chunk-000").mkdir(parents=True)
    (root / "meta" / "info.json").write_text(json.dumps(info, indent=2))
    pq.write_table(pa.table({"task_index": list(range(len(tasks))), "task": list(tasks)}), root / "meta" / "tasks.parquet")
    rows, eps, frames, index, t0 = defaultdict(list), defaultdict(list), [], 0, 0.0
    for e, n in enumerate(lengths):
        for i in range(n):
            rows["observation.state"].append([float(i), -float(i), float(e)])
            rows["action"].append([i + 0.5, float(e)])
            rows["timestamp"].append(i / fps)
            rows["frame_index"].append(i)
            rows["episode_index"].append(e)
            rows["index"].append(index + i)
            rows["task_index"].append(e % len(tasks))
            if success:
                rows["next.success"].append(bool(e % 2 == 0 and i == n - 1))
            frames.append(flat_frame(i))
        for k, v in (("episode_index", e), ("tasks", [tasks[e % len(tasks)]]), ("length", n),
                     ("data/chunk_index", 0), ("data/file_index", 0), ("dataset_from_index", index),
                     ("dataset_to_index", index + n), (f"videos/{cam}/chunk_index", 0),
                     (f"videos/{cam}/file_index", 0), (f"videos/{cam}/from_timestamp", t0),
                     (f"videos/{cam}/to_timestamp", t0 + n / fps)):
            eps[k].append(v)
        index, t0 = index + n, t0 + n / fps
    pq.write_table(pa.table(dict(rows)), root / "data" / "chunk-000" / "file-000.parquet")
    pq.write_table(pa.table(dict(eps)), root / "meta" / "episodes" / "chunk-000" / "file-000.parquet")
    encode_mp4(root / "videos" / cam / "chunk-000" / "file-000.mp4", np.stack(frames), fps)
    return root


def test_lerobot_v3_import_finds_each_episode_in_the_concatenated_files(tmp_path):
    src = write_lerobot_v3(tmp_path / "ds")
    out = tmp_path / "store"
    assert main(["import", "lerobot", str(src), "--out", str(out), "--frame-skip", "3", "--image-size", "32",
                 "--no-progress"]) == 0
    store = EpisodeStore(out)
    L = store.layout
    assert (L.views, L.frame_skip, L.state_dim, L.action_dim, L.control_hz, L.image_size) == (
        ("top",), 3, 3, 2, 10.0, 32)
    assert store.keys() == [f"open-the-drawer/demonstrations/00000{i}" for i in range(3)]
    for e, n in enumerate((10, 7, 12)):
        ep = store.load(f"open-the-drawer/demonstrations/00000{e}")
        steps = np.arange(0, n, 3)
        red = ep.frames[:, 0, 16, 16, 0].astype(int)
        assert np.abs(red - (steps * 9 % 240 + 8)).max() <= 6, (e, red)  # the right frames, lossy coded
        np.testing.assert_allclose(ep.proprio, [[s, -s, e] for s in steps])
        assert ep.actions[0, :, 0].tolist() == [0.5, 1.5, 2.5] and (ep.actions[:, :, 1] == e).all()
        assert ep.meta.outcome is (e % 2 == 0) and ep.success[-1] == (e % 2 == 0)
    assert check_store(out, progress=False).ok


def test_lerobot_without_success_column_is_unknown_unless_labelled(tmp_path, capsys):
    src = write_lerobot_v3(tmp_path / "ds", lengths=(5, 6), success=False)
    labels = tmp_path / "labels.csv"
    labels.write_text("episode,success,policy\n1,1,ckpt-2\n")
    out = tmp_path / "store"
    assert main(["import", "lerobot", str(src), "--out", str(out), "--labels", str(labels), "--no-progress"]) == 0
    assert "success: unknown" in capsys.readouterr().out
    store = EpisodeStore(out)
    assert {k: store.meta(k).outcome for k in store} == {
        "open-the-drawer/demonstrations/000000": None, "open-the-drawer/ckpt-2/000001": True}


def test_lerobot_errors_name_the_file_and_the_fix(tmp_path, capsys):
    src = write_lerobot_v3(tmp_path / "ds", lengths=(5, 6))
    out = str(tmp_path / "store")
    assert main(["import", "lerobot", str(tmp_path), "--out", out]) == 2
    assert "not a LeRobot dataset (no meta/info.json)" in capsys.readouterr().err
    assert main(["import", "lerobot", str(src), "--out", out, "--state-keys", "observation.joints"]) == 2
    assert "no numeric feature 'observation.joints' (--state-keys)" in capsys.readouterr().err
    (src / "videos" / "observation.images.top" / "chunk-000" / "file-000.mp4").write_bytes(b"not a video")
    assert main(["import", "lerobot", str(src), "--out", out, "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "episode 0" in err and "file-000.mp4: cannot decode" in err
    assert len(EpisodeStore(out)) == 0


def test_export_lerobot_round_trips_through_import(tmp_path, capsys):
    """Store -> LeRobot v3.0 (export) -> store (import with the exported labels): proprio, actions, success
    flags, outcomes (unknown ones too), policies and tasks come back; frames within video coding error."""
    src = write_robomimic(tmp_path / "demo.hdf5", lengths=(9, 13, 6), rewards="dense")
    labels = tmp_path / "labels.csv"
    labels.write_text("episode,success,policy\n0,1,ckpt-a\n1,0,ckpt-b\n2,,ckpt-b\n")
    first = tmp_path / "store"
    assert main(["import", "hdf5", str(src), "--out", str(first), "--labels", str(labels), "--frame-skip", "2",
                 "--image-size", "64", "--task", "lift", "--no-progress"]) == 0
    ds = tmp_path / "ds"
    assert main(["export", "lerobot", str(first), str(ds), "--no-progress"]) == 0
    info = json.loads((ds / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == 10.0
    assert info["features"]["action"]["shape"] == [14]  # a chunk of 2 control actions of 7 dims per row
    assert set(json.loads((ds / "meta" / "stats.json").read_text())) == {"observation.state", "action",
                                                                        "observation.images.agentview_image"}
    back = tmp_path / "back"
    assert main(["import", "lerobot", str(ds), "--out", str(back), "--labels", str(ds / "meta" / "wmeval_labels.csv"),
                 "--no-progress"]) == 0
    a, b = EpisodeStore(first), EpisodeStore(back)
    assert a.keys() == b.keys()
    assert b.layout.frame_skip == 1 and b.layout.action_dim == 14 and b.layout.control_hz == 10.0
    chunked = tmp_path / "chunked"  # each row's action is 2 control actions: the first store's layout again
    assert main(["import", "lerobot", str(ds), "--out", str(chunked), "--action-chunk", "2", "--no-progress",
                 "--labels", str(ds / "meta" / "wmeval_labels.csv")]) == 0
    c = EpisodeStore(chunked)
    assert c.layout == a.layout
    for k in a:
        x, y, z = a.load(k), b.load(k), c.load(k)
        assert x.meta.outcome is y.meta.outcome is z.meta.outcome and x.success.tolist() == y.success.tolist()
        np.testing.assert_array_equal(x.proprio, y.proprio)
        np.testing.assert_array_equal(x.actions.reshape(len(x.actions), -1), y.actions[:, 0])
        np.testing.assert_array_equal(x.actions, z.actions)
        assert np.abs(x.frames.astype(int) - y.frames.astype(int)).mean() < 3
    assert main(["export", "lerobot", str(first), str(ds)]) == 2
    assert "exists" in capsys.readouterr().err


def test_lerobot_v2_layout_one_file_per_episode(tmp_path):
    """codebase v2.x: data/chunk-000/episode_000000.parquet, videos/chunk-000/<camera>/episode_000000.mp4,
    meta/episodes.jsonl; the video of an episode starts at 0."""
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    root, cam, fps = tmp_path / "ds", "observation.images.top", 10
    features = {cam: {"dtype": "video", "shape": [64, 64, 3], "names": ["height", "width", "channels"]},
                "observation.state": {"dtype": "float32", "shape": [2], "names": None},
                "action": {"dtype": "float32", "shape": [2], "names": None},
                "next.reward": {"dtype": "float32", "shape": [1], "names": None},
                "timestamp": {"dtype": "float32", "shape": [1], "names": None},
                "frame_index": {"dtype": "int64", "shape": [1], "names": None},
                "episode_index": {"dtype": "int64", "shape": [1], "names": None}}  # fmt: skip
    (root / "meta").mkdir(parents=True)
    (root / "meta" / "info.json").write_text(json.dumps({
        "codebase_version": "v2.1", "fps": fps, "chunks_size": 1000, "features": features,
        "data_path": "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
        "video_path": "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"}))
    lines = []
    for e, n in enumerate((6, 8)):
        i = np.arange(n)
        (root / "data" / "chunk-000").mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({"observation.state": [[float(x), 1.0] for x in i], "action": [[0.5, e] for _ in i],
                                 "next.reward": [float(e == 1 and x == n - 1) for x in i], "timestamp": i / fps,
                                 "frame_index": i, "episode_index": [e] * n}),
                       root / "data" / "chunk-000" / f"episode_{e:06d}.parquet")  # fmt: skip
        encode_mp4(root / "videos" / "chunk-000" / cam / f"episode_{e:06d}.mp4", np.stack([flat_frame(x) for x in i]),
                   fps, codec="libx264")  # fmt: skip
        lines.append(json.dumps({"episode_index": e, "tasks": ["Push the block"], "length": n}))
    (root / "meta" / "episodes.jsonl").write_text("\n".join(lines) + "\n")
    out = tmp_path / "store"
    assert main(["import", "lerobot", str(root), "--out", str(out), "--frame-skip", "2", "--no-progress"]) == 0
    store = EpisodeStore(out)
    a, b = (store.load(k) for k in store)
    assert a.meta.key == "push-the-block/demonstrations/000000" and (a.meta.outcome, b.meta.outcome) == (False, True)
    np.testing.assert_array_equal(b.proprio[:, 0], [0, 2, 4, 6])
    assert (b.actions[..., 1] == 1).all() and (a.actions[..., 1] == 0).all()
    assert np.abs(b.frames[:, 0, 32, 32, 0].astype(int) - (np.arange(0, 8, 2) * 9 % 240 + 8)).max() <= 6
