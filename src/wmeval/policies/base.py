"""The `Policy` contract."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from wmeval.types import Observation


@runtime_checkable
class Policy(Protocol):
    """Maps an observation to a chunk of control-rate actions.

    `reset(seed)` starts an episode (seeding any randomness, so runs repeat).
    `act(obs)` returns `float32[K, A]`; K must be a multiple of the layout's `frame_skip`: the chunk
    is executed open loop and the policy is asked again when it runs out.
    A policy sees only `Observation`s, so it cannot tell reality from imagination.
    """

    def reset(self, seed: int) -> None: ...

    def act(self, obs: Observation) -> np.ndarray: ...


class PolicyError(RuntimeError):
    """A policy misbehaved (bad shape, NaN/inf, exception); names the policy and episode."""


def privileged(obs: Observation) -> np.ndarray:
    """The simulator state a scripted expert reads; imagination has none, so experts cannot be judged there."""
    if obs.privileged is None:
        raise ValueError(
            "the scripted expert needs the simulator's privileged state, which imagination does not "
            "provide; judge learned policies (images + proprio) in imagination instead"
        )
    return obs.privileged
