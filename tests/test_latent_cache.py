"""The latent cache is written in pieces and read memory-mapped: it must read back exactly, through the
safetensors library's own reader too, and training must see the same batches as from in-memory arrays."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors import safe_open

from wmeval.data.safetensors_io import locate, stream_write
from wmeval.data.windows import EpisodeArrays, Normalisation, WindowSampler, cache_writer


def random_episodes(n: int, seed: int = 0) -> tuple[list[int], list[dict[str, np.ndarray]]]:
    g = np.random.default_rng(seed)
    lens = [int(x) for x in g.integers(3, 9, n)]
    eps = [{"latents": g.normal(2.0, 3.0, (t, 1, 4, 2, 2)).astype(np.float32),
            "proprio": g.normal(0.5, 0.1, (t, 3)).astype(np.float32),
            "actions": g.uniform(-1, 1, (t, 2, 3)).astype(np.float32),
            "value": g.uniform(0, 1, t).astype(np.float32), "success": (g.random(t) < 0.3).astype(np.float32)}
           for t in lens]  # fmt: skip
    return lens, eps


def write_cache(path, lens, eps) -> None:
    keys = [f"k{i}" for i in range(len(lens))]
    with cache_writer(path, lens, (1, 4, 2, 2), (3,), (2, 3), {"note": "test"}, keys) as put:
        for i in reversed(range(len(lens))):  # any order
            put(i, eps[i], i % 2 == 0)


def test_cache_reads_back_exactly_and_with_the_safetensors_reader(tmp_path):
    lens, eps = random_episodes(7)
    path = tmp_path / "latents.safetensors"
    write_cache(path, lens, eps)
    arrays, meta = EpisodeArrays.load(path)
    assert meta == {"note": "test"} and arrays.keys == [f"k{i}" for i in range(7)]
    assert arrays.outcome.tolist() == [i % 2 == 0 for i in range(7)]
    with safe_open(path, framework="np") as f:  # the reference reader accepts the file
        assert f.get_tensor("offsets").tolist() == [0, *np.cumsum(lens).tolist()]
        assert np.array_equal(f.get_tensor("latents"), np.concatenate([e["latents"] for e in eps]))
    for i, e in enumerate(eps):
        f = torch.from_numpy(arrays.frames([i]))
        for name, want in e.items():
            assert np.array_equal(getattr(arrays, name)[f].numpy(), want), (i, name)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latents.json", "latents.safetensors"]


def test_a_failed_or_incomplete_write_leaves_nothing(tmp_path):
    lens, eps = random_episodes(3)
    path = tmp_path / "latents.safetensors"
    shapes = (1, 4, 2, 2), (3,), (2, 3)
    with pytest.raises(RuntimeError, match="boom"), cache_writer(path, lens, *shapes, {}, ["a", "b", "c"]) as put:
        put(0, eps[0], True)
        raise RuntimeError("boom")
    spec = {"x": (np.dtype(np.float32), (4, 2))}
    with pytest.raises(ValueError, match="not completely written"), stream_write(path, spec, {}) as write:
        write("x", 0, np.zeros((3, 2)))
    with pytest.raises(ValueError, match="do not fit"), stream_write(path, spec, {}) as write:
        write("x", 2, np.zeros((3, 2)))
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_is_an_os_error_naming_the_cache_and_leaves_nothing(tmp_path, monkeypatch):
    import errno

    import wmeval.data.safetensors_io as sio

    class FillsUp:  # a file on a disk with room for the header only
        def __init__(self, f):
            self.f, self.written = f, 0

        def write(self, data):
            self.written += 1
            if self.written > 1:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.f.write(data)

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    lens, eps = random_episodes(2)
    path = tmp_path / "latents.safetensors"
    monkeypatch.setattr(sio, "open", lambda *a, **k: FillsUp(open(*a, **k)), raising=False)  # noqa: SIM115 (closed by FillsUp)
    with pytest.raises(OSError, match="No space left") as e:
        write_cache(path, lens, eps)
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(path)
    assert list(tmp_path.iterdir()) == []


def test_subset_shares_the_cache_and_batches_are_normalised_on_the_fly(tmp_path):
    lens, eps = random_episodes(9, seed=1)
    path = tmp_path / "latents.safetensors"
    write_cache(path, lens, eps)
    arrays, _ = EpisodeArrays.load(path)
    sub = arrays.subset([6, 1, 4])
    assert sub.latents.data_ptr() == arrays.latents.data_ptr()  # no copy
    assert sub.keys == ["k6", "k1", "k4"] and sub.lengths().tolist() == [lens[6], lens[1], lens[4]]
    # statistics accumulated in chunks equal torch's over the materialised frames
    norm = Normalisation.fit(sub, chunk=2)
    f = torch.from_numpy(sub.frames())
    z = sub.latents[f].transpose(0, 2).flatten(1)
    assert torch.allclose(norm.latent_mean, z.mean(1), atol=1e-5)
    assert torch.allclose(norm.latent_std, z.std(1), atol=1e-5)
    assert torch.allclose(norm.proprio_std, sub.proprio[f].std(0).clamp_min(1e-3), atol=1e-6)
    # a window is the episode's own frames, normalised; its first frame has no action or previous frame
    sampler = WindowSampler(sub, 3, seed=0, norm=norm)
    e, s = sampler.window_index(0)
    w = sampler.gather([(e, s)])
    raw = eps[6]["latents"][s : s + 3]
    want = (raw - norm.latent_mean.numpy()[:, None, None]) / norm.latent_std.numpy()[:, None, None]
    assert np.allclose(w.latents[0].numpy(), want, atol=1e-6)
    assert not w.has_action[0, 0] and torch.all(w.prev_latents[0, 0] == 0) and torch.all(w.actions_in[0, 0] == 0)
    assert np.allclose(w.actions_in[0, 1].numpy(), eps[6]["actions"][s])


def test_frame_reads_match_the_memory_map(tmp_path):
    path = tmp_path / "x.safetensors"
    data = np.random.default_rng(0).integers(0, 255, (5, 1, 4, 4, 3), dtype=np.uint8)
    with stream_write(path, {"frames": (data.dtype, data.shape), "tail": (np.dtype(np.int64), (2,))}, {"a": "b"}) as w:
        w("tail", 0, np.array([7, 8]))
        w("frames", 0, data)
    at = locate(path, "frames")
    assert np.array_equal(at.rows(np.array([4, 0, 2])), data[[4, 0, 2]])
