"""Judging policies in imagination: the env, the batched closed loop, the success rule, evaluate -> align ->
report end to end on the fake suite, and the errors users meet."""

import fnmatch
import json
import os
import shutil
import subprocess
from dataclasses import dataclass, replace

import numpy as np
import pytest
from conftest import (
    FAKE_LAYOUT,
    JUDGED,  # noqa: E402  (the `world` fixture lives in conftest)
    ConstantPolicy,
    make_fake_store,
)

from wmeval.align.align import run_align
from wmeval.align.report import write_report
from wmeval.eval.calibration import CLOSED_LOOP_SAMPLES, MIN_CLOSED_LOOP, calibrate, closed_loop_method
from wmeval.eval.evaluate import EvalConfig, evaluate, format_evaluation
from wmeval.eval.imagination import ImaginationEnv, Job, LayoutMismatch, check_layout, imagine, recorded_starts
from wmeval.eval.success import SuccessRule, fit_rule, outcome_metrics
from wmeval.model.world_model import load_world_model
from wmeval.policies.learned import LearnedPolicy
from wmeval.reality.base import Reality
from wmeval.rollout import rollout
from wmeval.zoo import load_zoo


@dataclass(frozen=True)
class FakeSpec:
    """Enough of a PolicySpec for `imagine`: a name and a builder."""

    name: str
    bad: str | None = None
    speed: float = 1.0

    def build(self, task, layout):
        return ConstantPolicy(speed=self.speed, bad=self.bad)


def test_imagination_env_has_the_reality_interface(world):
    model, _ = load_world_model(world["model"])
    starts = recorded_starts(world["store"], "reach", [100, 101])
    env = ImaginationEnv(model, FAKE_LAYOUT, "reach", starts)
    assert isinstance(env, Reality)
    ep = rollout(env, ConstantPolicy(), env.start(101), "p", {})
    assert ep.frames.shape == (FAKE_LAYOUT.n_frames, 1, 16, 16, 3) and ep.frames.dtype == np.uint8
    assert ep.proprio.shape == (FAKE_LAYOUT.n_frames, 4) and np.isfinite(ep.proprio).all()
    real_first = world["store"].load(world["store"].keys()[0]).frames[0]
    assert np.array_equal(ep.frames[0], starts[1].images) and real_first.shape == ep.frames[0].shape
    with pytest.raises(ValueError, match="no recorded start for 'reach' seed 7"):
        env.start(7)


def test_an_episode_does_not_depend_on_its_batch(world):
    model, _ = load_world_model(world["model"])
    starts = recorded_starts(world["store"], "reach", [100, 101, 102])
    jobs = [Job(FakeSpec("fast", speed=1.0), "reach", s) for s in starts] + [Job(FakeSpec("slow", speed=0.2), "reach",
                                                                                 starts[0])]  # fmt: skip
    together = imagine(model, FAKE_LAYOUT, jobs, batch_size=4, progress=False)
    alone = imagine(model, FAKE_LAYOUT, jobs[1:2], batch_size=1, progress=False)
    np.testing.assert_allclose(together[1].values, alone[0].values, atol=1e-4)
    assert not np.allclose(together[0].values, together[1].values)  # different starts differ
    assert together[0].values.shape == (FAKE_LAYOUT.n_frames,)
    short = imagine(model, FAKE_LAYOUT, jobs[1:2], batch_size=1, progress=False, steps=2)  # the first 2 chunks
    np.testing.assert_allclose(short[0].values, alone[0].values[:3], atol=1e-4)


def test_learned_policies_are_batched_and_match_one_at_a_time(world, monkeypatch):
    model, _ = load_world_model(world["model"])
    starts = recorded_starts(world["store"], "reach", [100, 101])
    specs = load_zoo(world["zoo"]).policies  # plain and degraded (noise, latency) learned policies
    jobs = [Job(spec, "reach", st) for spec in specs for st in starts]
    single = imagine(model, FAKE_LAYOUT, jobs, batch_size=1, progress=False)

    def unbatched(self, obs):
        raise AssertionError("a learned policy was called one episode at a time")

    monkeypatch.setattr(LearnedPolicy, "act", unbatched)
    batched = imagine(model, FAKE_LAYOUT, jobs, batch_size=len(jobs), progress=False)
    for a, b in zip(batched, single, strict=True):
        assert a.error is None and b.error is None
        np.testing.assert_allclose(a.values, b.values, atol=1e-4)


def test_policy_errors_are_reported_by_name_and_the_rest_go_on(world):
    model, _ = load_world_model(world["model"])
    starts = recorded_starts(world["store"], "reach", [100, 101])
    jobs = [Job(FakeSpec("nan-policy", bad="nan"), "reach", starts[0]),
            Job(FakeSpec("shape-policy", bad="shape"), "reach", starts[0]),
            Job(FakeSpec("raising-policy", bad="raise"), "reach", starts[1]),
            Job(FakeSpec("good"), "reach", starts[1])]  # fmt: skip
    eps = imagine(model, FAKE_LAYOUT, jobs, batch_size=4, progress=False)
    assert "'nan-policy'" in eps[0].error and "seed 100" in eps[0].error and "NaN" in eps[0].error
    assert "'shape-policy'" in eps[1].error and "shape" in eps[1].error
    assert "'raising-policy'" in eps[2].error and "seed 101" in eps[2].error and "boom" in eps[2].error
    assert eps[3].error is None and np.isfinite(eps[3].values).all()


def test_success_rule_is_calibrated_and_picks_a_statistic():
    rng = np.random.default_rng(0)
    y = rng.random(400) < 0.4
    final = np.clip(np.where(y, 0.7, 0.3) + rng.normal(0, 0.15, 400), 0.01, 0.99)
    values = np.stack([np.linspace(0.5, f, 6) for f in final])
    values[:, 3] = rng.random(400)  # `max` sees noise; `final` is the informative statistic
    rule = fit_rule(values, y)
    assert rule.stat != "max" and rule.a > 0
    p = rule.probability(values)
    assert abs(p.mean() - y.mean()) < 0.05  # calibrated: predicted rate ~ true rate on its own data
    m = outcome_metrics(p, y)
    assert m["accuracy"] > 0.8 and m["auroc"] > 0.9 and 0 <= m["brier"] < 0.2
    assert np.all(np.diff(SuccessRule("final", a=2.0).probability(np.array([[0.2], [0.5], [0.8]]))) > 0)
    with pytest.raises(ValueError, match="both successes and failures"):
        fit_rule(values[:5], np.ones(5, bool))
    with pytest.raises(ValueError, match="unknown success statistic"):
        SuccessRule("median")


def test_auto_rule_reads_as_far_as_the_outcome_lasts():
    # the first 5 generated frames carry the outcome, the rest is noise (an imagination that loses it)
    rng = np.random.default_rng(1)
    y = rng.random(300) < 0.5
    values = rng.random((300, 31))
    values[:, 1:6] = np.clip(np.where(y, 0.65, 0.35)[:, None] + rng.normal(0, 0.1, (300, 5)), 0.01, 0.99)
    rule = fit_rule(values, y)
    assert (rule.stat, rule.first) == ("mean-first", 5) and rule.a > 0
    assert outcome_metrics(rule.probability(values), y)["auroc"] > 0.95
    # frame 0 (the last real context frame) is never read; frames 1..first are averaged
    assert SuccessRule("mean-first", first=2).statistic(np.array([[9.0, 0.2, 0.4, 0.9]])) == pytest.approx([0.3])
    assert fit_rule(values[:, :2], y, "mean-first").first == 1  # shorter than every horizon: all generated frames
    assert [r.frames_read(30) for r in (rule, SuccessRule("mean-first", first=40), SuccessRule("max"))] == [5, 30, 30]
    assert SuccessRule(**{k: v for k, v in rule.to_json().items() if k != "first"}).first == 10  # older JSON
    with pytest.raises(ValueError, match="first must be >= 1"):
        SuccessRule("mean-first", first=0)


def test_combined_rule_mixes_every_statistic():
    """Two parts of an imagined episode each carry part of the outcome (the start, and the end): the combined rule
    reads both and separates better than any one statistic; it survives JSON and reads every frame."""
    rng = np.random.default_rng(2)
    y = rng.random(600) < 0.5
    values = rng.random((600, 21))  # frames in between carry nothing
    early, late = rng.random(600) < 0.75, rng.random(600) < 0.75  # each right 3 times in 4, independently
    values[:, 1:4] = np.where(early == y, 0.7, 0.3)[:, None] + rng.normal(0, 0.05, (600, 3))
    values[:, -1] = np.where(late == y, 0.7, 0.3) + rng.normal(0, 0.05, 600)
    single, combined = fit_rule(values, y, "auto"), fit_rule(values, y, "combined")
    assert combined.stat == "combined" and len(combined.weights) == len(combined.parts) == 8  # 5 horizons + 3
    auc = {r.name: outcome_metrics(r.probability(values), y)["auroc"] for r in (single, combined)}
    assert auc["combined"] > auc[single.name] + 0.05, auc
    again = SuccessRule(**json.loads(json.dumps(combined.to_json())))
    np.testing.assert_allclose(again.probability(values), combined.probability(values))
    assert again == combined and combined.frames_read(20) == 20 and "combination of 8" in combined.describe()
    assert "parts" not in single.to_json()  # single rules keep their JSON
    with pytest.raises(ValueError, match="parts, center, scale and weights"):
        SuccessRule("combined", weights=(1.0,))


def test_mean_rule_reads_every_generated_frame():
    """`--rule mean`: one statistic, the mean of frames 1..T-1 (frame 0 is the last real one), Platt-fitted."""
    rng = np.random.default_rng(0)
    values = rng.uniform(0.05, 0.95, (60, 8))
    y = values[:, 1:].mean(1) + rng.normal(0, 0.05, 60) > 0.5
    rule = fit_rule(values, y, "mean")
    assert (rule.stat, rule.first, rule.frames_read(7)) == ("mean-first", 7, 7) and rule.a > 0
    assert np.allclose(rule.statistic(values), values[:, 1:].mean(1))


def test_calibration_stays_finite_on_saturated_values():
    y = np.array([True] * 140 + [False] * 110 + [True] * 6)
    final = np.array([1.0] * 140 + [0.0] * 100 + [1.0] * 10 + [0.0] * 6)  # saturated, a few mistakes
    values = np.stack([np.full(5, 0.5), np.full(5, 0.5)] * 128)
    values[:, -1] = final
    rule = fit_rule(values, y)
    p = rule.probability(values)
    assert np.isfinite([rule.a, rule.b]).all() and abs(rule.a) < 100 and abs(rule.b) < 100
    assert outcome_metrics(p, y)["accuracy"] > 0.9 and p[:140].min() > 0.5 and p[140:240].max() < 0.5
    combined = fit_rule(values, y, "combined")  # constant statistics (scale 0) must not break the mix
    assert np.isfinite(combined.weights).all() and outcome_metrics(combined.probability(values), y)["accuracy"] > 0.9


def test_outcome_metrics_by_hand():
    m = outcome_metrics(np.array([0.9, 0.4, 0.2, 0.6]), np.array([True, True, False, False]))
    assert m["accuracy"] == 0.5 and m["balanced_accuracy"] == 0.5 and m["auroc"] == 0.75
    assert m["brier"] == pytest.approx((0.01 + 0.36 + 0.04 + 0.36) / 4)


def test_the_rate_map_reads_probabilities_on_the_line_of_the_calibration_policies_rates():
    """Per task, the calibration policies' real rates against their mean imagined probability: a line by
    weighted least squares (hand case: exact), applied per episode and clipped; a task the rows cannot carry
    keeps the identity and says why."""
    from wmeval.eval.rates import MIN_POLICIES, RateMap, fit_rate_map

    p, y, policy, task, sample = [], [], [], [], []

    def add(t: str, name: str, mean_p: float, wins: int, episodes: int = 5, samples: int = 2):
        for j in range(samples):  # every sample a row, labelled by its episode's outcome
            for e in range(episodes):
                p.append(mean_p), y.append(e < wins), policy.append(name), task.append(t), sample.append(j)

    for k, rate in enumerate([0.0, 0.2, 0.4, 0.6, 0.8, 1.0]):  # rate = 2 * mean p - 0.4, exactly
        add("a", f"a{k}", (rate + 0.4) / 2, round(5 * rate), episodes=4 if k == 0 else 5)
    i = policy.index("a0") + 4  # a sample that failed: a0 keeps its 4 episodes (MIN_EPISODES)
    del p[i], y[i], policy[i], task[i], sample[i]
    add("a", "a-few", 0.9, 0, episodes=3)  # under MIN_EPISODES episodes: not a point of the line
    for k in range(MIN_POLICIES - 1):
        add("b", f"b{k}", 0.1 * k, k)  # one policy too few
    for k in range(MIN_POLICIES):
        add("c", f"c{k}", 0.1 * k, 2 + k % 2)  # real rates 0.4-0.6: too narrow a span
        add("d", f"d{k}", 0.1 * k, 5 - k)  # falling: no line
    rates, report = fit_rate_map(np.array(p), np.array(y), policy, task, sample)
    a, b = rates.lines["a"]
    assert a == pytest.approx(-0.4) and b == pytest.approx(2.0) and report["a"]["policies"] == 6
    assert report["a"]["episodes"] == 29 and report["a"]["pearson"] == pytest.approx(1.0)
    np.testing.assert_allclose(rates.apply("a", np.array([0.1, 0.45, 0.9])), [0.0, 0.5, 1.0])
    assert set(rates.lines) == {"a"}
    assert "5 policies" in report["b"]["why"] and "span 0.20" in report["c"]["why"]
    assert "not above zero" in report["d"]["why"]
    np.testing.assert_allclose(rates.apply("b", np.array([0.3, 0.7])), [0.3, 0.7])  # the identity
    assert RateMap.from_json(rates.to_json()) == rates


def test_a_calibration_fits_its_rate_map_on_its_imagined_rows_only():
    """`calibration.rate_map` reads a cached calibration: closed-loop rows name their episodes (policy and task
    from the store's index), readout rows their policies; a calibration on replays gets none."""
    from types import SimpleNamespace as NS

    from wmeval.eval.calibration import rate_map

    rule = SuccessRule(stat="final", a=1.0, b=0.0)  # the probability is the last value
    index, keys, values, outcome, sample = [], [], [], [], []
    for k, rate in enumerate([0.0, 0.25, 0.5, 0.75, 1.0, 0.5]):
        for e in range(4):
            key = f"reach/bc-{k}/{e}"
            index.append(NS(key=key, policy=f"bc-{k}", task="reach"))
            for j in range(2):
                keys.append(key), values.append([0.5, 0.3 + 0.4 * rate]), outcome.append(e < 4 * rate)
                sample.append(j)
    value = {"rule": rule.to_json(), "calibration": {"method": "closed-loop"},
             "rows": {"key": keys, "sample": sample, "outcome": outcome, "values": values}}  # fmt: skip
    rates, report = rate_map(value, index)
    assert rates.lines["reach"] == pytest.approx((-0.75, 2.5)) and report["tasks"]["reach"]["episodes"] == 24
    by_key = {m.key: m for m in index}
    shipped = {"rule": rule.to_json(), "calibration": {"method": "shipped"},
               "rows": {"task": ["reach"] * len(keys), "policy": [by_key[x].policy for x in keys], "sample": sample,
                        "outcome": outcome, "statistics": [[0.0]] * len(keys)}}  # fmt: skip
    shipped["rule"] = {**rule.to_json(), "stat": "combined", "parts": [rule.to_json()], "center": [0.0],
                       "scale": [1.0], "weights": [1.0]}  # fmt: skip
    shipped["rows"]["statistics"] = [[float(np.log(v[-1] / (1 - v[-1])))] for v in values]
    assert rate_map(shipped, [])[0].lines["reach"] == pytest.approx((-0.75, 2.5), abs=1e-6)
    one = {**shipped, "rule": rule.to_json(), "rows": {**shipped["rows"], "parts": [rule.to_json()]}}
    assert rate_map(one, [])[0].lines["reach"] == pytest.approx((-0.75, 2.5), abs=1e-6)  # an `auto` rule: one part
    del shipped["rows"]["policy"]
    assert rate_map(shipped, [])[0].lines == {}
    replay = {**value, "calibration": {"method": "replay"}}
    assert rate_map(replay, index)[0].lines == {} and "replay" in rate_map(replay, index)[1]["why"]


def test_world_model_for_another_layout_is_refused_naming_both(world):
    _, meta = load_world_model(world["model"])
    other = replace(FAKE_LAYOUT, image_size=32, views=("left", "right"))
    with pytest.raises(LayoutMismatch) as e:
        check_layout(meta["layout"], other, "wm-x", "policy 'p'")
    msg = str(e.value)
    assert "wm-x" in msg and "policy 'p'" in msg and "image_size=16" in msg and "image_size=32" in msg
    assert "['cam']" in msg and "['left', 'right']" in msg


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def test_evaluate_align_report_end_to_end(world, tmp_path, monkeypatch):
    store, out = world["store"], tmp_path / "eval"
    cfg = EvalConfig(model=str(world["model"]), zoo=str(world["zoo"]), out=str(out), policies=(JUDGED,),
                     episodes=6, seed=100, batch_size=5, calibration_episodes=16, videos=2, device="cpu")  # fmt: skip
    res = evaluate(cfg, progress=False)
    names = [p["policy"] for p in res["policies"]]
    assert len(names) == 4 and all(n.startswith("bc-reach-cnn-proprio") for n in names)
    assert all(p["episodes"] == 6 and 0 <= p["low"] <= p["predicted_rate"] <= p["high"] <= 1 for p in res["policies"])
    assert res["replay"]["episodes"] == 24 and 0 <= res["replay"]["accuracy"] <= 1
    assert res["model_training"]["exclude_policies"] == [JUDGED]
    assert len(list((out / "videos").glob("*.gif"))) == 2

    lines = (out / "episodes.jsonl").read_text()
    with monkeypatch.context() as m:  # resumes: nothing is imagined, calibrated or replayed twice
        for name in ("imagine", "calibrate", "_replay"):
            m.setattr(f"wmeval.eval.evaluate.{name}", lambda *a, name=name, **k: pytest.fail(f"{name} ran again"))
        again = evaluate(cfg, progress=False)
    assert (out / "episodes.jsonl").read_text() == lines and again["policies"] == res["policies"]
    assert again["replay"] == res["replay"] and again["rule"] == res["rule"]
    assert again["timing"]["replay_s"] == res["timing"]["replay_s"]
    kept = lines.splitlines()[:5]  # as if killed while writing the 6th line
    (out / "episodes.jsonl").write_text("\n".join(kept) + "\n" + lines.splitlines()[5][:20])
    torn = evaluate(cfg, progress=False)
    assert torn["policies"] == res["policies"] and torn["timing"]["imagined_episodes"] == 24 + 24 - 5
    assert len((out / "episodes.jsonl").read_text().splitlines()) == 24
    with pytest.raises(ValueError, match=r"other settings \(episodes: \d+ -> 5\)"):  # says what changed
        evaluate(replace(cfg, episodes=5), progress=False)

    al = run_align(out, out=tmp_path / "alignment.json", n_boot=50)
    saved = json.loads((tmp_path / "alignment.json").read_text())
    for key in ("pearson", "spearman", "mmrv", "episode_accuracy", "checkpoint_regret", "ab_pick_rate_15"):
        v = saved[key]
        assert isinstance(v, float) or set(v) >= {"value", "low", "high"}, key
    assert saved["n_policies"] == 4 and saved["n_episodes_per_policy"] == 6 and al["checkpoint_runs"] == 1
    real = {(p["policy"]): p["real_rate"] for p in saved["policies"]}
    for name in names:
        outcomes = [store.meta(f"reach/{name}/{s:06d}").outcome for s in range(100, 106)]
        assert real[name] == pytest.approx(np.mean(outcomes))

    html_path = write_report(tmp_path / "alignment.json", tmp_path / "report.html")
    html = html_path.read_text()
    assert "<svg" in html and "data:image/gif;base64," in html and "http://" not in html.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")  # fmt: skip
    browser = _chromium()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: scripts/setup.sh installs it")
        pytest.skip("no chromium on this machine (scripts/setup.sh installs it)")
    shot = tmp_path / "shot.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--hide-scrollbars", "--window-size=1200,1600",
                    f"--screenshot={shot}", html_path.resolve().as_uri()], check=True, timeout=120,
                   capture_output=True, cwd=tmp_path)  # fmt: skip
    from PIL import Image

    img = np.asarray(Image.open(shot).convert("RGB"))
    assert img.shape[:2] == (1600, 1200)
    assert (img < 128).any(axis=2).mean() > 0.01  # text, axes and points were drawn, not a blank page
    colors = {tuple(c) for c in img[::7, ::7].reshape(-1, 3)}
    assert len(colors) > 20


def test_imagination_stops_where_the_rule_stops_reading(world, tmp_path):
    """A `mean-first` rule reads the first k generated frames, so evaluate imagines only those: the same rates as
    imagining whole episodes, fewer frames, and videos still of the whole horizon."""
    import imageio.v2 as imageio

    cfg = EvalConfig(model=str(world["model"]), zoo=str(world["zoo"]), out=str(tmp_path / "short"), policies=(JUDGED,),
                     episodes=3, seed=100, batch_size=8, calibration_episodes=16, rule="mean-first", replay=False,
                     videos=1, device="cpu")  # fmt: skip
    short = evaluate(cfg, progress=False)
    full = evaluate(replace(cfg, out=str(tmp_path / "full"), full_episodes=True), progress=False)
    k = short["rule"]["first"]
    assert short["rule"] == full["rule"] and k < FAKE_LAYOUT.horizon
    assert short["timing"]["frames_per_episode"] == k and full["timing"]["frames_per_episode"] == FAKE_LAYOUT.horizon
    assert short["timing"]["imagined_frames"] == 12 * k
    lengths = {len(json.loads(x)["values"]) for x in (tmp_path / "short" / "episodes.jsonl").read_text().splitlines()}
    assert lengths == {k + 1}
    for a, b in zip(short["policies"], full["policies"], strict=True):
        assert a["predicted_rate"] == pytest.approx(b["predicted_rate"], abs=1e-4)
    (gif,) = (tmp_path / "short" / "videos").glob("*.gif")
    assert len(imageio.mimread(gif)) == FAKE_LAYOUT.n_frames


def test_autoguidance_from_an_earlier_checkpoint_of_the_run(world, tmp_path):
    """`evaluate --autoguide step_N` finds the checkpoint beside the model's, records it, and changes the
    imagined episodes; a name that is no checkpoint is refused, naming where it looked."""
    cfg = EvalConfig(model=str(world["model"]), zoo=str(world["zoo"]), out=str(tmp_path / "plain"), policies=(JUDGED,),
                     episodes=2, seed=100, batch_size=8, calibration_episodes=8, replay=False, videos=0,
                     device="cpu")  # fmt: skip
    plain = evaluate(cfg, progress=False)
    guided = evaluate(replace(cfg, out=str(tmp_path / "guided"), autoguide="step_000004", autoguide_scale=3.0),
                      progress=False)  # fmt: skip
    assert guided["config"]["autoguide"] == "step_000004"
    assert guided["config"]["autoguide_scale"] == 3.0 and plain["config"]["autoguide"] is None
    assert (tmp_path / "guided" / "episodes.jsonl").read_text() != (tmp_path / "plain" / "episodes.jsonl").read_text()
    with pytest.raises(ValueError, match="no checkpoint 'step_9' for autoguidance.*dynamics"):
        evaluate(replace(cfg, out=str(tmp_path / "bad"), autoguide="step_9"), progress=False)


def test_a_judge_trains_on_the_world_models_episodes_and_judges_its_evaluation(world, tmp_path):
    """`wmeval train-judge` learns from the world model's own training episodes (never its validation ones or
    a held-out policy's), resumes, and `evaluate --judge` reads the imagined episodes with it."""
    from wmeval.checkpoint import read_config
    from wmeval.train.judge import JudgeTrainConfig, judge_episodes, train_judge

    train, val, meta = judge_episodes(world["model"])
    assert not set(train.keys) & set(meta["data"]["val_keys"]) and set(val.keys) == set(meta["data"]["val_keys"])
    assert set(train.keys) == set(meta["data"]["train_keys"])  # the world model's own training episodes, no more
    index = {m.key: m for m in world["store"].index()}
    assert {index[k].policy for k in train.keys} <= set(meta["data"]["policies"])
    assert not any(index[k].policy.startswith("bc-reach-cnn-proprio") for k in train.keys)  # the held-out policies
    cfg = JudgeTrainConfig(model=str(world["model"]), out=str(tmp_path / "judge"), steps=6, batch_size=8,
                           eval_every=3, frames=3, device="cpu")  # fmt: skip
    path = train_judge(cfg, progress=False)
    saved = read_config(path)
    assert saved["kind"] == "judge" and saved["step"] == 6 and 0 <= saved["metrics"]["val_auroc"] <= 1
    assert train_judge(replace(cfg, steps=8), progress=False) and read_config(tmp_path / "judge" / "model")["step"] == 8
    with pytest.raises(ValueError, match="other settings"):
        train_judge(replace(cfg, frames=2), progress=False)
    ev = EvalConfig(model=str(world["model"]), zoo=str(world["zoo"]), out=str(tmp_path / "eval"), policies=(JUDGED,),
                    episodes=2, seed=100, batch_size=8, calibration_episodes=8, replay=False, videos=0,
                    judge=str(path), device="cpu")  # fmt: skip
    res = evaluate(ev, progress=False)
    assert res["config"]["judge"] == str(path) and len(res["policies"]) == 4


def test_align_names_the_policies_reality_has_not_seen(world, tmp_path):
    store = world["store"]
    out = tmp_path / "eval"
    cfg = EvalConfig(model=str(world["model"]), zoo=str(world["zoo"]), out=str(out), policies=(JUDGED,),
                     episodes=2, seed=104, batch_size=8, calibration_episodes=8, videos=0, replay=False,
                     device="cpu")  # fmt: skip
    evaluate(cfg, progress=False)
    empty = make_fake_store(tmp_path / "other", 2)
    with pytest.raises(ValueError, match="no real episodes for 4 of the 4 judged policies: bc-reach-cnn-proprio-n4"):
        run_align(out, store=str(empty.root))
    assert store.root.is_dir()


def test_align_takes_the_truth_from_a_csv_of_real_trials(world, tmp_path):
    out = tmp_path / "eval"
    cfg = EvalConfig(model=str(world["model"]), zoo=str(world["zoo"]), out=str(out), policies=(JUDGED,),
                     episodes=2, seed=104, batch_size=8, calibration_episodes=8, videos=0, replay=False,
                     device="cpu")  # fmt: skip
    evaluate(cfg, progress=False)
    from_store = run_align(out, n_boot=20)
    rows = ["policy,task,successes,trials"]
    for p in from_store["policies"]:  # the same counts as the store's, as a team would type them
        rows.append(f"{p['policy']},{p['task']},{round(p['real_rate'] * p['real_episodes'])},{p['real_episodes']}")
    (tmp_path / "results.csv").write_text("\n".join(rows) + "\n")
    from_csv = run_align(out, true_table=str(tmp_path / "results.csv"), n_boot=20)
    assert from_csv["policies"] == from_store["policies"]  # rates, intervals and predictions alike
    assert from_csv["mae"] == from_store["mae"]
    assert "real trials supplied by the user" in from_csv["truth"]
    (tmp_path / "results.csv").write_text("\n".join(rows[:-1]) + "\n")  # one judged policy never tried
    with pytest.raises(ValueError, match="no real episodes for 1 of the 4 judged policies"):
        run_align(out, true_table=str(tmp_path / "results.csv"))


def test_a_model_whose_training_store_is_elsewhere_asks_for_the_store_to_judge_on(world, tmp_path):
    moved = tmp_path / "model"
    shutil.copytree(world["model"], moved)
    cfg = json.loads((moved / "config.json").read_text())
    cfg["data"]["store"] = str(tmp_path / "not-here")  # as a shipped model's, trained on another machine
    (moved / "config.json").write_text(json.dumps(cfg))
    ev = EvalConfig(model=str(moved), zoo=str(world["zoo"]), out=str(tmp_path / "e"), episodes=1, device="cpu")
    with pytest.raises(ValueError, match="not on this machine.*--store"):
        evaluate(ev, progress=False)


def test_scripted_policies_cannot_be_judged_in_imagination(world, tmp_path):
    zoo = tmp_path / "zoo.toml"
    zoo.write_text('[zoo]\nname = "z"\nsuite = "metaworld"\n\n[[policy]]\nname = "expert"\nbase = "expert"\n')
    cfg = EvalConfig(model=str(world["model"]), zoo=str(zoo), out=str(tmp_path / "e"), episodes=1, seed=100,
                     device="cpu")  # fmt: skip
    with pytest.raises(ValueError, match="'expert' \\(base 'expert'\\) reads privileged simulator state"):
        evaluate(cfg, progress=False)


def test_calibration_uses_only_episodes_the_weights_never_saw(world):
    from wmeval.eval.calibration import calibration_episodes

    _, meta = load_world_model(world["model"])
    index = world["store"].index()
    chosen = calibration_episodes(meta, index, ("reach",), 1000)
    assert chosen and {m.key for m in chosen} <= set(meta["data"]["val_keys"])
    assert not any(m.policy.startswith(JUDGED[:-1]) for m in chosen)  # nor the held-out judged policies
    one_class = {**meta, "data": {**meta["data"], "val_keys": [m.key for m in chosen if m.outcome]}}
    with pytest.raises(ValueError, match="unseen episodes of both outcomes.*--val-fraction"):
        calibration_episodes(one_class, index, ("reach",), 1000)


def test_a_packed_model_calibrates_on_any_episode_it_never_trained_on_but_the_judged_ones(world):
    from wmeval.eval.calibration import calibration_episodes, unseen_episodes

    _, meta = load_world_model(world["model"])
    index = world["store"].index()
    by_key = {m.key: m for m in index}
    trained = set(meta["data"]["train_keys"])
    # as a shipped model on another store knows its training episodes: by content digest, not by key
    packed = {**meta, "data": {**meta["data"], "train_digests": sorted(by_key[k].digest for k in trained)}}
    judged = {m.policy for m in index if fnmatch.fnmatch(m.policy, JUDGED)}
    pool = unseen_episodes(packed, index, judged)
    assert pool and not {m.key for m in pool} & trained and not {m.policy for m in pool} & judged
    # every unseen episode of the other policies counts, the validation ones and those never selected for training
    assert {m.key for m in pool} == {m.key for m in index if m.key not in trained and m.policy not in judged
                                      and m.outcome is not None}  # fmt: skip
    assert {m.key for m in unseen_episodes(meta, index, judged)} <= {m.key for m in pool}  # keys: validation only
    chosen = calibration_episodes(packed, index, ("reach",), 1000, judged)
    assert chosen and not any(m.key in trained for m in chosen)
    # the same content under another key (a copied or re-collected episode) is still a training episode
    renamed = [replace(m, key=f"{m.task}/copied/{m.seed:06d}", policy="copied") for m in index if m.key in trained][:3]
    assert renamed and not unseen_episodes(packed, renamed, set())


def test_closed_loop_calibration_imagines_the_training_policies_from_their_starts(world, tmp_path):
    cfg = EvalConfig(model=str(world["model"]), zoo=str(world["zoo"]), out=str(tmp_path / "eval"), policies=(JUDGED,),
                     episodes=2, seed=104, batch_size=8, calibration="closed-loop", calibration_episodes=64,
                     videos=0, replay=False, device="cpu")  # fmt: skip
    _, meta = load_world_model(world["model"])
    chosen = [m for m in world["store"].index() if m.key in set(meta["data"]["val_keys"]) and m.policy.startswith("bc-")]
    # the default, auto, resolves by how many such episodes there are, and says so
    res = evaluate(replace(cfg, calibration="auto", out=str(tmp_path / "auto")), progress=False)
    auto = res["calibration"]
    if auto["method"] == "replay":  # replays are read by the rule fitted on replays: here the verdicts' own
        assert res["replay_rule"] == res["rule"]
    wins = sum(m.outcome for m in chosen)
    enough = len(chosen) >= MIN_CLOSED_LOOP and min(wins, len(chosen) - wins) >= MIN_CLOSED_LOOP // 6
    assert auto["requested"] == "auto" and auto["method"] == ("closed-loop" if enough else "replay")
    assert f"{len(chosen)} " in auto["reason"]
    if len({m.outcome for m in chosen}) < 2:
        with pytest.raises(ValueError, match="closed-loop calibration needs validation episodes of both outcomes"):
            evaluate(cfg, progress=False)
        return
    res = evaluate(cfg, progress=False)
    cal = res["calibration"]
    assert cal["method"] == "closed-loop" and cal["episodes"] == cal["learned_policy_episodes"] == len(chosen)
    assert res["replay_rule"] != res["rule"]  # replays keep a rule fitted on replays
    assert cal["requested"] == "closed-loop"
    with pytest.raises(ValueError, match="unknown calibration 'open'"):
        replace(cfg, calibration="open")


def test_calibration_samples_make_every_sample_a_row_of_the_fit(world):
    model, meta = load_world_model(world["model"])
    store = world["store"]
    cfg = EvalConfig(model=str(world["model"]), zoo=str(world["zoo"]), out="unused", calibration="replay",
                     calibration_episodes=16, batch_size=8, device="cpu")  # fmt: skip
    one = calibrate(model, meta, store, store.index(), ("reach",), cfg, False)
    assert one.report["samples"] == 1  # the default on replays
    two = calibrate(model, meta, store, store.index(), ("reach",), replace(cfg, calibration_samples=2), False)
    assert two.report["samples"] == 2 and two.report["episodes"] == one.report["episodes"]
    assert two.report["successes"] == 2 * one.report["successes"]  # each sample labelled by its episode's outcome
    assert two.rule != one.rule  # the second sample's noise moved the fit
    assert two.replay_rule == two.rule  # calibrated on replays: one rule reads both
    # the rows it was fitted on: sample 0 repeats the one-sample fit's, and refitting them gives the rule
    n = one.report["episodes"]
    assert two.rows["sample"] == [0] * n + [1] * n and two.rows["key"][:n] == one.rows["key"]
    assert two.rows["values"][:n] == one.rows["values"]
    refit = fit_rule(np.array(two.rows["values"]), np.array(two.rows["outcome"]), cfg.rule)
    p = np.array(two.rows["values"])
    np.testing.assert_allclose(refit.probability(p), two.rule.probability(p), atol=1e-3)
    with pytest.raises(ValueError, match="calibration_samples must be >= 1"):
        replace(cfg, calibration_samples=0)


def test_closed_loop_calibration_fits_every_imagined_sample_with_its_episodes_outcome(world):
    model, meta = load_world_model(world["model"])
    store, val = world["store"], set(meta["data"]["val_keys"])
    index = store.index()
    learned = sorted(m.key for m in index if m.key in val and m.policy.startswith("bc-"))
    assert len(learned) >= 2
    # the fixture's learned policies all fail: relabel every other validation episode for two outcomes
    flip = set(learned[::2])
    index = [replace(m, outcome=not m.outcome) if m.key in flip else m for m in index]
    wins = sum(m.outcome for m in index if m.key in set(learned))
    cfg = EvalConfig(model=str(world["model"]), zoo=str(world["zoo"]), out="unused", calibration="closed-loop",
                     calibration_episodes=64, batch_size=8, device="cpu")  # fmt: skip
    c = calibrate(model, meta, store, index, ("reach",), cfg, False)
    rule, replay_rule, rep = c.rule, c.replay_rule, c.report
    assert rep["method"] == "closed-loop" and rep["episodes"] == rep["learned_policy_episodes"] == len(learned)
    k = CLOSED_LOOP_SAMPLES  # the default in closed loop; each sample is labelled by its own episode
    assert rep["samples"] == k and rep["successes"] == k * wins
    outcome = {m.key: m.outcome for m in index}
    assert sorted(set(c.rows["key"])) == learned
    assert all(outcome[x] == y for x, y in zip(c.rows["key"], c.rows["outcome"], strict=True))
    assert rule != replay_rule  # replays keep a rule fitted on replays


def test_a_model_shipped_with_calibration_readouts_fits_its_rules_on_them(world, tmp_path):
    """A packed model can carry its calibration (wmeval.models.write_readouts): the value statistics of episodes
    of its training policies it never saw, imagined closed loop; an evaluation then fits its rules on them, not on
    episodes of the store, and says so; readouts that do not fit the evaluation are refused or passed over."""
    from wmeval.checkpoint import CheckpointError
    from wmeval.eval.calibration import readouts
    from wmeval.eval.success import fit_statistics, statistics, statistics_probability
    from wmeval.models import read_readouts, write_readouts

    model, meta = load_world_model(world["model"])
    store, val = world["store"], set(meta["data"]["val_keys"])
    learned = sorted(m.key for m in store.index() if m.key in val and m.policy.startswith("bc-"))
    flip = set(learned[::2])  # the fixture's learned policies all fail: two outcomes, as in the test above
    index = [replace(m, outcome=not m.outcome) if m.key in flip else m for m in store.index()]
    cfg = EvalConfig(model=str(world["model"]), zoo=str(world["zoo"]), out="unused", calibration="closed-loop",
                     calibration_episodes=64, calibration_samples=2, batch_size=8, device="cpu")  # fmt: skip
    r = readouts(model, meta, store, index, ("reach",), cfg, False)
    c = calibrate(model, meta, store, index, ("reach",), cfg, False, judged=set())
    values, y = np.array(c.rows["values"]), np.array(c.rows["outcome"])
    parts, z = statistics(values)
    assert r["how"]["episodes"] == len(learned) and r["how"]["samples"] == 2 and r["tasks"] == ["reach"]
    np.testing.assert_allclose(r["imagined"]["z"], z)  # every imagined sample of every episode, as statistics
    assert r["imagined"]["outcome"] == [int(v) for v in y] and r["imagined"]["sample"] == c.rows["sample"]
    assert len(r["replay"]["z"]) == len(c.replay_rows["outcome"]) // 2 >= len(learned)  # every episode, one sample
    assert set(r["replay"]["sample"]) == {0}
    assert r["parts"] == [p.to_json() for p in parts]
    for stat in ("combined", "auto"):  # fitted on the statistics alone: the rule the values fit
        np.testing.assert_allclose(statistics_probability(fit_statistics(z, y, parts, stat), parts, z),
                                   fit_rule(values, y, stat).probability(values), atol=1e-9)  # fmt: skip
    shipped = tmp_path / "model"
    shutil.copytree(world["model"], shipped)
    write_readouts(shipped, r)
    back = read_readouts(shipped)
    np.testing.assert_allclose(back["imagined"]["z"], z, rtol=2e-3, atol=2e-3)  # float16
    policy_of = {m.key: m.policy for m in index}
    assert [back["policies"][q] for q in back["imagined"]["policy"]] == [policy_of[k] for k in c.rows["key"]]
    ev = EvalConfig(model=str(shipped), zoo=str(world["zoo"]), out=str(tmp_path / "eval"), policies=(JUDGED,),
                    episodes=2, seed=104, batch_size=8, videos=0, replay=False, device="cpu")  # fmt: skip
    res = evaluate(ev, progress=False)
    cal = res["calibration"]
    assert cal["method"] == "shipped" and cal["episodes"] == len(learned) and cal["samples"] == 2
    want = fit_statistics(back["imagined"]["z"], np.array(back["imagined"]["outcome"]), parts)
    np.testing.assert_allclose(res["rule"]["weights"], want.weights)
    # the fixture's few calibration policies cannot carry a rate map: the rates are the mean probabilities
    assert res["rate_map"]["lines"] == {} and "policies" in res["rate_map"]["tasks"]["reach"]["why"]
    assert all(x["probabilities"] == x["raw_probabilities"] for x in res["policies"])
    assert "rate map, reach: none (" in format_evaluation(res)
    # readouts of other tasks only: refused when asked for, passed over (saying why) by auto
    write_readouts(shipped, {**r, "tasks": ["push"]})
    with pytest.raises(ValueError, match="ships no calibration readouts"):
        evaluate(replace(ev, model=str(world["model"]), calibration="shipped", out=str(tmp_path / "none")),
                 progress=False)  # fmt: skip
    with pytest.raises(ValueError, match="readouts of .* do not fit this evaluation .*no imagined episodes of task"):
        evaluate(replace(ev, calibration="shipped", out=str(tmp_path / "shipped")), progress=False)
    res = evaluate(replace(ev, out=str(tmp_path / "auto")), progress=False)
    assert res["calibration"]["method"] != "shipped" and "readouts do not fit" in res["calibration"]["reason"]
    (shipped / "readouts.safetensors").write_bytes(b"damaged")
    with pytest.raises(CheckpointError, match="calibration readouts .* are damaged"):
        read_readouts(shipped)


def test_auto_calibration_is_closed_loop_only_with_enough_learned_episodes_of_both_outcomes():
    from types import SimpleNamespace as NS

    def eps(wins, losses):
        return [NS(outcome=True)] * wins + [NS(outcome=False)] * losses

    cfg = NS(calibration="auto", starts="reset", zoo="zoo.toml")
    k = MIN_CLOSED_LOOP // 6
    assert closed_loop_method(cfg, eps(20, 20), eps(k, MIN_CLOSED_LOOP - k))[0] == "closed-loop"
    assert closed_loop_method(cfg, eps(20, 20), eps(k - 1, MIN_CLOSED_LOOP))[0] == "replay"  # too few successes
    method, reason = closed_loop_method(cfg, eps(20, 20), eps(10, MIN_CLOSED_LOOP - 11))  # one too few
    assert method == "replay" and f"{MIN_CLOSED_LOOP - 1} of the 40" in reason
    assert closed_loop_method(NS(**{**vars(cfg), "starts": "logged"}), [], eps(30, 30))[0] == "replay"
    assert closed_loop_method(NS(**{**vars(cfg), "calibration": "replay"}), [], eps(30, 30)) == ("replay", "requested")
    with pytest.raises(ValueError, match="both outcomes from learned policies of zoo.toml"):
        closed_loop_method(NS(**{**vars(cfg), "calibration": "closed-loop"}), [], eps(5, 0))


def test_a_judge_can_train_on_the_world_models_imagination_of_its_episodes(world, tmp_path):
    """`train-judge --imagined`: the episodes' real first frames, then what the world model imagines from their
    recorded actions (one noise draw per episode, whatever the batch), with their real labels."""
    import torch

    from wmeval.checkpoint import read_config
    from wmeval.model.world_model import load_world_model
    from wmeval.train.judge import JudgeTrainConfig, _episode_seed, imagine_arrays, judge_episodes, train_judge

    train, _, _ = judge_episodes(world["model"])
    wm, _ = load_world_model(world["model"])
    few = train.subset(list(range(5)))
    ident = {"model": "m", "step": 1}
    a = imagine_arrays(wm, few, tmp_path / "a.safetensors", ident, seed=3, batch=2, progress=False)
    b = imagine_arrays(wm, few, tmp_path / "b.safetensors", ident, seed=3, batch=64, progress=False)
    assert a.keys == few.keys and list(a.lens) == list(few.lens)
    fa, fr = torch.from_numpy(a.frames()), torch.from_numpy(few.frames())
    for name in ("actions", "value", "success"):
        assert torch.equal(getattr(a, name)[fa], getattr(few, name)[fr])
    assert torch.equal(a.outcome, few.outcome)
    assert torch.allclose(a.latents, b.latents, atol=1e-5)  # float sums only
    first = torch.from_numpy(a.starts)
    assert torch.allclose(a.latents[first], few.latents[torch.from_numpy(few.starts)], atol=1e-5)  # real first frames
    assert not torch.allclose(a.latents[first + 1], few.latents[torch.from_numpy(few.starts) + 1])
    # frame 1 of episode 0 by hand: the start frame, then its first action chunk with the episode's own noise
    norm = wm.latent_mean, wm.latent_std
    z0 = ((few.latents[few.starts[0]] - norm[0][:, None, None]) / norm[1][:, None, None])[None, None]
    p0 = wm.norm_proprio(few.proprio[few.starts[0]])[None, None]
    K, A = few.actions.shape[1:]
    cache, _ = wm.start(z0, p0, torch.zeros(1, 1, K, A), torch.zeros(1, 1, dtype=torch.bool))
    g = [torch.Generator().manual_seed(_episode_seed(3, few.keys[0]))]
    z1, _, _ = wm.next_frame(cache, few.actions[few.starts[0]][None], g)
    assert torch.allclose(a.latents[a.starts[0] + 1], z1[0] * norm[1][:, None, None] + norm[0][:, None, None], atol=1e-5)
    again = imagine_arrays(wm, few, tmp_path / "a.safetensors", ident, seed=3, progress=False)  # reused
    assert torch.equal(again.latents, a.latents)

    cfg = JudgeTrainConfig(model=str(world["model"]), out=str(tmp_path / "judge"), steps=4, batch_size=8,
                           eval_every=4, frames=2, imagined=True, device="cpu")  # fmt: skip
    saved = read_config(train_judge(cfg, progress=False))
    assert saved["train"]["imagined"] and 0 <= saved["metrics"]["val_auroc"] <= 1
    assert (tmp_path / "judge" / "imagined-train.safetensors").is_file()
    with pytest.raises(ValueError, match="other settings"):
        train_judge(replace(cfg, imagined=False), progress=False)


def test_logged_starts_branch_into_other_policies_episodes(world, tmp_path):
    """`--starts logged`: every judged policy takes over the same states inside recorded episodes of policies
    that are not judged (never its own), with the real frames and actions before them as context; the rule is
    fitted on validation episodes branched the same way, and only `branch_frames` frames are imagined."""
    from wmeval.eval.branches import BRANCH_SEED0, branch_replay_values, logged_starts

    store, index = world["store"], world["store"].index()
    task = next(m.task for m in index if fnmatch.fnmatch(m.policy, JUDGED))
    starts = logged_starts(store, index, task, [JUDGED], 6, frames=1, context=2, seed=0)
    assert [s.start.seed for s in starts] == list(range(BRANCH_SEED0, BRANCH_SEED0 + 6))
    again = logged_starts(store, index, task, [JUDGED], 6, frames=1, context=2, seed=0)  # repeatable
    assert all(np.array_equal(a.images, b.images) and np.array_equal(a.context[2], b.context[2])
               for a, b in zip(starts, again, strict=True))  # fmt: skip
    others = [store.load(m.key) for m in index if m.task == task and not fnmatch.fnmatch(m.policy, JUDGED)]

    def recorded_here(s, ep, t) -> bool:  # s is frame t of ep, its context ep's real past, before any success
        frames, proprio, actions = s.context
        return (np.array_equal(frames, ep.frames[t - 1 : t + 1]) and np.array_equal(actions, ep.actions[t - 1 : t])
                and np.array_equal(proprio, ep.proprio[t - 1 : t + 1]) and not ep.success[: t + 1].any())  # fmt: skip

    for s in starts:  # each one a recorded state of a policy that is not judged
        assert any(recorded_here(s, ep, t) for ep in others for t in range(2, ep.meta.length)), s.start
    with pytest.raises(ValueError, match="no recorded episode of .* by a policy that is not judged"):
        logged_starts(store, index, task, ["*"], 2, frames=1, context=2, seed=0)

    seen = []  # a policy takes over with the real context as its own past: it acts on the context frames first

    class Recording(ConstantPolicy):
        def act(self, obs):
            seen.append(obs.state.copy())
            return super().act(obs)

    @dataclass(frozen=True)
    class RecordingSpec:
        name: str = "recording"

        def build(self, task, layout):
            return Recording(k=FAKE_LAYOUT.frame_skip)

    model, _ = load_world_model(world["model"])
    (e,) = imagine(model, FAKE_LAYOUT, [Job(RecordingSpec(), task, starts[0])], progress=False, steps=2)
    assert e.error is None and len(seen) == 3  # context frame 0, then the branch frame and the next one
    assert np.array_equal(seen[0], starts[0].context[1][0]) and np.array_equal(seen[1], starts[0].state)

    cfg = EvalConfig(model=str(world["model"]), zoo=str(world["zoo"]), out=str(tmp_path / "logged"), policies=(JUDGED,),
                     episodes=4, seed=100, batch_size=8, calibration_episodes=16, starts="logged", branch_frames=2,
                     branch_context=2, device="cpu")  # fmt: skip
    res = evaluate(cfg, progress=False)
    assert res["timing"]["frames_per_episode"] == 2 and res["seeds"] == [100, 103]  # the truth's starts
    for p in res["policies"]:
        assert p["seeds"] == list(range(BRANCH_SEED0, BRANCH_SEED0 + 4)) and len(p["probabilities"]) == 4
    assert res["replay"]["episodes"] > 0 and not list((tmp_path / "logged").glob("videos/*.gif"))
    metas = [m for m in index if fnmatch.fnmatch(m.policy, JUDGED)][:5]
    one = np.concatenate([branch_replay_values(model, store, [m], 2, 2, progress=False) for m in metas])
    assert np.allclose(branch_replay_values(model, store, metas, 2, 2, progress=False), one, atol=1e-5)
    run_align(str(tmp_path / "logged"), out=str(tmp_path / "logged" / "alignment.json"))
    for bad in ({"starts": "middle"}, {"branch_frames": 0}, {"calibration": "closed-loop"}):
        with pytest.raises(ValueError, match="starts|branch_frames|calibrates on replays"):
            replace(cfg, **bad)


def test_a_proprio_net_trains_on_the_models_episodes_and_sets_the_imagined_proprio(world, tmp_path):
    """`wmeval train-proprio` regresses the next proprio on the world model's training episodes; attached to the
    model, every imagined frame's proprio is the net's prediction from the padded history (kept to the range
    seen in training), the rollout repeats, and `evaluate --proprio-net` judges with it."""
    import torch

    from wmeval.checkpoint import read_config
    from wmeval.model.proprio import load_proprio_net, pad_history
    from wmeval.model.rollout import begin
    from wmeval.model.world_model import load_world_model
    from wmeval.train.proprio import ProprioTrainConfig, train_proprio

    cfg = ProprioTrainConfig(model=str(world["model"]), out=str(tmp_path / "pnet"), steps=20, batch_size=16,
                             history=2, hidden=16, device="cpu")  # fmt: skip
    path = train_proprio(cfg, progress=False)
    saved = read_config(path)
    assert saved["kind"] == "proprio-net" and saved["episodes"]["train"] == len(read_config(world["model"])
                                                                                ["data"]["train_keys"])
    assert np.isfinite(saved["metrics"]["val_mae"]) and np.isfinite(saved["metrics"]["val_mae_constant_velocity"])
    assert train_proprio(cfg, progress=False) == path  # finished: reused
    with pytest.raises(ValueError, match="other settings"):
        train_proprio(replace(cfg, history=1), progress=False)
    imagined = train_proprio(replace(cfg, out=str(tmp_path / "pnet-imagined"), imagined=True), progress=False)
    assert read_config(imagined)["train"]["imagined"] and (tmp_path / "pnet-imagined" / "imagined-train.safetensors").is_file()
    net, _ = load_proprio_net(path)
    with pytest.raises(ValueError, match=r"not a 'proprio-net' \(`wmeval train-proprio`\)"):
        load_proprio_net(world["model"])
    model, _ = load_world_model(world["model"])
    ep = world["store"].load(world["store"].index()[0].key)
    frames, proprio = torch.from_numpy(np.array(ep.frames[:1]))[None], torch.from_numpy(np.array(ep.proprio[:1]))[None]
    chunks = torch.from_numpy(np.array(ep.actions[:3]))[None]

    def roll(with_net: bool):
        model.proprio_with(net if with_net else None)
        im = begin(model, frames, proprio)
        hist = (model.norm_proprio(proprio.float()), torch.zeros(1, 1, *chunks.shape[2:]))
        out = []
        for t in range(3):
            ph, ah = pad_history(*hist, net.cfg.history + 1)
            z_now = im.cache.last[0][:, 0]
            want = net(ph, torch.cat([ah[:, 1:], chunks[:, t : t + 1]], 1), z_now)
            step = im.step(chunks[:, t], torch.Generator().manual_seed(t))
            out.append(step.proprio[:, 0])
            if with_net:
                torch.testing.assert_close(step.proprio[:, 0], model.denorm_proprio(want))
            hist = (torch.cat([hist[0], model.norm_proprio(step.proprio[:, 0])[:, None]], 1),
                    torch.cat([hist[1], chunks[:, t : t + 1]], 1))  # fmt: skip
        return torch.stack(out)

    a, b, plain = roll(True), roll(True), roll(False)
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, plain)
    low, high = model.denorm_proprio(net.low), model.denorm_proprio(net.high)
    assert bool(((a >= low - 1e-5) & (a <= high + 1e-5)).all())
    bad = load_proprio_net(path)[0]
    bad.cfg = replace(bad.cfg, action_dim=bad.cfg.action_dim + 1)
    with pytest.raises(ValueError, match="train one for it"):
        model.proprio_with(bad)
    ev = EvalConfig(model=str(world["model"]), zoo=str(world["zoo"]), out=str(tmp_path / "eval"), policies=(JUDGED,),
                    episodes=2, seed=100, batch_size=8, calibration_episodes=8, replay=False, videos=0,
                    proprio_net=str(path), device="cpu")  # fmt: skip
    res = evaluate(ev, progress=False)
    assert res["config"]["proprio_net"] == str(path) and len(res["policies"]) == 4


def test_a_model_fine_tuned_with_proprio_given_samples_frames_given_the_proprio_nets(world, tmp_path, capsys):
    """`train --init-from M --proprio-given Q` starts from M's dynamics (its new proprio noise-level input zero,
    so it begins as M) and learns frames given a clean proprio; with a proprio net every imagined frame's proprio
    is the net's prediction and the frame is sampled given it clean (not by replacement). A model of other sizes
    cannot be the start, nor can a model without the input be handed a proprio noise level."""
    import torch

    from wmeval.model.rollout import begin
    from wmeval.model.world_model import load_world_model
    from wmeval.train.proprio import ProprioTrainConfig, train_proprio
    from wmeval.train.world_model import WMTrainConfig, train_world_model

    run = world["model"].resolve().parent.parent
    base = WMTrainConfig(store=str(world["store"].root), out=str(tmp_path / "given"), preset="tiny", window=4,
                         steps=1, batch_size=4, eval_every=4, save_every=4, warmup=2, device="cpu", val_fraction=0.3,
                         exclude_policies=(JUDGED,), codec_steps=6, codec_batch=8, codec_from=str(run),
                         init_from=str(world["model"]),
                         proprio_given=0.5)  # fmt: skip
    first, _ = load_world_model(train_world_model(base, progress=False))
    source, _ = load_world_model(world["model"])
    assert first.cfg.dynamics.proprio_given == 0.5
    assert "new, at their initialisation: proprio_tau_in.0, proprio_tau_in.2" in capsys.readouterr().out
    # one step at warm-up's small learning rate from the source's weights: close to them, not equal
    theirs = source.dynamics.state_dict()
    moved = [float((v - theirs[k]).abs().max()) for k, v in first.dynamics.state_dict().items() if k in theirs]
    assert len(moved) == len(theirs) and 0 < max(moved) < 0.01
    tuned, _ = load_world_model(train_world_model(replace(base, out=str(tmp_path / "given8"), steps=8),
                                                  progress=False))  # fmt: skip
    pcfg = ProprioTrainConfig(model=str(tmp_path / "given8" / "model"), out=str(tmp_path / "pnet"), steps=20,
                              batch_size=16, history=2, hidden=16, device="cpu")  # fmt: skip
    from wmeval.model.proprio import load_proprio_net

    net, _ = load_proprio_net(train_proprio(pcfg, progress=False))
    ep = world["store"].load(world["store"].index()[0].key)
    frames, proprio = torch.from_numpy(np.array(ep.frames[:1]))[None], torch.from_numpy(np.array(ep.proprio[:1]))[None]
    chunks = torch.from_numpy(np.array(ep.actions[:3]))[None]

    def roll(model, with_net: bool):
        model.proprio_with(net if with_net else None)
        im = begin(model, frames, proprio)
        steps = []
        for t in range(3):  # each frame's proprio and (normalised) latents
            p = im.step(chunks[:, t], torch.Generator().manual_seed(t), decode=False).proprio
            steps.append((p, im.cache.last[0].clone()))
        return steps

    given = roll(tuned, True)
    again = roll(tuned, True)
    for a, b in zip(given, again, strict=True):
        torch.testing.assert_close(a, b)
    own = roll(tuned, False)
    assert not torch.allclose(given[-1][0], own[-1][0])
    # replacement (what a model without the input does) samples other frames from the same noise
    tuned.dynamics.cfg = replace(tuned.dynamics.cfg, proprio_given=0.0)
    replaced = roll(tuned, True)
    torch.testing.assert_close(replaced[0][0], given[0][0])
    assert not torch.equal(replaced[0][1], given[0][1])
    d = source.cfg.dynamics
    with pytest.raises(ValueError, match="one noise level per frame"):
        source.dynamics.tokens(torch.zeros(1, 1, d.views, d.latent_channels, d.grid, d.grid),
                               torch.zeros(1, 1, d.state_dim), torch.zeros(1, 1, d.chunk_len, d.action_dim),
                               torch.ones(1, 1, dtype=torch.bool), torch.ones(1, 1), tau_p=torch.ones(1, 1))  # fmt: skip
    with pytest.raises(ValueError, match="do not fit this model"):
        train_world_model(replace(base, out=str(tmp_path / "wide"), d_model=128, heads=4), progress=False)
    from wmeval.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match="not a checkpoint"):
        train_world_model(replace(base, out=str(tmp_path / "nowhere"), init_from=str(tmp_path / "missing")),
                          progress=False)  # fmt: skip
    assert not (tmp_path / "nowhere" / "codec").exists()  # refused before any work


def test_pad_history_pads_a_short_history_as_a_robot_at_rest():
    import torch

    from wmeval.model.proprio import pad_history

    p = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])  # (B=1, T=2, S=2)
    a = torch.ones(1, 2, 2, 3)
    hp, ha = pad_history(p, a, 4)
    torch.testing.assert_close(hp, torch.tensor([[[1.0, 2.0], [1.0, 2.0], [1.0, 2.0], [3.0, 4.0]]]))
    torch.testing.assert_close(ha, torch.cat([torch.zeros(1, 2, 2, 3), a], 1))
    hp, ha = pad_history(p, a, 1)  # longer than needed: the newest frames
    torch.testing.assert_close(hp, p[:, -1:])
    torch.testing.assert_close(ha, a[:, -1:])
