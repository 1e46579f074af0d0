"""Determinism on the CPU: the same command with the same seed gives identical episodes, identical world-model
weights and identical predicted success rates, whatever the number of workers or the batch size."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import torch
from conftest import JUDGED
from safetensors.torch import load_file

from wmeval.collect import collect
from wmeval.data.store import EpisodeStore
from wmeval.eval.evaluate import EvalConfig, evaluate
from wmeval.reality.metaworld import MetaWorldConfig
from wmeval.train.world_model import WMTrainConfig, train_world_model
from wmeval.zoo import load_zoo


def test_collect_gives_identical_episodes_with_any_number_of_workers(tmp_path):
    cfg = MetaWorldConfig(image_size=32, max_steps=40)
    zoo = load_zoo("tiny")
    for name, workers in (("one", 1), ("two", 2)):
        collect(tmp_path / name, zoo, ("button-press-topdown",), 2, cfg, seed=7, workers=workers, progress=False)
    a, b = EpisodeStore(tmp_path / "one"), EpisodeStore(tmp_path / "two")
    assert a.keys() == b.keys() and len(a.keys()) == 6
    assert [m.digest for m in a.index()] == [m.digest for m in b.index()]  # sha256 over every tensor
    assert a.fingerprint() == b.fingerprint()


def test_world_model_training_is_repeatable(world, tmp_path):
    def run(out):
        cfg = WMTrainConfig(store=str(world["store"].root), out=str(out), preset="tiny", window=4, codec_steps=4,
                            codec_batch=8, steps=4, batch_size=4, eval_every=2, save_every=2, warmup=1,
                            device="cpu", val_fraction=0.3, exclude_policies=(JUDGED,))  # fmt: skip
        return load_file(train_world_model(cfg, progress=False) / "model.safetensors")

    a, b = run(tmp_path / "a"), run(tmp_path / "b")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_evaluate_is_repeatable_and_does_not_depend_on_the_batch_size(world, tmp_path):
    """The same command twice: identical to the bit. Another batch size: the same up to float rounding
    (matrix products of other shapes sum in another order), never other noise or another episode."""
    cfg = EvalConfig(model=str(world["model"]), zoo=str(world["zoo"]), out=str(tmp_path / "a"), policies=(JUDGED,),
                     episodes=4, seed=100, batch_size=8, calibration_episodes=16, videos=0, device="cpu")  # fmt: skip
    a = evaluate(cfg, progress=False)
    again = evaluate(replace(cfg, out=str(tmp_path / "again")), progress=False)
    other = evaluate(replace(cfg, out=str(tmp_path / "other"), batch_size=3), progress=False)

    def lines(d):
        return sorted(json.dumps(json.loads(x), sort_keys=True) for x in (tmp_path / d / "episodes.jsonl").open())

    assert a["policies"] == again["policies"] and a["rule"] == again["rule"] and lines("a") == lines("again")
    rates = [[p["predicted_rate"] for p in r["policies"]] for r in (a, other)]
    assert np.allclose(*rates, atol=1e-5) and a["rule"]["stat"] == other["rule"]["stat"]
    values = [[json.loads(x)["values"] for x in lines(d)] for d in ("a", "other")]
    assert np.allclose(*values, atol=1e-4)
