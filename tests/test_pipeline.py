"""`wmeval demo`/`bench` plumbing at micro size on MetaWorld: every stage runs, writes its outputs, resumes."""

import dataclasses
import fnmatch
import json
import shutil
from pathlib import Path

import pytest
import torch

from wmeval.checkpoint import CheckpointError
from wmeval.data.store import EpisodeStore
from wmeval.models import members
from wmeval.pipeline import PRESETS, READOUT_SEEDS, make_config, run_headline_seeds, run_pipeline
from wmeval.pretraining import run_pretraining

MICRO = dict(
    tasks=("drawer-open",), demos=8, sizes=(3,), variants=("cnn-proprio", "cnn-noproprio"), checkpoints=(2, 4),
    judged=("bc-*-cnn-proprio-*",), episodes=3, wm_preset="tiny", codec_steps=4, wm_steps=4, wm_batch=4, bc_batch=8,
    workers=1, eval_batch=8, videos=1, device="cpu", in_distribution=True, seeds=2, train_episodes=2, val_fraction=0.5,
    scripted_episodes=1, readout_episodes=2,
)  # fmt: skip


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """One micro run of the CPU headline preset (held out and in distribution), shared by the tests of this
    module, which add ablations and study points to it; a test that changes what the run holds puts it back."""
    cfg = make_config("cpu", str(tmp_path_factory.mktemp("bench") / "run"), **MICRO)
    return cfg, run_pipeline(cfg, progress=False)


def test_pipeline_runs_every_stage_and_resumes(bench):
    cfg, res = bench
    al = res["results"]["heldout"]
    assert al["n_policies"] == 4 and al["n_episodes_per_policy"] == 3  # 2 checkpoints + 2 degraded copies
    run = Path(cfg.out)
    assert (run / "report-heldout.html").is_file() and (run / "alignment-heldout.json").is_file()
    trained_on = json.loads((run / "wm-heldout" / "model" / "config.json").read_text())["data"]["policies"]
    assert trained_on and not any("cnn-proprio" in p for p in trained_on)  # judged policies held out
    stages = json.loads((run / "timings.json").read_text())
    assert {"demos", "policies", "rollouts", "world model (heldout)", "evaluate (heldout)", "total"} <= set(stages)
    # the second seed reuses the first one's codec and judges the same episodes: an ensemble of 2
    assert al["n_seeds"] == 2 and "ensemble" in al and al["trust"] is not None
    assert (run / "wm-heldout-s1" / "codec").is_dir() and "world model (heldout-s1)" in stages
    seed1 = json.loads((run / "wm-heldout-s1" / "model" / "config.json").read_text())["train"]
    assert seed1["seed"] == 1 and seed1["codec_from"].endswith("wm-heldout")
    others = [p for p in trained_on if p.startswith("bc-")]
    # train_episodes each, and readout_episodes on starts of their own that only ever validate (and calibrate)
    assert others and all(len(glob_episodes(run / "store", p)) == 2 + 2 for p in others)
    data = json.loads((run / "wm-heldout" / "model" / "config.json").read_text())["data"]
    extra = {k for k in data["val_keys"] if int(k.rsplit("/", 1)[-1]) >= cfg.seed + READOUT_SEEDS}
    assert len(extra) == 2 * len(others) and not extra & set(data["train_keys"])
    assert "rollouts (calibration)" in stages
    indist = json.loads((run / "wm-indist" / "model" / "config.json").read_text())["data"]["policies"]
    assert set(indist) == set(trained_on) | {p["policy"] for p in al["policies"]}  # the judged ones too
    assert res["results"]["indist"]["n_policies"] == 4 and (run / "report-indist.html").is_file()
    again = run_pipeline(cfg, progress=False)  # everything is done: nothing is recomputed
    assert again["results"]["heldout"]["policies"] == al["policies"]


def glob_episodes(store, policy):
    return list((store / "episodes").glob(f"*/{policy}/*.safetensors"))


def test_presets_are_complete():
    for name in PRESETS:
        cfg = make_config(name, "x")
        assert (cfg.judged and cfg.episodes >= 20) or (name.endswith("-model") and cfg.world_model is None)
    shipped = make_config("demo-model", "x")  # the demo's world model never sees the demo's judged policies
    demo = make_config("demo", "x")
    assert demo.world_model == "demo" and shipped.tasks == demo.tasks and demo.sizes[0] not in shipped.sizes
    assert shipped.readout_episodes > 0  # the demo judges every learned policy: its rules fit on the readouts


def test_the_shipped_demo_model_carries_its_calibration_within_5_mb():
    from wmeval.models import SHIPPED, read_readouts, read_shared

    demo = make_config("demo", "x")
    assert sum(f.stat().st_size for f in (SHIPPED / "demo").rglob("*") if f.is_file()) < 5_000_000
    for member in members(SHIPPED / "demo"):
        r = read_readouts(member)
        meta, _ = read_shared(member, json.loads((member / "config.json").read_text()))
        assert r is not None and set(demo.tasks) <= set(r["tasks"])
        for kind in ("imagined", "replay"):
            for t in demo.tasks:  # both outcomes of every task the demo judges
                ys = {y for ti, y in zip(r[kind]["task"], r[kind]["outcome"], strict=True) if r["tasks"][ti] == t}
                assert ys == {0, 1}, (member, kind, t)
        assert not any(fnmatch.fnmatch(p, f"*-n{demo.sizes[0]}-*") for p in meta["data"]["train_policies"])
    for name in ("cpu", "gpu"):  # the headline: >= 3 seeds, 50 episodes per judged policy
        assert make_config(name, "x").episodes == 50 and make_config(name, "x").seeds >= 3


def test_a_world_model_to_ship_is_packed_and_judges_another_run(bench, tmp_path):
    from wmeval.model.world_model import load_world_model

    cfg, res = bench
    run = Path(cfg.out)

    def copy_data(to: Path) -> Path:  # the bench's data stages, found finished
        shutil.copytree(run / "store", to / "store")
        shutil.copytree(run / "policies", to / "policies")
        return to

    pcfg = dataclasses.replace(cfg, out=str(copy_data(tmp_path / "ship")), judged=(), in_distribution=False, seeds=2,
                               readout_episodes=0)  # fmt: skip
    with pytest.raises(ValueError, match="run_pretraining"):
        run_pipeline(pcfg, progress=False)
    shipped = run_pretraining(pcfg, progress=False)
    packed = Path(shipped["packed"])
    assert members(packed) == [packed / "seed-0", packed / "seed-1"]  # two seeds, one codec stored once
    meta = [load_world_model(m)[1] for m in members(packed)]
    assert meta[0]["data"]["train_digests"] == meta[1]["data"]["train_digests"]
    assert any("cnn-proprio" in p for p in meta[0]["data"]["policies"])  # trained on every policy
    assert len(meta[0]["data"]["train_digests"]) == meta[0]["data"]["train_episodes"]
    assert sum(meta[0]["data"]["train_policies"].values()) == meta[0]["data"]["train_episodes"]
    size = sum(f.stat().st_size for f in packed.rglob("*.safetensors"))  # float16 halves it; the codec once, more
    assert size < 0.45 * sum((Path(m) / "model.safetensors").stat().st_size for m in shipped["models"])
    for full, half in zip(shipped["models"], members(packed), strict=True):
        a_sd, b_sd = load_world_model(full)[0].state_dict(), load_world_model(half)[0].state_dict()
        for (name, a), b in zip(a_sd.items(), b_sd.values(), strict=True):
            assert b.dtype == a.dtype and torch.allclose(a, b, rtol=1e-3, atol=1e-4), name  # float16, read back
    with pytest.raises(CheckpointError, match="packed ensemble of 2 world models: evaluate with each member"):
        load_world_model(packed)
    (packed / "shared.json").rename(packed / "aside.json")
    with pytest.raises(CheckpointError, match="shared.json.*copy the packed model's whole directory"):
        load_world_model(packed / "seed-0")
    (packed / "aside.json").rename(packed / "shared.json")
    # another run judges with it instead of training world models; its calibration never reads a training episode
    jcfg = dataclasses.replace(cfg, out=str(copy_data(tmp_path / "judge")), world_model=str(packed), seeds=3,
                               in_distribution=False)  # fmt: skip
    with pytest.raises(ValueError, match="holds 2 seed.s., not the 3 this run judges with"):
        run_pipeline(jcfg, progress=False)
    assert not (Path(jcfg.out) / "pipeline.json").exists()  # refused before the run began
    jcfg = dataclasses.replace(jcfg, seeds=2)
    al = run_pipeline(jcfg, progress=False)["results"]["heldout"]
    assert al["n_policies"] == 4 and al["n_seeds"] == 2 and not (Path(jcfg.out) / "wm-heldout").exists()
    for k, name in enumerate(("eval-heldout", "eval-heldout-s1")):
        ev = json.loads((Path(jcfg.out) / name / "evaluation.json").read_text())
        assert Path(ev["model"]) == packed / f"seed-{k}"
        rows = json.loads((Path(jcfg.out) / name / "calibration.json").read_text())["value"]["rows"]
        digest = {m.key: m.digest[:16] for m in EpisodeStore(Path(jcfg.out) / "store").index()}
        trained = set(meta[0]["data"]["train_digests"])  # their first 16 hex digits
        assert rows["key"] and not any(digest[k] in trained for k in rows["key"])
        assert not any("cnn-proprio" in k for k in rows["key"])


def test_a_run_written_before_a_setting_existed_resumes_with_its_default():
    cfg = make_config("cpu", "x")
    older = {k: v for k, v in cfg.to_json().items() if k != "videos"}  # as if `videos` came later
    assert cfg.same_run(older) and cfg.same_run(cfg.to_json())
    assert not make_config("cpu", "x", videos=2).same_run(older)
    assert not cfg.same_run({**older, "wm_steps": 1})


def test_ablations_reuse_the_bench_data_and_tabulate(bench):
    from wmeval.ablations import ABLATIONS, ROW_HEAD, ablation_rows, parse_names, run_ablation, run_point

    cfg, _ = bench
    run = Path(cfg.out)
    # the headline's seeds may also run one at a time (scripts/run_point.py RUN headline --seeds K)
    shutil.rmtree(run / "eval-heldout-s1")
    assert run_headline_seeds(cfg, (0,), progress=False) is None  # seed 1 not evaluated: no alignment
    al = run_headline_seeds(cfg, (1,), progress=False)
    assert al["n_seeds"] == 2 and (run / "eval-heldout-s1" / "evaluation.json").is_file()
    assert json.loads((run / "alignment-heldout.json").read_text())["n_seeds"] == 2
    model = run / "wm-heldout" / "model"
    model.rename(model.with_name("model.aside"))  # as while the headline's world models still train:
    with pytest.raises(ValueError, match="no finished bench run"):
        run_ablation(cfg, "samples-3", progress=False)  # re-judging needs them,
    # retraining needs only the headline's codec; seeds may run one at a time (side by side, in processes)
    half, out = ABLATIONS["steps-half"], run / "ablations" / "steps-half"
    assert run_point(cfg, half, out, progress=False, seeds=(1,)) is None  # seed 0 not evaluated yet: no alignment
    assert run_point(cfg, half, out, progress=False, seeds=(0,))["n_seeds"] == 2  # the last seed aligns both
    assert {"world model (s0)", "world model (s1)", "evaluate (s0)", "evaluate (s1)"} <= set(
        json.loads((out / "timings.json").read_text()))  # each run's stages kept beside the other's
    model.with_name("model.aside").rename(model)
    one = dataclasses.replace(cfg, seeds=1)  # the points below check what one seed does (2 seeds: above)
    al = run_ablation(one, "samples-3", progress=False)  # re-judges with the headline's own world models
    ev = json.loads((run / "ablations" / "samples-3" / "eval-s0" / "evaluation.json").read_text())
    assert ev["config"]["samples"] == 3 and ev["timing"]["imagined_episodes"] == 3 * 4 * 3  # samples x policies x starts
    assert ev["model"] == str(run / "wm-heldout" / "model") and al["n_seeds"] == 1
    run_ablation(cfg, "steps-half", progress=False)  # retrains, from the headline's codec, half the steps
    trained = json.loads((run / "ablations" / "steps-half" / "wm-s1" / "model" / "config.json").read_text())
    assert trained["step"] == 2 and trained["train"]["codec_from"].endswith("wm-heldout")
    headline = json.loads((run / "wm-heldout" / "model" / "config.json").read_text())["model"]
    assert headline["codec"]["latent_channels"] == 8 and headline["codec"]["widths"] == [32, 64, 128]  # the preset's
    run_ablation(cfg, "codec-c4", progress=False)  # trains its own codec at seed 0, shared by seed 1
    c4 = run / "ablations" / "codec-c4"
    s0, s1 = (json.loads((c4 / f"wm-s{k}" / "model" / "config.json").read_text()) for k in (0, 1))
    assert s0["train"]["codec_from"] is None and s1["train"]["codec_from"].endswith("codec-c4/wm-s0")
    assert s1["model"]["codec"]["latent_channels"] == s1["model"]["dynamics"]["latent_channels"] == 4
    run_ablation(one, "action-guidance-2", progress=False)  # trains action-dropout's models, judges them guided
    dropped = run / "ablations" / "action-dropout" / "wm-s0" / "model" / "config.json"
    assert json.loads(dropped.read_text())["model"]["action_dropout"] == 0.1
    guided = json.loads((run / "ablations" / "action-guidance-2" / "eval-s0" / "evaluation.json").read_text())
    assert guided["config"]["guidance"] == 2.0 and guided["model"] == str(dropped.parent)
    abl = run / "ablations"  # the training time stays with the models' owner
    assert json.loads((abl / "action-dropout" / "timings.json").read_text())["world model (s0)"] > 0
    assert "world model (s0)" not in json.loads((abl / "action-guidance-2" / "timings.json").read_text())
    run_ablation(one, "judge", progress=False)  # a judge per seed, trained for the headline's models
    judged = json.loads((abl / "judge" / "eval-s0" / "evaluation.json").read_text())["config"]["judge"]
    assert judged == str(abl / "judge" / "judge-s0" / "model")
    rows = ablation_rows(cfg)
    assert [r["name"] for r in rows] == ["headline", "samples-3", "steps-half", "codec-c4", "action-guidance-2", "judge"]
    assert rows[-2]["cells"][ROW_HEAD.index("train min / model")] != "n/a"
    assert json.loads((run / "ablations.json").read_text())[1]["name"] == "samples-3"
    with pytest.raises(ValueError, match="unknown ablation.*valid: closed-loop-calibration"):
        parse_names("samples-3,bogus")
    # an evaluation-only ablation re-judges another point's world models (scripts/run_point.py --rejudge)
    al = run_point(cfg, ABLATIONS["euler-1"], abl / "steps-half-euler-1", progress=False, models=(half, out),
                   seeds=(1,))  # fmt: skip
    ev = json.loads((abl / "steps-half-euler-1" / "eval-s1" / "evaluation.json").read_text())
    assert ev["model"] == str(out / "wm-s1" / "model") and al is None and ev["config"]["euler_steps"] == 1
    with pytest.raises(ValueError, match="retrains world models"):
        run_point(cfg, half, abl / "bogus", progress=False, models=(half, out))


def test_data_study_trains_on_subsets_and_keeps_the_validation_episodes(bench, monkeypatch):
    from wmeval import study
    from wmeval.study import STEPS_SCALE, format_study, parse_parts, points, run_study

    cfg, _ = bench
    run = Path(cfg.out)
    assert parse_parts("all") == ("size", "kind", "advice")
    with pytest.raises(ValueError, match="unknown study part"):
        parse_parts("colour")
    half_before = (run / "ablations" / "steps-half").exists()  # the ablations' test may have run it
    one = dataclasses.replace(cfg, seeds=1)  # one world model per point: the seeds' plumbing is the ablations'
    res = run_study(one, ("kind",), progress=False)
    headline = json.loads((run / "wm-heldout" / "model" / "config.json").read_text())
    pts = points(cfg, ("kind",))
    assert study.headline_counts(cfg)["train"] == headline["data"]["train_episodes"]  # calibration episodes never
    n = pts["kind-expert"][2].train["train_episodes"]
    for kind in ("expert", "scripted", "learned", "judged"):
        model = json.loads((run / pts[f"kind-{kind}"][3] / "wm-s0" / "model" / "config.json").read_text())
        assert model["data"]["val_keys"] == headline["data"]["val_keys"]  # calibration sees the same unseen episodes
        assert model["data"]["train_episodes"] == n <= headline["data"]["train_episodes"]
        assert model["train"]["steps"] == round(STEPS_SCALE * headline["train"]["steps"])
    # in distribution: the judged policies' own rollouts on other starts train, their evaluation episodes never
    trained = json.loads((run / "study" / "kind-judged" / "wm-s0" / "model" / "config.json").read_text())["data"]
    own = [k for k in trained["train_keys"] if "-cnn-proprio-" in k]  # the judged policies' (MICRO's pattern)
    assert own and all(int(k.rsplit("/", 1)[1]) >= cfg.seed + 10_000 for k in own)
    assert len(own) == min(n, 2 * 4)  # 2 rollouts x 4 judged policies, kept first under the cap
    truth = json.loads((run / "study" / "kind-judged" / "alignment.json").read_text())
    assert truth["n_episodes_per_policy"] == cfg.episodes  # the truth is still the evaluation starts only
    expert = json.loads((run / "study" / "kind-expert" / "wm-s0" / "model" / "config.json").read_text())
    assert expert["train"]["train_policies"] == ["expert"]
    kinds = [p for p in res["points"] if p["axis"] == "kind"]
    assert [p["x"] for p in kinds] == ["expert", "scripted", "learned", "judged"]
    assert all(p["train_episodes"] == n for p in kinds)
    # the smallest size point trains what kind `learned` trains when their sizes agree, and runs once; the
    # 100% point (the `steps-half` ablation) is reported when the ablations' test has run it
    sizes = {"size-12.5"} | ({"size-100"} if half_before else set())
    assert {p["name"] for p in res["points"] if p["axis"] == "size"} <= sizes
    assert (run / "ablations" / "steps-half").exists() == half_before  # the 100% point belongs to the size part
    assert json.loads((run / "study.json").read_text())["points"] == json.loads(json.dumps(res["points"], default=float))
    kind_png = str(run / "study-kind.png")  # (with the 100% point also the size and compute figures)
    assert kind_png in res["figures"] and all(Path(f).stat().st_size > 1000 for f in res["figures"])
    assert "kind-scripted" in format_study(res)

    budget = 8  # real episodes per arm (48 in the real study): two of `wmeval suggest`'s blocks of 4
    monkeypatch.setattr(study, "ADVICE_BUDGET", budget)
    res = run_study(cfg, ("advice",), progress=False)  # wmeval suggest against a random draw, same budget
    plan = json.loads((run / "study" / "advice.json").read_text())
    assert {arm: sum(a["episodes"] for a in alloc) for arm, alloc in plan.items()} == {"suggest": budget,
                                                                                     "random": budget}
    for arm, k in (("suggest", 2), ("random", 3)):
        data = json.loads((run / "study" / f"advice-{arm}" / "wm-s0" / "model" / "config.json").read_text())["data"]
        own = [int(key.rsplit("/", 1)[1]) for key in data["train_keys"] if "-cnn-proprio-" in key]
        assert len(own) == budget and all(cfg.seed + k * 10_000 <= sd < cfg.seed + (k + 1) * 10_000 for sd in own)
    assert [p["x"] for p in res["points"] if p["axis"] == "advice"] == ["none", "suggest", "random"]
    n = {p["x"]: p["train_episodes"] for p in res["points"] if p["axis"] == "advice"}
    assert n["suggest"] == n["random"] == n["none"] + budget  # the arm's real episodes on top of all the data


def test_training_subsets_are_nested():
    from types import SimpleNamespace

    from wmeval.train.data import training_subset

    metas = [SimpleNamespace(key=f"t/{p}/{i:06d}", policy=p) for p in ("expert", "noise-1", "bc-a") for i in range(20)]
    small, large = (set(training_subset(metas, (), n, "s")) for n in (10, 30))
    assert len(small) == 10 and len(large) == 30 and small < large
    assert {k.split("/")[1] for k in training_subset(metas, ("expert", "noise-*"), None, "s")} == {"expert", "noise-1"}
    with pytest.raises(ValueError, match="no training episode of policies nothing"):
        training_subset(metas, ("nothing",), None, "s")


def test_the_humanoid_suite_runs_the_whole_loop(tmp_path):
    """collect (expert, scripted zoo), behaviour cloning from the head camera, world model, evaluate, align."""
    micro = {**MICRO, "tasks": ("button-press",), "in_distribution": False, "seeds": 1, "scripted_episodes": 1}
    cfg = make_config("humanoid", str(tmp_path / "run"), **micro)
    al = run_pipeline(cfg, progress=False)["results"]["heldout"]
    assert al["n_policies"] == 4 and al["n_episodes_per_policy"] == 3
    model = json.loads((tmp_path / "run" / "wm-heldout" / "model" / "config.json").read_text())
    assert model["layout"]["suite"] == "humanoid" and model["layout"]["views"] == ["head"]
    assert model["layout"]["action_dim"] == 16 and "noise-1.0" in model["data"]["policies"]  # the humanoid zoo
    zoo = (tmp_path / "run" / "policies" / "zoo.toml").read_text()
    assert 'suite = "humanoid"' in zoo
