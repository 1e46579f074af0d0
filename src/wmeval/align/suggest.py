"""`wmeval suggest`: which real rollouts to collect next so the verdicts become more trustworthy.

The rule. A verdict is only as good as the world model's knowledge of how *that* policy behaves; the
1X report's finding (and the README's worked example) is that a world model is wrong where its training
data never showed the policy's own behaviour, above all its failures, and that training on on-policy
rollouts fixes it. Real episodes are scarce, so they go where a wrong verdict would change a decision
and where the evaluator is least sure:

- uncertainty of a policy's predicted rate, `sd`: the between-seed standard deviation of the rate over
  the world models of an ensemble (epistemic: the models disagree where their data did not pin the
  behaviour down), combined with the sampling error of the mean over imagined episodes. With one world
  model only the sampling error is left, and the rule degrades to "rates that are close": say so.
- decision relevance, `flips`: the expected number of within-task pairwise orders this policy gets wrong,
  sum over the other policies j of the same task of P(order of i and j flips) =
  Phi(-|m_i - m_j| / sqrt(sd_i^2 + sd_j^2)), each shared between the two by their variances (the more
  uncertain one owns more of it). A policy far from every other in rate has flips ~ 0, however unsure;
  two policies in contention (checkpoint selection, an A/B test) score high.

Budget: episodes go in blocks of `min_episodes` (a few, so a policy's failures show) to the policy with
the highest flips / (1 + blocks it already has) (diminishing returns), until the budget is spent. The
starts suggested first are the ones the members disagree on most (with one member: the most ambiguous,
probability nearest 0.5), then fresh starts after the judged ones. Whether this beats the same number
of random episodes is an experiment (`docs/RESULTS.md`), not an assumption; until it is run, it is not
shown.
"""

from __future__ import annotations

import math

import numpy as np

from wmeval.align.align import predictions


def _phi(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def policy_uncertainty(pred: np.ndarray) -> tuple[float, float, float]:
    """(ensemble rate, between-member sd of the rate, sampling sd of the ensemble's mean over episodes) from
    per-episode probabilities (members, episodes)."""
    rates = pred.mean(1)
    between = float(rates.std(ddof=1)) if len(rates) > 1 else 0.0
    q = pred.mean(0)
    sampling = float(q.std(ddof=1) / math.sqrt(len(q))) if len(q) > 1 else 0.0
    return float(rates.mean()), between, sampling


def flip_scores(tasks: list[str], m: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """Per policy: expected within-task pairwise order errors owned by it (see the module docstring)."""
    out = np.zeros(len(m))
    for i in range(len(m)):
        for j in range(len(m)):
            if i == j or tasks[i] != tasks[j]:
                continue
            var = sd[i] ** 2 + sd[j] ** 2
            if var <= 0:
                continue
            out[i] += _phi(-abs(m[i] - m[j]) / math.sqrt(var)) * sd[i] ** 2 / var
    return out


def allocate(scores: np.ndarray, budget: int, block: int) -> np.ndarray:
    """Episodes per policy: blocks of `block` to argmax score / (1 + blocks held), until `budget` is spent."""
    blocks = np.zeros(len(scores), int)
    if not len(scores) or scores.max() <= 0:
        return blocks
    for _ in range(budget // block):
        blocks[int(np.argmax(scores / (1 + blocks)))] += 1
    return blocks * block


def suggest(evaluations: list[dict], budget: int, min_episodes: int = 5) -> dict:
    """Rank the judged (policy, task) pairs by the rule above and spend `budget` real episodes on them."""
    if budget < min_episodes or min_episodes < 1:
        raise ValueError(f"--budget ({budget}) must be at least --min-episodes ({min_episodes}), which must be >= 1")
    rows, pred, starts = predictions(evaluations)
    stats = [policy_uncertainty(p) for p in pred]
    m = np.array([s[0] for s in stats])
    sd = np.array([math.hypot(s[1], s[2]) for s in stats])
    tasks = [r["task"] for r in rows]
    flips = flip_scores(tasks, m, sd)
    episodes = allocate(flips, budget, min_episodes)
    out = []
    for i, r in enumerate(rows):
        member_sd = pred[i].std(0) if len(pred[i]) > 1 else None
        q = pred[i].mean(0)
        priority = member_sd if member_sd is not None else q * (1 - q)
        order = np.argsort(-priority, kind="stable")
        n = int(episodes[i])
        seeds = [int(starts[i][k]) for k in order[:n]]
        seeds += list(range(max(starts[i]) + 1, max(starts[i]) + 1 + n - len(seeds)))  # then fresh starts
        out.append({"policy": r["policy"], "task": r["task"], "predicted_rate": m[i], "sd": sd[i],
                    "between_seed_sd": stats[i][1], "sampling_sd": stats[i][2], "flips": flips[i],
                    "episodes": n, "seeds": seeds})  # fmt: skip
    out.sort(key=lambda d: (-d["episodes"], -d["flips"], d["task"], d["policy"]))
    return {"kind": "wmeval-suggestion", "budget": budget, "min_episodes": min_episodes,
            "members": len(evaluations), "zoo": evaluations[0]["zoo"],
            "rule": "flips = expected within-task pairwise order errors owned by the policy, from ensemble "
                    "rates and their uncertainty (between-seed sd and sampling sd); episodes in blocks to the "
                    "highest flips / (1 + blocks held)",
            "warning": None if len(evaluations) > 1 else (
                "one world model: its uncertainty is only the sampling error of imagined episodes; judge "
                "with several (`wmeval train --seed`) so disagreement can show where the data are thin"),
            "policies": out}  # fmt: skip


def format_suggestion(s: dict) -> str:
    lines = ["| task | policy | predicted % | sd (points) | flips | real episodes | starts (seeds) |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for p in s["policies"]:
        seeds = ", ".join(map(str, p["seeds"][:8])) + (" ..." if len(p["seeds"]) > 8 else "")
        lines.append(f"| {p['task']} | {p['policy']} | {100 * p['predicted_rate']:.0f} | {100 * p['sd']:.1f} | "
                     f"{p['flips']:.2f} | {p['episodes']} | {seeds or '-'} |")
    spent = sum(p["episodes"] for p in s["policies"])
    lines.append(f"\n{spent} of {s['budget']} real episodes suggested, over {s['members']} world model(s).")
    if s["warning"]:
        lines.append(f"note: {s['warning']}")
    return "\n".join(lines)
