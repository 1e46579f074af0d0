"""`wmeval check`: verify every episode of a store and report problems per episode."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from wmeval.data.store import EpisodeStore, StoreError


@dataclass(frozen=True)
class Problem:
    where: str  # episode key or file path
    what: str


@dataclass(frozen=True)
class CheckReport:
    n_episodes: int
    n_ok: int
    problems: tuple[Problem, ...]
    leftovers: tuple[Path, ...]  # temporary files of interrupted writes (invisible to readers)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_episode(store: EpisodeStore, key: str) -> list[str]:
    try:
        ep = store.load(key, verify=True)
        store.validate(ep)
    except StoreError as e:
        return [str(e)]
    m, out = ep.meta, []
    if m.key != key:
        out.append(f"metadata names key {m.key!r} but the file is at {key!r}")
    if m.length != len(ep.frames):
        out.append(f"metadata says {m.length} frames, the file has {len(ep.frames)}")
    if m.outcome is not None and m.outcome != bool(np.any(ep.success)):
        out.append(f"metadata outcome {m.outcome} disagrees with the per-step success flags")
    return out


def check_store(root: str | Path, clean: bool = False, progress: bool = True) -> CheckReport:
    store = EpisodeStore(root)
    keys = store.keys()
    problems = []
    for key in tqdm(keys, desc="check", unit="ep", disable=not progress):
        problems += [Problem(key, p) for p in check_episode(store, key)]
    leftovers = tuple(store.temp_files())
    if clean:
        for p in leftovers:
            p.unlink(missing_ok=True)
    bad = {p.where for p in problems}
    return CheckReport(len(keys), len(keys) - len(bad), tuple(problems), leftovers)
