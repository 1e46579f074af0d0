"""Property and fuzz tests (Hypothesis, bounded examples): damaged episode files, random zoo files and
checkpoint configs give one clear error and never a traceback; the alignment metrics keep their invariants
and agree with scipy's."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
from conftest import make_fake_store
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

from wmeval.align.metrics import kendall_tau_b, mmrv, pairwise_accuracy, pearson, spearman
from wmeval.checkpoint import CheckpointError
from wmeval.data.store import EpisodeStore
from wmeval.metrics import auroc
from wmeval.model.world_model import load_world_model
from wmeval.stats import wilson_interval
from wmeval.zoo import load_zoo

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
FAST = settings(max_examples=150, deadline=None)


# ---- damaged episode files ----


@pytest.fixture(scope="module")
def one_episode(tmp_path_factory):
    store = make_fake_store(tmp_path_factory.mktemp("fuzz") / "s", 1)
    key = store.keys()[0]
    return store.root, key, store.path(key).read_bytes(), store.load(key)


def _mutate(data: bytes, kind: str, where: int, value: int) -> bytes:
    b = bytearray(data)
    if kind == "truncate":
        return bytes(b[: where % len(b)])
    if kind == "flip":
        b[where % len(b)] ^= 1 << (value % 8)
    elif kind == "header-length":
        b[:8] = value.to_bytes(8, "little")
    elif kind == "header-byte":
        n = int.from_bytes(b[:8], "little")
        b[8 + where % n] = value % 256
    return bytes(b)


@FUZZ
@given(kind=st.sampled_from(["truncate", "flip", "header-length", "header-byte"]),
       where=st.integers(0, 2**31), value=st.integers(0, 2**63 - 1))  # fmt: skip
def test_damaged_episode_file_is_an_error_naming_it_never_a_crash(one_episode, tmp_path, kind, where, value):
    root, key, data, original = one_episode
    copy = tmp_path / "s"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(root, copy)
    store = EpisodeStore(copy)
    damaged = _mutate(data, kind, where, value)
    store.path(key).write_bytes(damaged)
    try:
        ep = store.load(key, verify=True)
    except ValueError as e:  # StoreError / CorruptFile
        assert key.split("/")[-1] in str(e) or str(store.path(key)) in str(e), str(e)
        return
    assert damaged == data or all(np.array_equal(getattr(ep, f), getattr(original, f)) for f in
                                  ("frames", "actions", "proprio", "success"))  # fmt: skip


# ---- random zoo files ----

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)
POLICY = st.fixed_dictionaries(
    {"name": st.text(max_size=10)},
    optional={"base": st.sampled_from(["expert", "random", "learned", "oracle", ""]) | JSON, "degrade": JSON,
              "checkpoint": JSON, "tasks": JSON, "weight": JSON},
)  # fmt: skip


@FUZZ
@given(zoo=st.one_of(JSON, st.fixed_dictionaries({"policy": st.lists(POLICY, max_size=3)}, optional={"suite": JSON})))
def test_random_zoo_files_load_or_give_a_clear_error(tmp_path, zoo):
    path = tmp_path / "zoo.json"
    path.write_text(json.dumps(zoo))
    try:
        load_zoo(path)
    except ValueError as e:
        assert str(e)


# ---- damaged checkpoint configs ----


def _poke(cfg: dict, path: list[str], value) -> dict:
    node = cfg
    for k in path[:-1]:
        node = node[k]
    if value == "<delete>":
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return cfg


def _paths(d: dict, prefix=()) -> list[list[str]]:
    out = []
    for k, v in d.items():
        out.append([*prefix, k])
        if isinstance(v, dict):
            out += _paths(v, (*prefix, k))
    return out


@FUZZ
@given(data=st.data())
def test_damaged_world_model_config_is_a_clear_error(world, tmp_path, data):
    model = tmp_path / "model"
    shutil.rmtree(model, ignore_errors=True)
    shutil.copytree(world["model"], model)
    cfg = json.loads((model / "config.json").read_text())
    paths = [p for p in _paths(cfg) if p[0] in ("kind", "model", "layout", "data", "train")]
    target = data.draw(st.sampled_from(paths))
    value = data.draw(st.one_of(st.just("<delete>"), JSON))
    (model / "config.json").write_text(json.dumps(_poke(cfg, target, value)))
    try:
        load_world_model(model)
    except CheckpointError as e:
        assert "config.json" in str(e) or "checkpoint" in str(e) or "model.safetensors" in str(e), str(e)


# ---- metric invariants and agreement with scipy ----

RATES = st.lists(st.integers(0, 20).map(lambda k: k / 20), min_size=3, max_size=12)


@FAST
@given(real=RATES)
def test_a_perfect_ranking_has_mmrv_0_and_spearman_1(real):
    real = np.array(real)
    pred = 0.1 + 0.5 * real  # any increasing map
    assert mmrv(real, pred) == 0
    if np.ptp(real) > 0:
        assert spearman(real, pred) == pytest.approx(1.0) and pairwise_accuracy(real, pred) == 1.0


@FAST
@given(real=RATES, data=st.data())
def test_metrics_do_not_depend_on_how_policies_are_ordered_or_named(real, data):
    real = np.array(real)
    pred = np.array(data.draw(st.lists(st.floats(0, 1), min_size=len(real), max_size=len(real))))
    perm = np.array(data.draw(st.permutations(range(len(real)))))
    for metric in (mmrv, spearman, pearson, kendall_tau_b, pairwise_accuracy):
        a, b = metric(real, pred), metric(real[perm], pred[perm])
        assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, abs=1e-12), metric.__name__


@FAST
@given(real=RATES, data=st.data(), scale=st.floats(0.01, 100), shift=st.floats(-10, 10))
def test_pearson_is_unchanged_by_an_increasing_affine_map_of_the_predictions(real, data, scale, shift):
    real = np.array(real)
    pred = np.array(data.draw(st.lists(st.floats(0, 1), min_size=len(real), max_size=len(real))))
    a, b = pearson(real, pred), pearson(real, scale * pred + shift)
    assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, abs=1e-7)


@FAST
@given(real=RATES, data=st.data())
def test_correlations_match_scipy(real, data):
    real = np.array(real)
    pred = np.array(data.draw(st.lists(st.integers(0, 10).map(lambda k: k / 10), min_size=len(real),
                                       max_size=len(real))))  # fmt: skip
    if np.ptp(real) == 0 or np.ptp(pred) == 0:
        assert math.isnan(pearson(real, pred)) and math.isnan(spearman(real, pred))
        return
    assert pearson(real, pred) == pytest.approx(stats.pearsonr(real, pred).statistic, abs=1e-9)
    assert spearman(real, pred) == pytest.approx(stats.spearmanr(real, pred).statistic, abs=1e-9)
    assert kendall_tau_b(real, pred) == pytest.approx(stats.kendalltau(real, pred, variant="b").statistic, abs=1e-9)


@FAST
@given(scores=st.lists(st.integers(0, 5), min_size=2, max_size=30), data=st.data())
def test_auroc_matches_the_mann_whitney_u_statistic(scores, data):
    labels = np.array(data.draw(st.lists(st.booleans(), min_size=len(scores), max_size=len(scores))))
    scores = np.array(scores, float)
    if labels.all() or not labels.any():
        assert math.isnan(auroc(scores, labels))
        return
    u = stats.mannwhitneyu(scores[labels], scores[~labels]).statistic
    assert auroc(scores, labels) == pytest.approx(u / (labels.sum() * (~labels).sum()), abs=1e-12)


@FAST
@given(n=st.integers(1, 500), data=st.data())
def test_wilson_interval_matches_scipy(n, data):
    k = data.draw(st.integers(0, n))
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    low, high = wilson_interval(k, n)
    assert low == pytest.approx(ci.low, abs=1e-6) and high == pytest.approx(ci.high, abs=1e-6)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(8, 60), seed=st.integers(0, 10_000))
def test_platt_scaling_finds_the_same_optimum_as_scipy(n, seed):
    """The success rule's Platt fit (damped Newton) against a general optimiser on the same penalised
    likelihood (logistic regression with a light pull towards the identity map)."""
    from scipy.optimize import minimize

    from wmeval.eval.success import _platt

    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(0.7 * x - 0.3)))).astype(float)
    X = np.stack([x, np.ones_like(x)], 1)

    def nll(w):
        z = X @ w
        return np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * 1e-2 * np.sum((w - [1.0, 0.0]) ** 2)

    ref = minimize(nll, np.array([1.0, 0.0]), method="BFGS", options={"gtol": 1e-10}).x
    a, b = _platt(x, y)
    assert nll(np.array([a, b])) <= nll(ref) + 1e-7
    assert a == pytest.approx(ref[0], abs=1e-3) and b == pytest.approx(ref[1], abs=1e-3)


@settings(max_examples=20, deadline=None)
@given(n=st.integers(10, 80), seed=st.integers(0, 10_000))
def test_combined_rule_fit_finds_the_same_optimum_as_scipy(n, seed):
    """The combined rule's logistic regression (penalised weights, free bias) against a general optimiser."""
    from scipy.optimize import minimize

    from wmeval.eval.success import _logistic

    rng = np.random.default_rng(seed)
    X = np.hstack([rng.normal(size=(n, 3)), np.ones((n, 1))])
    y = (rng.random(n) < 1 / (1 + np.exp(-X @ [0.8, -0.4, 0.0, 0.2]))).astype(float)
    l2, prior = np.array([1.0, 1.0, 1.0, 0.0]), np.zeros(4)

    def nll(w):
        z = X @ w
        return np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * np.sum(l2 * (w - prior) ** 2)

    if y.min() == y.max():  # the free bias has no finite optimum without both outcomes
        return
    ref = minimize(nll, prior, method="BFGS", options={"gtol": 1e-10}).x
    w = _logistic(X, y, prior, l2)
    assert nll(w) <= nll(ref) + 1e-6
    np.testing.assert_allclose(w, ref, atol=2e-3)


@settings(max_examples=10, deadline=None)
@given(n=st.integers(20, 80), p=st.floats(0.1, 0.9), seed=st.integers(0, 1000))
def test_percentile_bootstrap_of_a_rate_agrees_with_scipy(n, p, seed):
    """A policy's predicted-rate interval (percentile bootstrap over its episodes) against scipy's."""
    from wmeval.eval.success import bootstrap_mean

    x = (np.random.default_rng(seed).random(n) < p).astype(float)
    if np.ptp(x) == 0:
        return
    mean, low, high = bootstrap_mean(x, n=20000, seed=seed)
    ci = stats.bootstrap((x,), np.mean, n_resamples=20000, method="percentile", random_state=seed).confidence_interval
    assert mean == pytest.approx(x.mean())
    # the mean of n 0/1 values moves in steps of 1/n: the two percentile rules may land one step apart
    tol = 1 / n + 0.01
    assert low == pytest.approx(ci.low, abs=tol) and high == pytest.approx(ci.high, abs=tol)
