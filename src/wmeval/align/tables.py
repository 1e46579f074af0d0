"""The alignment JSON as tables: what `wmeval align` prints and `wmeval report` renders.

The headline leads with the within-task metrics (checkpoint selection, A/B tests), then the per-episode
agreement, then the pooled ones; beside each value: the between-seed spread, the ensemble's value and
reality's own split-half noise ceiling, when the alignment has them.
"""

from __future__ import annotations

import numpy as np


def fmt_ci(d: dict | float | None, scale: float = 1.0, digits: int = 2) -> str:
    if d is None:
        return "-"
    if isinstance(d, dict):
        if not np.isfinite(d["value"]):
            return "n/a"
        return f"{d['value'] * scale:.{digits}f} [{d['low'] * scale:.{digits}f}, {d['high'] * scale:.{digits}f}]"
    return f"{d * scale:.{digits}f}" if np.isfinite(d) else "n/a"


def _sd(d: dict | None, scale: float = 1.0, digits: int = 2) -> str:
    if not isinstance(d, dict) or "seed_std" not in d or not np.isfinite(d["seed_std"]):
        return "-"
    return f"{d['seed_std'] * scale:.{digits}f}"


# (key, label, scale, digits): the headline, within-task first
HEADLINE = (
    ("within_task_spearman", "within-task Spearman (mean over tasks)", 1, 2),
    ("within_task_pearson", "within-task Pearson (mean over tasks)", 1, 2),
    ("mmrv", "MMRV (mean over tasks)", 1, 3),
    ("pairwise_accuracy", "pairwise ranking accuracy (within tasks)", 1, 2),
    ("ab_pick_rate_10", "A/B pick rate at a 10-point gap", 1, 2),
    ("ab_pick_rate_15", "A/B pick rate at a 15-point gap", 1, 2),
    ("ab_pick_rate_20", "A/B pick rate at a 20-point gap", 1, 2),
    ("checkpoint_regret", "checkpoint regret (points)", 100, 1),
    ("episode_accuracy", "per-episode accuracy, open-loop replay", 1, 2),
    ("replay_within_task_spearman", "within-task Spearman, open-loop replay of the real actions", 1, 2),
    ("pearson", "pooled Pearson", 1, 2),
    ("spearman", "pooled Spearman", 1, 2),
    ("kendall_tau_b", "pooled Kendall tau-b", 1, 2),
    ("mae", "MAE (points)", 100, 1),
    ("bias", "bias (points, predicted - true)", 100, 1),
)


def summary_head(res: dict) -> list[str]:
    seeds = res.get("n_seeds", 1)
    head = ["metric", f"mean over {seeds} seeds [95% CI]" if seeds > 1 else "value [95% CI]"]
    if seeds > 1:
        head += ["between-seed sd", f"ensemble of {seeds} [95% CI]"]
    return head + ["noise ceiling (reality split-half)"]


def summary_rows(res: dict) -> list[list[str]]:
    """The headline metrics, one row each, in `summary_head`'s columns."""
    ens, ceiling = res.get("ensemble"), res.get("noise_ceiling", {})
    rows = []
    for key, label, scale, digits in HEADLINE:
        d = res.get(key)
        if key.startswith("ab_pick_rate") and isinstance(d, dict):
            label += f" ({d['pairs']} pairs)"
        if key == "checkpoint_regret":
            label = f"checkpoint regret (points, {res['checkpoint_runs']} runs)"
        if key == "episode_accuracy":
            label += f" ({res['replay_episodes']} episodes)"
        row = [label, fmt_ci(d, scale, digits)]
        if res.get("n_seeds", 1) > 1:
            row += [_sd(d, scale, digits), fmt_ci(ens.get(key), scale, digits)]
        row.append(fmt_ci(ceiling.get(key), scale, digits) if key in ceiling else "")
        rows.append(row)
    episodes = f"{fmt_ci(res['episode_balanced_accuracy'])} / {fmt_ci(res['episode_auroc'])} / " \
               f"{fmt_ci(res['episode_brier'])}"  # fmt: skip
    tail = [["per-episode balanced accuracy / AUROC / Brier", episodes],
            ["policies x tasks / imagined episodes each",
             f"{res['n_policies']} / {res['n_episodes_per_policy']}"]]  # fmt: skip
    if res.get("trust"):
        t = res["trust"]
        tail.append(["trust: Spearman(disagreement, |error|)", fmt_ci(t["trust_error_spearman"])])
        mae = lambda v: "n/a" if v is None else f"{100 * v:.1f}"  # noqa: E731
        tail.append([f"low-trust verdicts (seed sd >= {100 * t['low_trust_threshold']:.0f} points): count, MAE "
                     "vs trusted MAE (points)", f"{t['low_trust_policies']}: {mae(t['mae_low_trust'])} vs "
                     f"{mae(t['mae_trusted'])}"])  # fmt: skip
    if res.get("ensemble_curve"):
        curve = res["ensemble_curve"]
        tail.append([f"ensemble curve: within-task Spearman of 1 .. {len(curve)} members (mean over subsets)",
                     " / ".join("n/a" if c["value"] is None else f"{c['value']:.2f}" for c in curve)])  # fmt: skip
    width = len(summary_head(res))
    return rows + [r + [""] * (width - len(r)) for r in tail]


PER_TASK_HEAD = ["task", "policies", "true range %", "Spearman", "Pearson", "MMRV", "pairwise acc.", "MAE (points)",
                 "episode acc."]  # fmt: skip


def per_task_rows(res: dict) -> list[list[str]]:
    f = fmt_ci
    rows = []
    for t, d in res["per_task"].items():
        lo, hi = d.get("true_range", [float("nan")] * 2)
        rows.append([t, str(d["n_policies"]), f"{100 * lo:.0f}-{100 * hi:.0f}", f(d["spearman"]), f(d["pearson"]),
                     f(d["mmrv"], digits=3), f(d["pairwise_accuracy"]), f(d["mae"], 100, 1),
                     f(d["episode_accuracy"])])  # fmt: skip
    return rows


def policy_head(res: dict) -> list[str]:
    head = ["task", "policy", "true % [95% CI]", "predicted % [95% CI]", "error (points)"]
    return head + (["seed sd (points)", "trust"] if res.get("n_seeds", 1) > 1 else [])


def policy_rows(res: dict) -> list[list[str]]:
    pct = lambda v, lo, hi: f"{100 * v:.0f} [{100 * lo:.0f}, {100 * hi:.0f}]"  # noqa: E731
    rows = []
    for p in res["policies"]:
        row = [p["task"], p["policy"], pct(p["real_rate"], p["real_low"], p["real_high"]),
               pct(p["predicted_rate"], p["predicted_low"], p["predicted_high"]),
               f"{round(100 * (p['predicted_rate'] - p['real_rate'])):+d}"]  # fmt: skip
        if "uncertainty" in p:
            row += [f"{100 * p['uncertainty']:.1f}", "LOW" if p["low_trust"] else "ok"]
        rows.append(row)
    return rows


def markdown(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def format_summary(res: dict) -> str:
    return markdown(summary_head(res), summary_rows(res))


def format_per_task(res: dict) -> str:
    return markdown(PER_TASK_HEAD, per_task_rows(res))


def format_policies(res: dict) -> str:
    return markdown(policy_head(res), policy_rows(res))
