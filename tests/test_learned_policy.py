"""Behaviour-cloned pixel policies: training, checkpoints, variants, and their place in the zoo."""

import json

import numpy as np
import pytest
import torch
from conftest import FAKE_LAYOUT, make_fake_store
from safetensors.torch import load_file

from wmeval.checkpoint import CheckpointError
from wmeval.policies.learned import LearnedPolicy
from wmeval.policies.train_bc import BCTrainConfig, chunk_targets, train_bc
from wmeval.types import Observation


def config(tmp_path, store, **kw):
    base = dict(
        store=str(store.root),
        task="reach",
        out=str(tmp_path / "run"),
        episodes=6,
        val_episodes=2,
        steps=40,
        batch_size=16,
        save_every=20,
        eval_every=20,
        device="cpu",
    )
    return BCTrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return make_fake_store(tmp_path_factory.mktemp("demos") / "s", 8)


def test_chunk_targets_concatenate_following_chunks():
    a = np.arange(3 * 2 * 1, dtype=np.float32).reshape(3, 2, 1)  # T=3, K=2, A=1
    t = chunk_targets(a, 2)
    assert t.shape == (3, 4, 1)
    np.testing.assert_array_equal(t[0, :, 0], [0, 1, 2, 3])
    np.testing.assert_array_equal(t[2, :, 0], [4, 5, 4, 5])  # past the end: the last chunk again


class Jittery:
    """Uniform random actions: nothing to learn but memorisation."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)

    def reset(self, seed):
        pass

    def act(self, obs):
        return self.rng.uniform(-1, 1, (2, 4)).astype(np.float32)


def test_tiny_policy_overfits_a_handful_of_frames(tmp_path):
    from conftest import FakeReality

    from wmeval.data.store import EpisodeStore
    from wmeval.rollout import rollout

    store = EpisodeStore.create(tmp_path / "s", FAKE_LAYOUT)
    env = FakeReality()
    for seed in range(2):  # 12 frames, 12 random targets of 2 x 4 actions
        store.append(rollout(env, Jittery(seed), env.start(seed), "jitter", {}))
    cfg = config(
        tmp_path,
        store,
        source="jitter",
        successful_only=False,
        episodes=2,
        val_episodes=0,
        steps=300,
        save_every=300,
        eval_every=300,
        augment_pad=0,
        lr=1e-3,
        batch_size=12,
    )
    train_bc(cfg, progress=False)
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    # predicting the mean would cost Var(U(-1, 1)) = 1/3
    assert log[-1]["loss"] < 0.01


@pytest.mark.parametrize("encoder", ["cnn", "vit"])
def test_save_load_gives_identical_actions(tmp_path, store, encoder):
    last = train_bc(config(tmp_path, store, encoder=encoder, steps=10, save_every=10), progress=False)
    a, b = LearnedPolicy(last), LearnedPolicy(last)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (5, 1, 16, 16, 3), dtype=np.uint8)
    states = rng.normal(size=(5, 4)).astype(np.float32)
    out = a.act_batch(images, states)
    assert out.shape == (5, FAKE_LAYOUT.frame_skip, 4) and np.abs(out).max() <= 1
    np.testing.assert_array_equal(out, b.act_batch(images, states))
    weights = load_file(last / "model.safetensors")
    assert all(torch.equal(weights[k], v) for k, v in a.net.state_dict().items())


def test_proprio_free_variant_never_reads_proprio(tmp_path, store):
    last = train_bc(config(tmp_path, store, use_proprio=False, steps=5, save_every=5), progress=False)
    pol = LearnedPolicy(last)
    img = np.random.default_rng(1).integers(0, 255, (1, 16, 16, 3), dtype=np.uint8)
    outs = [pol.act(Observation(images=img, state=np.full(4, v, np.float32))) for v in (-100.0, 0.0, 7.0, np.nan)]
    for o in outs[1:]:
        np.testing.assert_array_equal(o, outs[0])
    with_proprio = LearnedPolicy(
        train_bc(config(tmp_path, store, out=str(tmp_path / "p"), steps=5, save_every=5), progress=False)
    )
    o1 = with_proprio.act(Observation(images=img, state=np.zeros(4, np.float32)))
    o2 = with_proprio.act(Observation(images=img, state=np.full(4, 3.0, np.float32)))
    assert not np.array_equal(o1, o2)  # the other variant does read it


def test_resume_matches_uninterrupted_run(tmp_path, store):
    straight = train_bc(config(tmp_path, store, out=str(tmp_path / "a"), steps=20, save_every=10), progress=False)
    cfg = config(tmp_path, store, out=str(tmp_path / "b"), steps=20, save_every=10)
    import shutil

    train_bc(cfg, progress=False)
    shutil.rmtree(tmp_path / "b" / "step_000020")  # as if killed after the step-10 checkpoint
    resumed = train_bc(cfg, resume=True, progress=False)
    wa, wb = load_file(straight / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    with pytest.raises(ValueError, match="already holds checkpoints; pass --resume"):
        train_bc(cfg, progress=False)


def test_wrong_layout_or_task_is_refused_naming_both(tmp_path, store):
    from dataclasses import replace

    pol = LearnedPolicy(train_bc(config(tmp_path, store, steps=2, save_every=2), progress=False))
    pol.check("reach", FAKE_LAYOUT)
    with pytest.raises(CheckpointError, match=r"image_size: 16 vs 64.*checkpoint vs here"):
        pol.check("reach", replace(FAKE_LAYOUT, image_size=64))
    with pytest.raises(CheckpointError, match=r"views: \['cam'\] vs \['corner'\]"):
        pol.check("reach", replace(FAKE_LAYOUT, views=("corner",)))
    with pytest.raises(CheckpointError, match="trained on task 'reach', asked to run on 'push'"):
        pol.check("push", FAKE_LAYOUT)


def test_a_policy_reads_its_own_camera_among_more_rendered_views(tmp_path, store):
    from dataclasses import replace

    from wmeval.policies.learned import for_layout

    last = train_bc(config(tmp_path, store, steps=2, save_every=2), progress=False)
    two = replace(FAKE_LAYOUT, views=("top", "cam"))  # e.g. a second camera for the world model
    pol = for_layout(str(last), "reach", two)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (3, 2, 16, 16, 3), dtype=np.uint8)
    states = rng.normal(size=(3, 4)).astype(np.float32)
    alone = LearnedPolicy(last).act_batch(images[:, 1:], states)
    np.testing.assert_array_equal(pol.act_batch(images, states), alone)
    np.testing.assert_allclose(pol.act(Observation(images=images[0], state=states[0])), alone[0], atol=1e-5)
    assert for_layout(str(last), "reach", FAKE_LAYOUT).views is None  # as trained: no selection
    with pytest.raises(CheckpointError, match=r"views: \['cam'\] vs \['top', 'side'\]"):
        for_layout(str(last), "reach", replace(FAKE_LAYOUT, views=("top", "side")))


def test_too_few_demos_says_how_to_get_more(tmp_path, store):
    with pytest.raises(ValueError, match=r"has 8 successful 'expert' episodes .* needs 40 \+ 5.*wmeval collect"):
        train_bc(config(tmp_path, store, episodes=40, val_episodes=5), progress=False)


def test_grid_trains_runs_and_writes_a_loadable_zoo(tmp_path, store):
    from wmeval.policies.grid import GridConfig, train_grid
    from wmeval.zoo import load_zoo

    cfg = GridConfig(store=str(store.root), out=str(tmp_path / "grid"), tasks=("reach",), sizes=(2, 3),
                     variants=("cnn-proprio", "cnn-noproprio"), checkpoints=(1, 2), val_episodes=1, batch_size=4,
                     device="cpu")  # fmt: skip
    zoo = load_zoo(train_grid(cfg, progress=False))
    names = [p.name for p in zoo.policies]
    assert len(names) == 2 * 2 * 2 + 2 and "bc-reach-cnn-noproprio-n3-s2" in names
    assert zoo.policy("bc-reach-cnn-proprio-n3-s2-latency8").degrade[0].kind == "latency"
    assert all(p.tasks == ("reach",) for p in zoo.policies)
    ckpt = tmp_path / "grid" / "reach" / "cnn-proprio-n2" / "step_000002" / "model.safetensors"
    before = ckpt.stat().st_mtime_ns
    train_grid(cfg, progress=False)  # finished runs are skipped
    assert ckpt.stat().st_mtime_ns == before
    assert sorted(p.name for p in ckpt.parent.parent.iterdir() if p.is_dir()) == ["step_000001", "step_000002"]
