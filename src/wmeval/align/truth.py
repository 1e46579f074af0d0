"""Where the true outcomes come from: the store's recorded episodes, `wmeval collect`'s `true_success.json`,
or a CSV of a real robot's trials. Each gives {(policy, task): [outcome, ...]}."""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from pathlib import Path

from wmeval.data.store import EpisodeStore


def real_outcomes_from_store(store: EpisodeStore, seeds: tuple[int, int] | None) -> dict[tuple[str, str], list]:
    out: dict[tuple[str, str], list] = defaultdict(list)
    for m in store.index():
        if m.outcome is not None and (seeds is None or seeds[0] <= m.seed <= seeds[1]):
            out[(m.policy, m.task)].append(bool(m.outcome))
    return out


def real_outcomes_from_table(path: str | Path) -> dict[tuple[str, str], list]:
    """From `true_success.json` written by `wmeval collect`: counts rebuilt as outcome lists."""
    try:
        data = json.loads(Path(path).read_text())
        rows = data["rows"] if isinstance(data, dict) else data
        return {(r["policy"], r["task"]): [True] * int(r["successes"]) + [False] * int(r["episodes"] - r["successes"])
                for r in rows}  # fmt: skip
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a true-success table written by `wmeval collect` ({e!r})") from None


TRIAL_COLUMNS = ("policy", "task", "successes", "trials")


def real_outcomes_from_csv(path: str | Path) -> dict[tuple[str, str], list]:
    """From a CSV of real trials, one row per (policy, task), columns named by the header (any order, others
    ignored): policy, task, successes, trials. Counts are rebuilt as outcome lists (trials are exchangeable)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # a spreadsheet's export may start with a byte-order mark
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: cannot read the trials CSV ({e})") from None
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in TRIAL_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise ValueError(f"{path}: no column {', '.join(missing)}; the first line must name the columns "
                         f"{','.join(TRIAL_COLUMNS)}")  # fmt: skip
    out: dict[tuple[str, str], list] = {}
    for line, row in enumerate(reader, start=2):
        where = f"{path} line {line}"
        key = ((row["policy"] or "").strip(), (row["task"] or "").strip())
        try:
            k, n = int(row["successes"]), int(row["trials"])
        except (TypeError, ValueError):
            raise ValueError(f"{where}: successes and trials must be whole numbers, got {row['successes']!r} and "
                             f"{row['trials']!r}") from None  # fmt: skip
        if not all(key):
            raise ValueError(f"{where}: the policy or task is empty")
        if n < 1 or not 0 <= k <= n:
            raise ValueError(f"{where}: {key[0]} on {key[1]}: need 0 <= successes <= trials and trials >= 1, "
                             f"got {k} of {n}")  # fmt: skip
        if key in out:
            raise ValueError(f"{where}: {key[0]} on {key[1]} has a row already; add its trials into one row")
        out[key] = [True] * k + [False] * (n - k)
    if not out:
        raise ValueError(f"{path}: no trials under the header")
    return out


def real_outcomes_from_file(path: str | Path) -> tuple[dict[tuple[str, str], list], str]:
    """True outcomes and their source from a trials CSV or a `true_success.json`."""
    if Path(path).suffix.lower() == ".csv":
        return real_outcomes_from_csv(path), f"{path} (real trials supplied by the user)"
    return real_outcomes_from_table(path), str(path)
