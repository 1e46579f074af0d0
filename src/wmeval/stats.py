"""Success rates with honest intervals."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (Wilson 1927); z = 1.96 gives 95%.

    Unlike the normal approximation it stays inside [0, 1] and is sensible at 0/n and n/n.
    """
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class RateRow:
    task: str
    policy: str
    successes: int
    episodes: int
    rate: float
    low: float
    high: float


def success_table(outcomes: Iterable[tuple[str, str, bool]]) -> list[RateRow]:
    """Per (task, policy) success rate with a 95% Wilson interval, from (task, policy, outcome) triples."""
    counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for task, policy, outcome in outcomes:
        c = counts[(task, policy)]
        c[0] += int(outcome)
        c[1] += 1
    rows = []
    for (task, policy), (k, n) in counts.items():
        lo, hi = wilson_interval(k, n)
        rows.append(RateRow(task, policy, k, n, k / n, lo, hi))
    return rows


def rows_to_json(rows: list[RateRow]) -> list[dict]:
    return [asdict(r) for r in rows]


def format_table(rows: list[RateRow]) -> str:
    """A task x policy grid of 'rate [low, high]' (percent), with the episode count per cell."""
    tasks = list(dict.fromkeys(r.task for r in rows))
    policies = list(dict.fromkeys(r.policy for r in rows))
    cell = {(r.task, r.policy): r for r in rows}
    pw = max([len("policy")] + [len(p) for p in policies])
    tw = max([15] + [len(t) for t in tasks])
    lines = [f"{'policy':<{pw}}  " + "  ".join(f"{t:>{tw}}" for t in tasks)]
    for p in policies:
        cells = []
        for t in tasks:
            r = cell.get((t, p))
            text = f"{100 * r.rate:3.0f}% [{100 * r.low:3.0f},{100 * r.high:3.0f}]" if r else "-"
            cells.append(f"{text:>{tw}}")
        lines.append(f"{p:<{pw}}  " + "  ".join(cells))
    ns = sorted({r.episodes for r in rows})
    lines.append(f"true success, 95% Wilson interval; episodes per cell: {', '.join(map(str, ns))}")
    return "\n".join(lines)


def format_markdown(rows: list[RateRow]) -> str:
    """The same grid as a Markdown table: 'rate [low, high]' in percent per (policy, task)."""
    tasks = list(dict.fromkeys(r.task for r in rows))
    cell = {(r.task, r.policy): r for r in rows}
    lines = ["| policy | " + " | ".join(tasks) + " |", "|---" * (len(tasks) + 1) + "|"]
    for p in dict.fromkeys(r.policy for r in rows):
        cells = []
        for t in tasks:
            r = cell.get((t, p))
            cells.append(f"{100 * r.rate:.0f} [{100 * r.low:.0f}, {100 * r.high:.0f}]" if r else "-")
        lines.append(f"| {p} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
