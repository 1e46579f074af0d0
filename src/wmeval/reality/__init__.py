"""Ground-truth realities. A suite names a simulator family; each task in it is one `Reality`.

Every suite is a module that defines a frozen config dataclass (how episodes are observed: views, image
size, frame skip, length) with a `layout()`, a `Reality` class built from `(task, config)`, `DEFAULT_TASKS`,
`check_task(task)`, `MOTION_DIMS` and `GRIP_DIMS` (which action dims move the robot and which close its
grippers, for the degradations) and a scripted expert class `(task, chunk_len)` that reads privileged state. Modules are
imported on first use, so a suite's simulator package is only needed when that suite runs.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from wmeval.reality.base import Layout, Reality


@dataclass(frozen=True)
class SuiteEntry:
    module: str
    config: str
    reality: str
    expert: str  # "module:Class"
    zoo: str  # the built-in zoo of its expert and scripted degradations (`wmeval.zoo.BUILTIN_ZOOS`)
    doc: str


REGISTRY = {
    "metaworld": SuiteEntry("wmeval.reality.metaworld", "MetaWorldConfig", "MetaWorldReality",
                            "wmeval.policies.scripted:MetaWorldExpert", "default",
                            "a Sawyer arm (MetaWorld), end-effector deltas + gripper, third-person cameras"),
    "humanoid": SuiteEntry("wmeval.reality.humanoid", "HumanoidConfig", "HumanoidReality",
                           "wmeval.policies.humanoid_expert:HumanoidExpert", "humanoid",
                           "a mounted humanoid at a table, joint-position deltas + two grippers, head camera"),
}  # fmt: skip
SUITES = tuple(REGISTRY)

__all__ = ["Layout", "Reality", "SUITES", "action_groups", "check_tasks", "default_tasks", "default_zoo", "make_config",
           "make_expert", "make_reality"]  # fmt: skip


def _module(suite: str):
    if suite not in REGISTRY:
        raise ValueError(f"unknown suite {suite!r}; valid suites: {', '.join(SUITES)}")
    return importlib.import_module(REGISTRY[suite].module)


def make_config(suite: str, **overrides: Any):
    """The suite's observation config, with the overrides that are not None."""
    return getattr(_module(suite), REGISTRY[suite].config)(**{k: v for k, v in overrides.items() if v is not None})


def make_reality(suite: str, task: str, config: Any = None) -> Reality:
    return getattr(_module(suite), REGISTRY[suite].reality)(task, config)


def make_expert(suite: str, task: str, chunk_len: int):
    """The suite's scripted expert for `task`: it reads privileged state, so it acts in reality only."""
    _module(suite)
    module, name = REGISTRY[suite].expert.split(":")
    return getattr(importlib.import_module(module), name)(task, chunk_len)


def default_zoo(suite: str) -> str:
    """The name of the suite's built-in zoo (its expert and scripted degradations)."""
    _module(suite)
    return REGISTRY[suite].zoo


def default_tasks(suite: str) -> tuple[str, ...]:
    return tuple(_module(suite).DEFAULT_TASKS)


def check_tasks(suite: str, tasks: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    module = _module(suite)
    return tuple(module.check_task(t) for t in tasks)


def action_groups(suite: str, action_dim: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(motion dims, gripper dims) of the suite's actions. A suite wmeval does not simulate (imported data)
    has no known gripper: every dim counts as motion."""
    if suite not in REGISTRY:
        return tuple(range(action_dim)), ()
    module = _module(suite)
    return tuple(module.MOTION_DIMS), tuple(module.GRIP_DIMS)
