"""Composable degradations that turn a good policy into one that fails in a realistic way.

Each wraps any `Policy` (scripted or learned) and is seeded by `reset(seed)`, so a degraded episode
repeats exactly. Strengths are in the units a robot engineer would use: action units (actions lie in
[-1, 1]) and control steps. The suite says which action dims move the robot (`motion`: MetaWorld's hand
xyz deltas, the humanoid's joint-target deltas; a zero motion action holds still) and which close a
gripper (`grip`: > 0 closes), so every degradation works in any suite's action space.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import numpy as np

from wmeval.policies.base import Policy
from wmeval.types import Observation


@dataclass(frozen=True)
class ActionGroups:
    """Which action dims move the robot and which close its grippers (see `wmeval.reality.action_groups`)."""

    motion: tuple[int, ...]
    grip: tuple[int, ...] = ()


class Degraded:
    """Base wrapper: subclasses transform each chunk the inner policy emits; `p` holds the parameters."""

    def __init__(self, inner: Policy, salt: int, p: Degradation, groups: ActionGroups) -> None:
        self.inner, self.salt, self.p = inner, salt, p
        self.motion, self.grip = list(groups.motion), list(groups.grip)
        self.rng = np.random.default_rng(0)
        self.steps = 0  # control steps emitted so far in this episode

    def reset(self, seed: int) -> None:
        self.inner.reset(seed)
        self.rng = np.random.default_rng([seed, self.salt])
        self.steps = 0
        self._reset()

    def act(self, obs: Observation) -> np.ndarray:
        chunk = np.array(self.inner.act(obs), dtype=np.float32)  # (K, A), a copy we may edit
        out = np.clip(self.transform(chunk), -1.0, 1.0).astype(np.float32)
        self.steps += len(out)
        return out

    def _reset(self) -> None:
        pass

    def transform(self, chunk: np.ndarray) -> np.ndarray:
        raise NotImplementedError


@dataclass(frozen=True)
class Degradation:
    """Validated parameters of one degradation; `wrap` applies it."""

    kind: ClassVar[str]
    doc: ClassVar[str]
    wrapper: ClassVar[type[Degraded]]

    def wrap(self, policy: Policy, salt: int, groups: ActionGroups) -> Policy:
        self.check(groups)
        return self.wrapper(policy, salt, self, groups)

    def check(self, groups: ActionGroups) -> None:
        """Refuse a suite whose actions this degradation cannot act on."""

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, **{f.name: getattr(self, f.name) for f in fields(self)}}


def _require(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


@dataclass(frozen=True)
class Noise(Degradation):
    std: float
    kind = "noise"
    doc = "Gaussian noise of standard deviation `std` on every action dim at every control step"

    def __post_init__(self) -> None:
        _require(self.std >= 0, f"noise.std must be >= 0, got {self.std}")


class _NoisePolicy(Degraded):
    def transform(self, chunk: np.ndarray) -> np.ndarray:
        return chunk + self.rng.normal(0.0, self.p.std, chunk.shape)


@dataclass(frozen=True)
class Latency(Degradation):
    steps: int
    kind = "latency"
    doc = "actions reach the robot `steps` control steps late (zero actions until the first arrives)"

    def __post_init__(self) -> None:
        _require(self.steps >= 1, f"latency.steps must be >= 1, got {self.steps}")


class _LatencyPolicy(Degraded):
    def __init__(self, inner: Policy, salt: int, p: Latency, groups: ActionGroups) -> None:
        super().__init__(inner, salt, p, groups)
        self.queue: deque[np.ndarray] = deque()

    def _reset(self) -> None:
        self.queue = deque()

    def transform(self, chunk: np.ndarray) -> np.ndarray:
        if not self.queue and self.steps == 0:
            self.queue.extend(np.zeros((self.p.steps, chunk.shape[1]), np.float32))
        self.queue.extend(chunk)
        return np.stack([self.queue.popleft() for _ in range(len(chunk))])


@dataclass(frozen=True)
class Bias(Degradation):
    offset: float | tuple[float, ...]
    kind = "bias"
    doc = "a constant `offset` added to the motion dims (a number for all, or one per dim: [dx, dy, dz])"

    def __post_init__(self) -> None:
        if isinstance(self.offset, list | tuple):
            _require(len(self.offset) >= 1, f"bias.offset must be a number or a list of numbers, got {self.offset}")
            object.__setattr__(self, "offset", tuple(float(x) for x in self.offset))

    def check(self, groups: ActionGroups) -> None:
        n = len(groups.motion)
        _require(not isinstance(self.offset, tuple) or len(self.offset) in (1, n),
                 f"bias.offset has {len(self.offset) if isinstance(self.offset, tuple) else 1} numbers; this "
                 f"suite's actions have {n} motion dims: give one number or {n}")  # fmt: skip


class _BiasPolicy(Degraded):
    def __init__(self, inner: Policy, salt: int, p: Bias, groups: ActionGroups) -> None:
        super().__init__(inner, salt, p, groups)
        self.offset = np.broadcast_to(np.asarray(p.offset, np.float32), (len(self.motion),))

    def transform(self, chunk: np.ndarray) -> np.ndarray:
        chunk[:, self.motion] += self.offset
        return chunk


@dataclass(frozen=True)
class EarlyRelease(Degradation):
    after: int = 8
    prob: float = 1.0
    kind = "early_release"
    doc = "with probability `prob` per episode, opens the grippers for good once one has closed for `after` steps"

    def __post_init__(self) -> None:
        _require(self.after >= 1, f"early_release.after must be >= 1, got {self.after}")
        _require(0 <= self.prob <= 1, f"early_release.prob must be in [0, 1], got {self.prob}")

    def check(self, groups: ActionGroups) -> None:
        _require(bool(groups.grip), "early_release needs a gripper; this suite's actions have none")


class _EarlyReleasePolicy(Degraded):
    def _reset(self) -> None:
        self.armed = bool(self.rng.random() < self.p.prob)
        self.closed_for, self.released = 0, False

    def transform(self, chunk: np.ndarray) -> np.ndarray:
        if not self.armed:
            return chunk
        for action in chunk:
            self.closed_for = self.closed_for + 1 if (action[self.grip] > 0).any() else 0
            self.released |= self.closed_for > self.p.after
            if self.released:
                action[self.grip] = -1.0
        return chunk


@dataclass(frozen=True)
class Slowdown(Degradation):
    factor: float
    kind = "slowdown"
    doc = "motion actions scaled by `factor` in (0, 1]: the robot moves slower"

    def __post_init__(self) -> None:
        _require(0 < self.factor <= 1, f"slowdown.factor must be in (0, 1], got {self.factor}")


class _SlowdownPolicy(Degraded):
    def transform(self, chunk: np.ndarray) -> np.ndarray:
        chunk[:, self.motion] *= self.p.factor
        return chunk


@dataclass(frozen=True)
class Freeze(Degradation):
    after: int
    kind = "freeze"
    doc = "the robot stops after `after` control steps (motion zero, gripper commands held)"

    def __post_init__(self) -> None:
        _require(self.after >= 0, f"freeze.after must be >= 0, got {self.after}")


class _FreezePolicy(Degraded):
    def _reset(self) -> None:
        self.held = np.full(len(self.grip), -1.0, np.float32)

    def transform(self, chunk: np.ndarray) -> np.ndarray:
        for i, action in enumerate(chunk):
            if self.steps + i < self.p.after:
                self.held = action[self.grip].copy()
            else:
                action[self.motion] = 0.0
                action[self.grip] = self.held
        return chunk


@dataclass(frozen=True)
class RandomActions(Degradation):
    prob: float
    kind = "random"
    doc = "with probability `prob` per chunk, the chunk is replaced by one uniform random action held"

    def __post_init__(self) -> None:
        _require(0 <= self.prob <= 1, f"random.prob must be in [0, 1], got {self.prob}")


class _RandomPolicy(Degraded):
    def transform(self, chunk: np.ndarray) -> np.ndarray:
        if self.rng.random() < self.p.prob:
            chunk[:] = self.rng.uniform(-1.0, 1.0, chunk.shape[1])
        return chunk


for _params, _wrapper in (
    (Noise, _NoisePolicy),
    (Latency, _LatencyPolicy),
    (Bias, _BiasPolicy),
    (EarlyRelease, _EarlyReleasePolicy),
    (Slowdown, _SlowdownPolicy),
    (Freeze, _FreezePolicy),
    (RandomActions, _RandomPolicy),
):
    _params.wrapper = _wrapper

DEGRADATIONS: dict[str, type[Degradation]] = {
    cls.kind: cls for cls in (Noise, Latency, Bias, EarlyRelease, Slowdown, Freeze, RandomActions)
}


def parse_degradation(d: dict[str, Any], where: str) -> Degradation:
    """Build one degradation from `{"kind": ..., **params}`; errors name `where` and the valid choices."""
    if not isinstance(d, dict) or "kind" not in d:
        raise ValueError(f"{where}: a degradation is a table with a 'kind' key, got {d!r}")
    kind = d["kind"]
    if kind not in DEGRADATIONS:
        raise ValueError(f"{where}: unknown degradation {kind!r}; valid kinds: {', '.join(DEGRADATIONS)}")
    cls = DEGRADATIONS[kind]
    params = {k: v for k, v in d.items() if k != "kind"}
    names = [f.name for f in fields(cls)]
    unknown = sorted(set(params) - set(names))
    if unknown:
        raise ValueError(f"{where}: {kind} has no parameter {', '.join(unknown)}; its parameters: {', '.join(names)}")
    for k, v in params.items():
        if isinstance(v, bool) or not isinstance(v, int | float | list | tuple):
            raise ValueError(f"{where}: {kind}.{k} must be a number, got {v!r}")
    try:
        return cls(**params)
    except TypeError as e:  # a required parameter is missing
        raise ValueError(f"{where}: {kind} needs parameters {', '.join(names)} ({e})") from None
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None
