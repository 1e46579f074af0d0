"""`wmeval train` end to end at toy size: phases, save/load, exact resume, overfitting, inference, DDP."""

import json
import os
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import make_fake_store
from safetensors.torch import load_file

from wmeval.data.windows import WindowSampler
from wmeval.model.rollout import predict
from wmeval.model.world_model import WorldModel, load_world_model, preset
from wmeval.train.world_model import WMTrainConfig, train_world_model


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return make_fake_store(tmp_path_factory.mktemp("wm") / "s", 10)


def cfg(store, out, **kw):
    base = dict(
        store=str(store.root),
        out=str(out),
        preset="tiny",
        window=4,
        codec_steps=6,
        codec_batch=8,
        steps=6,
        batch_size=4,
        eval_every=3,
        save_every=3,
        warmup=2,
        device="cpu",
        val_fraction=0.2,
    )
    return WMTrainConfig(**{**base, **kw})


def test_train_save_load_and_predict(tmp_path, store):
    path = train_world_model(cfg(store, tmp_path / "run"), progress=False)
    assert (tmp_path / "run" / "codec" / "step_000006" / "model.safetensors").is_file()
    assert (tmp_path / "run" / "latents.safetensors").is_file()
    model, meta = load_world_model(path)
    again, _ = load_world_model(path)
    assert meta["step"] == 6 and meta["layout"]["image_size"] == 16 and meta["data"]["val_episodes"] >= 1
    ep = store.load(store.keys()[0])
    frames = torch.from_numpy(np.array(ep.frames))[None, :2]
    proprio = torch.from_numpy(np.array(ep.proprio))[None, :2]
    actions = torch.from_numpy(np.array(ep.actions))[None, :5]  # 1 context transition + 4 future chunks
    a = predict(model, frames, proprio, actions, torch.Generator().manual_seed(0))
    b = predict(again, frames, proprio, actions, torch.Generator().manual_seed(0))
    assert a.frames.shape == (1, 4, 1, 16, 16, 3) and a.frames.dtype == torch.uint8
    assert a.proprio.shape == (1, 4, 4) and ((a.value >= 0) & (a.value <= 1)).all()
    assert torch.equal(a.frames, b.frames) and torch.equal(a.value, b.value)  # save -> load is exact


@pytest.mark.parametrize("teacher_forcing", [False, True])
def test_success_head_and_residual_train_and_roll_out(tmp_path, store, teacher_forcing):
    run = cfg(store, tmp_path / "run", success_head=True, residual=True, prev_noise=0.2, teacher_forcing=teacher_forcing,
              patch=1)  # fmt: skip
    model, meta = load_world_model(train_world_model(run, progress=False))
    assert model.cfg.dynamics.success_head and model.cfg.dynamics.residual and model.cfg.prev_noise == 0.2
    d = model.cfg.dynamics  # patch 1: one token per latent cell
    assert d.patch == 1 and d.tokens_per_frame == d.grid**2 + 1
    assert model.cfg.teacher_forcing == teacher_forcing
    assert "success_bce" in meta["metrics"]
    ep = store.load(store.keys()[0])
    frames, proprio = (torch.from_numpy(np.array(x))[None, :2] for x in (ep.frames, ep.proprio))
    a = predict(model, frames, proprio, torch.from_numpy(np.array(ep.actions))[None, :5], torch.Generator().manual_seed(0))
    assert a.frames.shape == (1, 4, 1, 16, 16, 3) and ((a.value >= 0) & (a.value <= 1)).all()


def test_resume_matches_uninterrupted(tmp_path, store):
    straight = train_world_model(cfg(store, tmp_path / "a"), progress=False)
    train_world_model(cfg(store, tmp_path / "b"), progress=False)
    shutil.rmtree(tmp_path / "b" / "dynamics" / "step_000006")  # killed after the step-3 checkpoint
    resumed = train_world_model(cfg(store, tmp_path / "b"), progress=False)
    wa, wb = load_file(straight / "train.safetensors"), load_file(resumed / "train.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    with pytest.raises(ValueError, match=r"other settings .*'lr'"):
        train_world_model(cfg(store, tmp_path / "b", lr=1e-2), progress=False)
    # a run saved before a setting existed resumes with it at its default, tuples included (JSON lists)
    for saved in (tmp_path / "b" / "dynamics").glob("step_*/config.json"):
        meta = json.loads(saved.read_text())
        del meta["train"]["train_policies"]
        saved.write_text(json.dumps(meta))
    assert train_world_model(cfg(store, tmp_path / "b"), progress=False) == resumed


def test_checkpoints_saved_for_time_bound_what_an_interrupted_run_loses(tmp_path, store, monkeypatch):
    import wmeval.train.world_model as wm_train

    lr_at = wm_train.lr_at
    # save_minutes ~0: every step saves; a checkpoint saved for time alone (its step not a multiple of
    # save_every) is removed once the next one is written: the run keeps its regular ones and its last
    quick = dict(save_every=4, save_minutes=1e-9)
    straight = train_world_model(cfg(store, tmp_path / "a", **quick), progress=False)
    assert sorted(d.name for d in (tmp_path / "a" / "dynamics").glob("step_*")) == ["step_000004", "step_000006"]

    def killed(step, c):
        if step == 5:
            raise KeyboardInterrupt  # during the sixth step: five are done, the fifth saved for time
        return lr_at(step, c)

    monkeypatch.setattr(wm_train, "lr_at", killed)
    with pytest.raises(KeyboardInterrupt):
        train_world_model(cfg(store, tmp_path / "b", **quick), progress=False)
    assert sorted(d.name for d in (tmp_path / "b" / "dynamics").glob("step_*")) == ["step_000004", "step_000005"]
    ran = []
    monkeypatch.setattr(wm_train, "lr_at", lambda step, c: ran.append(step) or lr_at(step, c))
    resumed = train_world_model(cfg(store, tmp_path / "b", **quick), progress=False)
    assert set(ran) == {5}  # from the checkpoint saved for time: only the sixth step again
    wa, wb = load_file(straight / "train.safetensors"), load_file(resumed / "train.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    with pytest.raises(ValueError, match="save_minutes must be > 0"):
        cfg(store, tmp_path / "c", save_minutes=0)


def encoded(wm, store, keys, tmp_path):
    """`keys` through the model's codec, as the latent cache training reads."""
    from wmeval.data.windows import EpisodeArrays
    from wmeval.train.codec import encode_episodes

    encode_episodes(wm.codec, store, keys, tmp_path / "latents.safetensors", {}, "cpu", "linear", progress=False)
    return EpisodeArrays.load(tmp_path / "latents.safetensors")[0]


@pytest.mark.parametrize("teacher_forcing", [False, True])
def test_tiny_model_overfits_one_batch(store, tmp_path, teacher_forcing):
    torch.manual_seed(0)
    wm = WorldModel(replace(preset("tiny", 16, 1, 4, 4, 2), teacher_forcing=teacher_forcing))
    arrays = encoded(wm, store, store.keys()[:2], tmp_path)
    w = WindowSampler(arrays, 4).batch(0, 4)
    opt = torch.optim.Adam(wm.dynamics.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(0)
    first = None
    for _ in range(150):
        loss, m = wm.loss(w, torch.Generator().manual_seed(0))  # same noise: a fixed regression target
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first or m["loss"].item()
    assert m["loss"].item() < 0.1 * first, (first, m)
    del g


def test_too_short_episodes_say_how_many_frames_are_needed(tmp_path, store):
    from wmeval.data.windows import check_long_enough

    wm = WorldModel(preset("tiny", 16, 1, 4, 4, 2))
    arrays = encoded(wm, store, store.keys()[:1], tmp_path)
    with pytest.raises(ValueError, match=r"no episode has the 50 frames a training window needs \(longest: 6"):
        check_long_enough(arrays, 50, "store")


def _ddp_worker(rank, world, store_root, out, port):
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    torch.set_num_threads(1)
    from wmeval.data.store import EpisodeStore

    train_world_model(cfg(EpisodeStore(store_root), out), progress=False)
    torch.distributed.destroy_process_group()


def test_ddp_smoke_two_cpu_processes(tmp_path, store):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torch.multiprocessing.spawn(_ddp_worker, args=(2, str(store.root), str(tmp_path / "ddp"), port), nprocs=2)
    model, meta = load_world_model(tmp_path / "ddp" / "model")
    assert meta["world_size"] == 2 and meta["step"] == 6


def test_quality_report_and_videos(tmp_path, store):
    from wmeval.cli import main

    path = train_world_model(cfg(store, tmp_path / "run", val_fraction=0.5), progress=False)
    assert main(["quality", "--model", str(path), "--horizon", "3", "--out", str(tmp_path / "q"), "--no-progress"]) == 0
    import json

    rep = json.loads((tmp_path / "q" / "quality.json").read_text())
    assert rep["horizon"] == 3 and set(rep["psnr"]) == {"1"} and len(rep["psnr_by_horizon"]) == 3
    assert 0 < rep["ssim"]["1"] <= 1 and rep["episodes"] >= 1
    sharp = [v for v in rep["sharpness_by_horizon"] if v is not None]  # None: nothing had moved in reality yet
    assert len(rep["sharpness_by_horizon"]) == 3 and all(v >= 0 for v in sharp)
    assert list((tmp_path / "q").glob("real_vs_imagined_*.gif"))
    # where the outcome is lost: a chosen policy's episodes, readout real vs open loop, one step vs baselines
    policy = store.meta(store.keys()[0]).policy
    assert main(["quality", "--model", str(path), "--policies", policy, "--horizon", "3", "--episodes", "4",
                 "--out", str(tmp_path / "p"), "--no-progress"]) == 0  # fmt: skip
    rep = json.loads((tmp_path / "p" / "quality.json").read_text())
    assert rep["policies"] == [policy] and 1 <= rep["episodes"] <= 4
    assert set(rep["readout"]["all"]) >= {"episodes", "real_max", "real_final", "imagined_max", "imagined_final"}
    one = rep["one_step"]
    assert one["latent_mse"] > 0 and one["proprio_mae_still"] >= 0 and one["proprio_mae_constant_velocity"] >= 0
    assert main(["quality", "--model", str(path), "--policies", "nobody-*", "--no-progress"]) == 2


def test_nan_in_a_batch_names_step_and_episode(tmp_path, store):
    from wmeval.data.windows import EpisodeArrays

    run = tmp_path / "run"
    train_world_model(cfg(store, run, steps=3), progress=False)
    arrays, meta = EpisodeArrays.load(run / "latents.safetensors")
    arrays.latents[:] = float("nan")  # as if the cached latents had gone bad
    arrays.save(run / "latents.safetensors", meta)
    before = sorted(p.name for p in (run / "dynamics").iterdir())
    with pytest.raises(
        FloatingPointError, match=r"non-finite 'latents' in the batch of step 4, episode reach/expert/\d+"
    ):
        train_world_model(cfg(store, run, steps=6), progress=False)
    assert sorted(p.name for p in (run / "dynamics").iterdir()) == before  # the last good checkpoint is intact


def test_a_diverging_loss_stops_before_anything_is_saved(tmp_path, store, monkeypatch):
    from wmeval.model.world_model import WorldModel

    run = tmp_path / "run"
    train_world_model(cfg(store, run, steps=3), progress=False)
    before = sorted(p.name for p in (run / "dynamics").iterdir())
    real = WorldModel.loss

    def diverging(self, *args, **kwargs):  # finite inputs, a loss that blows up (as with a too-high learning rate)
        loss, m = real(self, *args, **kwargs)
        return loss * float("nan"), m

    monkeypatch.setattr(WorldModel, "loss", diverging)
    with pytest.raises(FloatingPointError, match=r"loss became non-finite within steps 4-\d+.*last good checkpoint"):
        train_world_model(cfg(store, run, steps=30), progress=False)
    assert sorted(p.name for p in (run / "dynamics").iterdir()) == before


def test_a_grown_store_encodes_only_its_new_episodes(tmp_path, monkeypatch):
    from conftest import ConstantPolicy, FakeReality

    from wmeval.data.windows import EpisodeArrays
    from wmeval.model.codec import FrameCodec
    from wmeval.rollout import rollout

    grown = make_fake_store(tmp_path / "s", 6)
    train_world_model(cfg(grown, tmp_path / "a"), progress=False)
    before, _ = EpisodeArrays.load(tmp_path / "a" / "latents.safetensors")
    old = {k: before.episode(i) for i, k in enumerate(before.keys)}
    del before
    env = FakeReality()
    for seed in (50, 51):  # rollouts collected later, beside a store the world model was trained on
        grown.append(rollout(env, ConstantPolicy(speed=0.9), env.start(seed), "late", {"name": "late"}))
    encoded = []
    real_encode = FrameCodec.encode
    monkeypatch.setattr(FrameCodec, "encode", lambda self, x: encoded.append(len(x)) or real_encode(self, x))
    train_world_model(cfg(grown, tmp_path / "a", steps=9), progress=False)
    after, meta = EpisodeArrays.load(tmp_path / "a" / "latents.safetensors")
    stored = grown.keys()
    assert sum(encoded) == sum(grown.meta(k).length for k in stored if "/late/" in k)  # the new ones only
    assert set(after.keys) == set(stored) and meta["store_fingerprint"] == grown.fingerprint()
    for i, k in enumerate(after.keys):
        if k in old:  # copied over exactly
            assert all(np.array_equal(v, old[k][n]) for n, v in after.episode(i).items())


def test_held_out_policies_can_train_on_other_starts_and_finished_runs_read_nothing(tmp_path, monkeypatch):
    from conftest import ConstantPolicy, FakeReality

    import wmeval.train.world_model as twm
    from wmeval.rollout import rollout

    s = make_fake_store(tmp_path / "s", 12)
    env = FakeReality()
    for seed in (100, 101, 102, 200, 201):  # judged: evaluation starts 100-102, two rollouts on other starts
        s.append(rollout(env, ConstantPolicy(speed=0.7), env.start(seed), "judged", {"name": "judged"}))
    run = cfg(s, tmp_path / "a", exclude_policies=("judged",), train_seeds=(150, 250), train_episodes=5)
    model = train_world_model(run, progress=False)
    data = json.loads((model / "config.json").read_text())["data"]
    extra = {"reach/judged/000200", "reach/judged/000201"}
    assert extra <= set(data["train_keys"]) and len(data["train_keys"]) == 5  # kept first under the cap
    assert not any("/judged/" in k for k in data["val_keys"])  # calibration stays on the other policies
    assert not any(k.startswith("reach/judged/0001") for k in data["train_keys"] + data["val_keys"])
    with pytest.raises(ValueError, match="train_seeds must be"):
        cfg(s, tmp_path / "b", train_seeds=(5, 1))
    monkeypatch.setattr(twm, "prepare_data", lambda *a: pytest.fail("a finished run must not read its data"))
    s.append(rollout(env, ConstantPolicy(speed=0.7), env.start(300), "judged", {"name": "judged"}))
    assert train_world_model(run, progress=False) == model
