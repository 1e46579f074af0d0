import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import replace

import numpy as np
import pytest
from conftest import FAKE_LAYOUT, ConstantPolicy, FakeReality

from wmeval.data.check import check_store
from wmeval.data.store import EpisodeStore, StoreError
from wmeval.rollout import rollout


def make_episode(seed: int = 0, speed: float = 1.0):
    env = FakeReality()
    return rollout(env, ConstantPolicy(speed), env.start(seed), f"const-{speed}", {"name": f"const-{speed}"})


def test_round_trip_is_exact(tmp_path):
    store = EpisodeStore.create(tmp_path / "s", FAKE_LAYOUT)
    ep = make_episode(3)
    meta = store.append(ep)
    back = store.load(meta.key)
    for name, a in ep.tensors().items():
        b = getattr(back, name)
        assert b.dtype == a.dtype and b.shape == a.shape
        np.testing.assert_array_equal(np.asarray(b), a)
    assert back.meta == meta and meta.outcome == bool(ep.success.any())
    assert meta.start["seed"] == 3 and meta.versions["python"]
    assert isinstance(back.frames, np.memmap)  # reads are memory-mapped
    assert store.keys() == [meta.key] and len(store) == 1


def test_episode_layout_follows_contract(tmp_path):
    ep = make_episode(0)
    T = FAKE_LAYOUT.horizon + 1
    assert ep.frames.shape == (T, 1, 16, 16, 3) and ep.frames.dtype == np.uint8
    assert ep.actions.shape == (T, FAKE_LAYOUT.frame_skip, 4) and ep.actions.dtype == np.float32
    assert ep.proprio.shape == (T, 4) and ep.success.shape == (T,) and not ep.success[0]


def test_other_layout_is_refused_naming_both(tmp_path):
    EpisodeStore.create(tmp_path / "s", FAKE_LAYOUT)
    other = replace(FAKE_LAYOUT, image_size=32)
    with pytest.raises(StoreError, match=r"image_size: 16 vs 32"):
        EpisodeStore.create(tmp_path / "s", other)
    store = EpisodeStore(tmp_path / "s")
    ep = make_episode()
    ep.frames = np.zeros((ep.frames.shape[0], 1, 32, 32, 3), np.uint8)
    with pytest.raises(
        StoreError, match=r"frames is uint8\[6, 1, 32, 32, 3\] but the store .* holds uint8\[6, 1, 16, 16, 3\]"
    ):
        store.append(ep)
    assert len(store) == 0


def test_nan_and_duplicates_are_refused(tmp_path):
    store = EpisodeStore.create(tmp_path / "s", FAKE_LAYOUT)
    ep = make_episode()
    store.append(ep)
    with pytest.raises(StoreError, match="immutable"):
        store.append(ep)
    bad = make_episode(1)
    bad.actions[2, 0, 0] = np.nan
    with pytest.raises(StoreError, match="NaN"):
        store.append(bad)
    assert len(store) == 1


def test_fingerprint_tracks_content(tmp_path):
    a = EpisodeStore.create(tmp_path / "a", FAKE_LAYOUT)
    b = EpisodeStore.create(tmp_path / "b", FAKE_LAYOUT)
    for s in (0, 1):
        a.append(make_episode(s))
        b.append(make_episode(s))
    assert a.fingerprint() == b.fingerprint()
    b.append(make_episode(2))
    assert a.fingerprint() != b.fingerprint()


def test_truncated_and_corrupted_files_are_reported_and_never_used(tmp_path):
    store = EpisodeStore.create(tmp_path / "s", FAKE_LAYOUT)
    keys = [store.append(make_episode(s)).key for s in range(3)]
    truncated, flipped = store.path(keys[0]), store.path(keys[1])
    truncated.write_bytes(truncated.read_bytes()[:-100])
    raw = bytearray(flipped.read_bytes())
    raw[-50] ^= 0xFF  # a bit flip inside the tensor data
    flipped.write_bytes(bytes(raw))
    rep = check_store(store.root, progress=False)
    assert not rep.ok and rep.n_ok == 1 and rep.n_episodes == 3
    assert {p.where for p in rep.problems} == {keys[0], keys[1]}
    assert any("truncated" in p.what for p in rep.problems)
    assert any("digest" in p.what for p in rep.problems)
    with pytest.raises(StoreError, match="truncated"):
        store.load(keys[0])
    with pytest.raises(StoreError, match="corrupted"):
        store.load(keys[1])
    store.load(keys[2])


WRITER = textwrap.dedent(
    """
    import sys, time
    import safetensors.numpy as stn
    sys.path.insert(0, {tests!r})
    from conftest import FAKE_LAYOUT, ConstantPolicy, FakeReality
    from wmeval.data.store import EpisodeStore
    from wmeval.rollout import rollout

    store = EpisodeStore({root!r})
    real_save = stn.save_file

    def slow_save(tensors, path, metadata=None):  # write half the file, then hang: killed mid-episode
        real_save(tensors, path, metadata=metadata)
        data = open(path, "rb").read()
        open(path, "wb").write(data[: len(data) // 2])
        print("writing", flush=True)
        time.sleep(60)

    stn.save_file = slow_save
    env = FakeReality()
    store.append(rollout(env, ConstantPolicy(), env.start(7), "const-1.0", {{}}))
    """
)


def test_killed_writer_leaves_readable_store_without_partial_episode(tmp_path):
    store = EpisodeStore.create(tmp_path / "s", FAKE_LAYOUT)
    committed = store.append(make_episode(0)).key
    script = WRITER.format(tests=os.path.dirname(__file__), root=str(store.root))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "writing"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    time.sleep(0.05)
    assert store.keys() == [committed]  # the half-written episode is invisible
    rep = check_store(store.root, progress=False)
    assert rep.ok and rep.n_episodes == 1 and len(rep.leftovers) == 1
    check_store(store.root, clean=True, progress=False)
    assert store.temp_files() == []


@pytest.mark.parametrize(
    "field, name",
    [("task", "../escape"), ("task", "/etc/passwd"), ("policy", ".."), ("policy", "a/b"), ("policy", "with space"),
     ("task", ""), ("policy", "new\nline"), ("policy", ".hidden"), ("task", "x" * 200), ("policy", "caf\u00e9"),
     ("task", "C:\\evil")],
)  # fmt: skip
def test_names_that_would_leave_the_store_are_refused(tmp_path, field, name):
    """Task and policy names become path components; imported or hand-written ones cannot escape the store."""
    store = EpisodeStore.create(tmp_path / "s", FAKE_LAYOUT)
    ep = make_episode()
    bad = replace(ep, meta=replace(ep.meta, **{field: name}))
    with pytest.raises(StoreError, match="cannot name a file"):
        store.append(bad)
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "store.json"]
    with pytest.raises(StoreError):
        store.load(f"{name}/p/000001" if field == "task" else f"t/{name}/000001")


def test_keys_are_three_safe_components(tmp_path):
    store = EpisodeStore.create(tmp_path / "s", FAKE_LAYOUT)
    for key in ("reach/p", "reach/p/1/2", "reach/p/abc", "../../x/000001"):
        with pytest.raises(StoreError):
            store.path(key)
    assert store.path("reach/p/000001") == store.root / "episodes" / "reach" / "p" / "000001.safetensors"


def test_a_full_disk_is_an_os_error_naming_the_file_and_leaves_nothing(tmp_path, monkeypatch):
    """safetensors reports a full disk with its own error type; the store turns it into the OSError it is."""
    import errno

    import safetensors.numpy

    store = EpisodeStore.create(tmp_path / "s", FAKE_LAYOUT)
    store.append(make_episode(seed=1))
    before = sorted(p.name for p in tmp_path.rglob("*"))

    def full(*args, **kwargs):
        raise Exception("Error while serializing: I/O error: No space left on device (os error 28)")  # noqa: TRY002

    monkeypatch.setattr(safetensors.numpy, "save_file", full)
    with pytest.raises(OSError) as e:
        store.append(make_episode(seed=2))
    assert e.value.errno == errno.ENOSPC and "000002" in e.value.filename
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # no temporary file, nothing damaged
    assert store.load(store.keys()[0]).meta.seed == 1
