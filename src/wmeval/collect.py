"""`wmeval collect`: run a zoo of policies in reality, store every episode, tabulate true success.

Episodes are independent jobs (task, policy, seed) spread over worker processes; each worker writes its
episodes straight into the store (atomic per episode), so an interrupted run loses at most the episodes
in flight and re-running the same command skips everything already committed.
"""

from __future__ import annotations

import fcntl
import json
import multiprocessing as mp
import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from wmeval.data.store import EpisodeStore, atomic_write_text, episode_key
from wmeval.reality import check_tasks, make_reality
from wmeval.reality.base import RealityConfig
from wmeval.stats import RateRow, format_table, rows_to_json, success_table
from wmeval.zoo import PolicySpec, Zoo


@dataclass(frozen=True)
class Job:
    task: str
    policy: PolicySpec
    seed: int

    @property
    def key(self) -> str:
        return episode_key(self.task, self.policy.name, self.seed)


@dataclass(frozen=True)
class JobResult:
    key: str
    outcome: bool | None
    frames: int
    error: str | None = None
    os_error: tuple[int, str, str | None] | None = None  # (errno, message, file): stops the whole collection


@dataclass(frozen=True)
class CollectResult:
    rows: list[RateRow]
    new: int
    skipped: int
    errors: list[JobResult]
    table_path: Path


def plan(zoo: Zoo, tasks: tuple[str, ...], episodes: int, seed: int, seeds: tuple[int, ...] | None = None) -> list[Job]:
    """Every (task, policy, seed) the command covers. All policies of a task share the same starts
    (seeds seed, seed+1, ..., or the `seeds` given), so they are compared on identical initial states."""
    chosen = seeds if seeds else tuple(range(seed, seed + episodes))
    return [Job(task, p, s) for task in tasks for p in zoo.policies if p.runs_on(task) for s in chosen]


# ---- worker side: one reality per task per process, reused across episodes ----
_WORKER: dict = {}


def _init_worker(root: str, config: RealityConfig, suite: str, child: bool = False) -> None:
    if child:  # Ctrl-C is the parent's to handle: it stops the pool; committed episodes stay
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    _close_realities()
    _WORKER.update(store=EpisodeStore(root), config=config, suite=suite, realities={})


def _close_realities() -> None:
    for env in _WORKER.pop("realities", {}).values():
        env.close()


def _run(job: Job) -> JobResult:
    from wmeval.rollout import rollout

    store, realities = _WORKER["store"], _WORKER["realities"]
    try:
        if job.task not in realities:
            realities[job.task] = make_reality(_WORKER["suite"], job.task, _WORKER["config"])
        env = realities[job.task]
        policy = job.policy.build(job.task, env.layout)
        ep = rollout(env, policy, env.start(job.seed), job.policy.name, job.policy.to_json())
        meta = store.append(ep)
        return JobResult(job.key, meta.outcome, meta.length)
    except OSError as e:  # a full disk or an unwritable store is not this episode's fault: stop
        return JobResult(job.key, None, 0, str(e), (e.errno or 0, e.strerror or str(e), e.filename))
    except Exception as e:  # reported per episode; the rest of the collection goes on
        return JobResult(job.key, None, 0, f"{type(e).__name__}: {e}")


@contextmanager
def _locked(root: Path) -> Iterator[None]:
    """One collector per store at a time (so stale temporary files can be removed safely)."""
    with open(root / ".lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(f"another `wmeval collect` is writing to {root}; wait for it to finish") from None
        yield


def _results(jobs: list[Job], root: Path, config: RealityConfig, suite: str, workers: int) -> Iterator[JobResult]:
    if workers <= 1:
        _init_worker(str(root), config, suite)
        try:
            yield from map(_run, jobs)
        finally:
            _close_realities()
        return
    # 'spawn': fresh interpreters, so each worker makes its own GL context; one render thread each.
    os.environ["LP_NUM_THREADS"] = "1"
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    ctx = mp.get_context("spawn")
    with ctx.Pool(workers, initializer=_init_worker, initargs=(str(root), config, suite, True)) as pool:
        yield from pool.imap_unordered(_run, jobs, chunksize=1)


def collect(
    root: str | Path,
    zoo: Zoo,
    tasks: tuple[str, ...],
    episodes: int,
    config: RealityConfig,
    seed: int = 0,
    workers: int = 1,
    progress: bool = True,
    command: str = "",
    seeds: tuple[int, ...] | None = None,
) -> CollectResult:
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if seeds is not None and (not seeds or min(seeds) < 0):
        raise ValueError(f"--seeds must list non-negative start seeds, got {seeds}")
    tasks = check_tasks(zoo.suite, tasks)
    store = EpisodeStore.create(root, config.layout())
    jobs = plan(zoo, tasks, episodes, seed, seeds)
    for task, spec in dict.fromkeys((j.task, j.policy) for j in jobs):
        spec.check(task, store.layout)
    with _locked(store.root):
        for tmp in store.temp_files():  # left by a killed writer; never visible to readers
            tmp.unlink(missing_ok=True)
        todo = [j for j in jobs if not store.has(j.key)]
        errors: list[JobResult] = []
        frames, t0 = 0, time.perf_counter()
        bar = tqdm(total=len(todo), desc="collect", unit="ep", disable=not progress, dynamic_ncols=True)
        for res in _results(todo, store.root, config, zoo.suite, workers):
            bar.update(1)
            frames += res.frames
            bar.set_postfix(frames_s=f"{frames / (time.perf_counter() - t0):.0f}", failed=len(errors), refresh=False)
            if res.os_error:
                raise OSError(*res.os_error)
            if res.error:
                errors.append(res)
                tqdm.write(f"episode {res.key} failed: {res.error}", file=sys.stderr)
        bar.close()
    committed = [j for j in jobs if store.has(j.key)]
    rows = success_table((j.task, j.policy.name, store.meta(j.key).outcome) for j in committed)
    table_path = store.root / "true_success.json"
    write_table(table_path, rows, store, zoo, command, episodes)
    return CollectResult(rows, len(todo) - len(errors), len(jobs) - len(todo), errors, table_path)


def write_table(path: Path, rows: list[RateRow], store: EpisodeStore, zoo: Zoo, command: str, episodes: int) -> None:
    doc = {
        "kind": "true_success",
        "suite": store.layout.suite,
        "zoo": zoo.name,
        "command": command,
        "episodes_per_cell": episodes,
        "store_fingerprint": store.fingerprint(),
        "layout": store.layout.to_json(),
        "interval": "95% Wilson score",
        "rows": rows_to_json(rows),
    }
    atomic_write_text(path, json.dumps(doc, indent=2) + "\n")


__all__ = ["collect", "plan", "format_table", "CollectResult", "Job"]
