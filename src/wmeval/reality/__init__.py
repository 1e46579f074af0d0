"""Ground-truth realities. A suite names a simulator family; each task in it is one `Reality`."""

from __future__ import annotations

from typing import Any

from wmeval.reality.base import Layout, Reality
from wmeval.reality.metaworld import DEFAULT_TASKS as METAWORLD_TASKS
from wmeval.reality.metaworld import MetaWorldConfig, MetaWorldReality, check_task

SUITES = ("metaworld",)

__all__ = ["Layout", "Reality", "SUITES", "make_config", "make_reality", "default_tasks", "check_tasks"]


def _check_suite(suite: str) -> None:
    if suite not in SUITES:
        raise ValueError(f"unknown suite {suite!r}; valid suites: {', '.join(SUITES)}")


def make_config(suite: str, **overrides: Any) -> MetaWorldConfig:
    _check_suite(suite)
    return MetaWorldConfig(**{k: v for k, v in overrides.items() if v is not None})


def make_reality(suite: str, task: str, config: MetaWorldConfig | None = None) -> Reality:
    _check_suite(suite)
    return MetaWorldReality(task, config)


def default_tasks(suite: str) -> tuple[str, ...]:
    _check_suite(suite)
    return METAWORLD_TASKS


def check_tasks(suite: str, tasks: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    _check_suite(suite)
    return tuple(check_task(t) for t in tasks)
