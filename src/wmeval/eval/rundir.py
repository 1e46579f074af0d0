"""An evaluation's run directory: what a resumed `wmeval evaluate` reuses. Imagined episodes are appended
to a log as they finish (a torn last line from a killed run is dropped); costly stages (calibration,
replays) are cached under a key that says what they were computed for."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from wmeval.data.store import atomic_write_text
from wmeval.eval.imagination import ImaginedEpisode


def episode_json(e: ImaginedEpisode, sample: int = 0) -> str:
    """One line of OUT/episodes.jsonl: an imagined episode's readout (or the policy error that stopped it)."""
    d = {"policy": e.policy, "task": e.task, "seed": e.seed, "sample": sample,
         "values": [round(float(v), 5) for v in e.values], "error": e.error}  # fmt: skip
    return json.dumps(d)


def load_done(path: Path) -> dict[tuple[str, str, int, int], dict]:
    """Episodes finished by an earlier run. A torn last line (a run killed mid-write) is dropped from the
    file, so that what this run appends stays readable."""
    done: dict[tuple[str, str, int, int], dict] = {}
    if not path.is_file():
        return done
    lines = path.read_text().splitlines()
    for n, line in enumerate(lines):
        try:
            d = json.loads(line)
            done[(d["policy"], d["task"], d["seed"], d.get("sample", 0))] = d
        except (json.JSONDecodeError, KeyError):
            atomic_write_text(path, "".join(x + "\n" for x in lines[:n]))
            break
    return done


def append_lines(path: Path, lines: list[str]) -> None:
    with open(path, "a") as f:
        f.write("".join(line + "\n" for line in lines))
        f.flush()
        os.fsync(f.fileno())


def cached(path: Path, key: dict, compute) -> dict:
    """{"value": compute(), "seconds": ...}, computed once per evaluation directory and reused by resumed
    runs while `key` matches (run.json already guards the settings). The key is compared as JSON reads it back
    (a rule's tuples come back as lists)."""
    key = json.loads(json.dumps(key))
    if path.is_file():
        saved = json.loads(path.read_text())
        if saved.get("key") == key:
            return saved
    t0 = time.perf_counter()
    value = compute()
    saved = {"key": key, "value": value, "seconds": time.perf_counter() - t0}
    atomic_write_text(path, json.dumps(saved) + "\n")
    return saved
