"""`wmeval import`: robomimic HDF5 and LeRobot datasets into the episode store, written by the tests."""

from __future__ import annotations

import json

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
    assert main(["table", str(out)]) == 0
    assert "1 episode(s) of unknown outcome are not counted" in capsys.readouterr().out
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

    from wmeval.model.world_model import _masked_bce, load_world_model
    from wmeval.train.world_model import WMTrainConfig, train_world_model

    src = write_robomimic(tmp_path / "demo.hdf5", lengths=(14, 13, 12, 15, 14, 13))
    labels = tmp_path / "labels.csv"
    labels.write_text("episode,success\n0,1\n1,0\n2,\n3,\n")  # 2, 3 unknown; 4, 5 from the rewards
    out = tmp_path / "store"
    assert main(["import", "hdf5", str(src), "--out", str(out), "--labels", str(labels), "--frame-skip", "2",
                 "--image-size", "16", "--no-progress"]) == 0
    store = EpisodeStore(out)
    assert [store.meta(k).outcome for k in store.keys()] == [True, False, None, None, True, False]
    cfg = WMTrainConfig(store=str(out), out=str(tmp_path / "wm"), preset="tiny", window=4, codec_steps=4,
                        codec_batch=4, steps=4, batch_size=4, eval_every=2, save_every=2, warmup=1, device="cpu",
                        val_fraction=0.2)
    _, meta = load_world_model(train_world_model(cfg, progress=False))
    assert meta["step"] == 4
    logits, labels_t = torch.zeros(2, 3), torch.tensor([[1.0, 0.0, float("nan")], [float("nan")] * 3])
    w = torch.ones(2, 3)
    loss = _masked_bce(logits, labels_t, w)
    assert torch.isclose(loss, torch.log(torch.tensor(2.0)))  # the mean over the two known labels only
