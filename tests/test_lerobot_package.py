"""Interop with the `lerobot` package itself: skipped where it is not installed (CI: see README, "Your own
robot", for why no CI-sized environment holds it beside this torch). In an environment that has it:

    HF_HUB_OFFLINE=1 PYTHONPATH=src python -m pytest tests/test_lerobot_package.py
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import FAKE_LAYOUT

from wmeval.cli import main
from wmeval.data.store import EpisodeStore

lerobot = pytest.importorskip("lerobot")


def test_a_dataset_written_by_lerobot_imports(tmp_path):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    features = {
        "observation.images.cam": {"dtype": "video", "shape": (64, 64, 3), "names": ["height", "width", "channels"]},
        "observation.state": {"dtype": "float32", "shape": (4,), "names": None},
        "action": {"dtype": "float32", "shape": (4,), "names": None},
        "next.success": {"dtype": "bool", "shape": (1,), "names": None},
    }
    ds = LeRobotDataset.create(repo_id="local/wmeval-test", root=tmp_path / "ds", fps=10, features=features,
                               use_videos=True)  # fmt: skip
    for e, n in enumerate((12, 9)):
        for i in range(n):
            img = np.full((64, 64, 3), (i * 9 % 240 + 8, 128, 60), np.uint8)
            ds.add_frame({"observation.images.cam": img, "observation.state": np.full(4, i, np.float32),
                          "action": np.full(4, e + 0.5, np.float32), "next.success": np.array([i == n - 1 and e == 0]),
                          "task": "open the drawer"})  # fmt: skip
        ds.save_episode()
    ds.finalize()
    out = tmp_path / "store"
    assert main(["import", "lerobot", str(tmp_path / "ds"), "--out", str(out), "--frame-skip", "2",
                 "--no-progress"]) == 0
    store = EpisodeStore(out)
    a, b = (store.load(k) for k in store)
    assert a.meta.outcome is True and b.meta.outcome is False and a.meta.task == "open-the-drawer"
    np.testing.assert_array_equal(a.proprio[:, 0], np.arange(0, 12, 2))
    assert (a.actions == 0.5).all() and (b.actions == 1.5).all()
    assert np.abs(a.frames[:, 0, 32, 32, 0].astype(int) - (np.arange(0, 12, 2) * 9 % 240 + 8)).max() <= 6


def test_export_loads_in_lerobot_and_a_trained_act_judges_in_imagination(world, tmp_path):
    import torch
    from lerobot.datasets.factory import resolve_delta_timestamps
    from lerobot.datasets.lerobot_dataset import LeRobotDataset, LeRobotDatasetMetadata
    from lerobot.policies.act.configuration_act import ACTConfig
    from lerobot.policies.factory import make_policy, make_pre_post_processors

    from wmeval.eval.imagination import Job, imagine, recorded_starts
    from wmeval.model.world_model import load_world_model
    from wmeval.zoo import load_zoo

    ds_dir = tmp_path / "ds"
    assert main(["export", "lerobot", str(world["store"].root), str(ds_dir), "--no-progress"]) == 0
    meta = LeRobotDatasetMetadata("local/wmeval", root=ds_dir)
    assert meta.total_episodes == len(world["store"]) and set(meta.stats) >= {"observation.state", "action"}
    cfg = ACTConfig(device="cpu", chunk_size=2, n_action_steps=1, dim_model=32, n_heads=2, dim_feedforward=64,
                    n_encoder_layers=1, n_decoder_layers=1, n_vae_encoder_layers=1, latent_dim=8,
                    pretrained_backbone_weights=None)  # fmt: skip
    policy = make_policy(cfg, ds_meta=meta)
    pre, post = make_pre_post_processors(cfg, dataset_stats=meta.stats)
    ds = LeRobotDataset("local/wmeval", root=ds_dir, delta_timestamps=resolve_delta_timestamps(cfg, meta))
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4, shuffle=True)))
    loss, _ = policy.forward(pre(batch))
    loss.backward()
    for x in (policy, pre, post):
        x.save_pretrained(tmp_path / "act")
    zoo = tmp_path / "zoo.toml"
    zoo.write_text('[zoo]\nname = "lr"\nsuite = "metaworld"\n\n[[policy]]\nname = "act"\nbase = "lerobot"\npath = "act"\n'
                   '\n[[policy]]\nname = "act-noisy"\nbase = "lerobot"\npath = "act"\n'
                   'degrade = [{ kind = "noise", std = 0.3 }]\n')  # fmt: skip
    model, _ = load_world_model(world["model"])
    starts = recorded_starts(world["store"], "reach", [100, 101])
    jobs = [Job(spec, "reach", s) for spec in load_zoo(zoo).policies for s in starts]
    eps = imagine(model, FAKE_LAYOUT, jobs, batch_size=4, progress=False)
    assert [e.error for e in eps] == [None] * 4 and all(np.isfinite(e.values).all() for e in eps)
    # ACT predicts chunks from the current frame: one shared object, asked for the whole batch at once, and
    # the same episodes as one at a time
    from wmeval.policies.external import LeRobotChunker, LeRobotPolicy

    chunker = load_zoo(zoo).policy("act").build("reach", FAKE_LAYOUT)
    assert isinstance(chunker, LeRobotChunker)
    queued = LeRobotPolicy(str(tmp_path / "act"), "reach", FAKE_LAYOUT)  # LeRobot's own select_action
    queued.reset(0)
    from wmeval.types import Observation

    o = Observation(starts[0].images, starts[0].state)
    np.testing.assert_allclose(chunker.act(o), queued.act(o), atol=1e-5)
    alone = imagine(model, FAKE_LAYOUT, jobs, batch_size=1, progress=False)
    for a, b in zip(eps, alone, strict=True):
        np.testing.assert_allclose(a.values, b.values, atol=1e-5)
