"""Shared fakes: a tiny deterministic Reality, so store/rollout tests need no simulator."""

from __future__ import annotations

import numpy as np
import pytest

from wmeval.reality.base import Layout
from wmeval.types import Observation, Start, StepInfo

FAKE_LAYOUT = Layout(
    suite="fake", views=("cam",), image_size=16, frame_skip=2, horizon=5, action_dim=4, state_dim=4, control_hz=10.0
)


class FakeReality:
    """A point that moves by the actions; success when x > 1. Frames paint the point's position."""

    layout = FAKE_LAYOUT

    def __init__(self, task: str = "reach") -> None:
        self.task = task
        self.pos = np.zeros(3)
        self.steps = 0

    def start(self, seed: int) -> Start:
        return Start("fake", self.task, seed, {"x0": float(np.random.default_rng(seed).uniform(-0.5, 0.5))})

    def reset(self, start: Start) -> Observation:
        self.pos = np.array([start.params["x0"], 0.0, 0.0])
        self.steps = 0
        return self._obs()

    def step(self, chunk: np.ndarray) -> tuple[Observation, bool, StepInfo]:
        assert chunk.shape == (self.layout.frame_skip, self.layout.action_dim)
        self.pos = self.pos + chunk[:, :3].sum(0) * 0.2
        self.steps += len(chunk)
        done = self.steps >= self.layout.horizon * self.layout.frame_skip
        return self._obs(), done, StepInfo(success=bool(self.pos[0] > 1.0))

    def _obs(self) -> Observation:
        s = self.layout.image_size
        img = np.zeros((1, s, s, 3), np.uint8)
        img[0, :, :, 0] = np.uint8(np.clip(128 + 60 * self.pos[0], 0, 255))
        state = np.array([*self.pos, 0.5], np.float32)
        return Observation(images=img, state=state, privileged=state.copy())

    def close(self) -> None:
        pass


class ConstantPolicy:
    """Pushes +x at a fixed speed; `bad` makes it misbehave on purpose."""

    def __init__(self, speed: float = 1.0, k: int = 2, bad: str | None = None) -> None:
        self.speed, self.k, self.bad = speed, k, bad

    def reset(self, seed: int) -> None:
        pass

    def act(self, obs: Observation) -> np.ndarray:
        if self.bad == "raise":
            raise RuntimeError("boom")
        chunk = np.zeros((self.k, 4), np.float32)
        chunk[:, 0] = self.speed
        if self.bad == "nan":
            chunk[0, 0] = np.nan
        if self.bad == "shape":
            return chunk[:, :3]
        return chunk


@pytest.fixture
def fake_reality() -> FakeReality:
    return FakeReality()


def make_fake_store(root, n: int, policy: str = "expert"):
    """A store of `n` FakeReality episodes whose actions differ per episode (speed depends on the seed)."""
    from wmeval.data.store import EpisodeStore
    from wmeval.rollout import rollout

    store = EpisodeStore.create(root, FAKE_LAYOUT)
    env = FakeReality()
    for seed in range(n):
        ep = rollout(env, ConstantPolicy(speed=0.6 + 0.1 * (seed % 4)), env.start(seed), policy, {"name": policy})
        store.append(ep)
    return store


JUDGED = "bc-reach-cnn-proprio-*"


@pytest.fixture(scope="session")
def world(tmp_path_factory):
    """Shared by every module that judges policies: a fake store with demos and the rollouts of a small
    learned zoo on seeds 100-105, and a tiny world model trained with the judged policies held out. Tests
    must not modify it (copy what they change)."""
    root = tmp_path_factory.mktemp("imagine")
    store = make_fake_store(root / "store", 10)
    from wmeval.policies.grid import GridConfig, train_grid
    from wmeval.rollout import rollout
    from wmeval.train.world_model import WMTrainConfig, train_world_model
    from wmeval.zoo import load_zoo

    grid = GridConfig(store=str(store.root), out=str(root / "zoo"), tasks=("reach",), sizes=(4,),
                      variants=("cnn-proprio", "cnn-noproprio"), checkpoints=(1, 3), val_episodes=1, batch_size=4,
                      device="cpu")  # fmt: skip
    zoo_path = train_grid(grid, progress=False)
    env = FakeReality()
    for spec in load_zoo(zoo_path).policies:
        for seed in range(100, 106):
            store.append(rollout(env, spec.build("reach", FAKE_LAYOUT), env.start(seed), spec.name, spec.to_json()))
    wm = WMTrainConfig(store=str(store.root), out=str(root / "wm"), preset="tiny", window=4, codec_steps=6,
                       codec_batch=8, steps=8, batch_size=4, eval_every=4, save_every=4, warmup=2, device="cpu",
                       val_fraction=0.3, exclude_policies=(JUDGED,))  # fmt: skip
    model_path = train_world_model(wm, progress=False)
    return {"root": root, "store": store, "zoo": zoo_path, "model": model_path}
