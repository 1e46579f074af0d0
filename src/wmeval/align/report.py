"""`wmeval report`: one self-contained HTML page (inline SVG charts, GIFs as data URIs, no scripts or
external requests) from an alignment JSON and the evaluation it came from.

Sections: headline metrics; predicted vs true success (every policy with both intervals, y = x); the
per-task table; the A/B curve (how often the model picks the truly better policy vs the true gap); every
policy; real vs imagined videos of sampled episodes.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import numpy as np

from wmeval.align import tables as T
from wmeval.data.store import atomic_write_text
from wmeval.eval.success import SuccessRule

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 1100px; color: #222; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 8px 0; } td, th { border: 1px solid #ddd; padding: 3px 8px; }
th { background: #f4f4f4; text-align: left; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.charts { display: flex; flex-wrap: wrap; gap: 24px; } .muted { color: #666; }
.videos { display: flex; flex-wrap: wrap; gap: 16px; } figure { margin: 0; }
figcaption { font-size: 12px; max-width: 384px; } img.video { image-rendering: pixelated; height: 192px; }
.charts > div { width: 530px; }
"""


def _e(x) -> str:
    return html.escape(str(x))


def _axes(w: int, h: int, m: int, xlabel: str, ylabel: str, ticks: list[float], xticks: list[float]) -> list[str]:
    """Frame, grid and labels of a chart on [0, 1] x [0, 1] mapped to the plot area."""
    out = [f'<rect x="{m}" y="{m // 2}" width="{w - 1.5 * m}" height="{h - 1.5 * m}" fill="none" stroke="#999"/>']
    for t in ticks:
        y = _y(t, h, m)
        out.append(f'<line x1="{m}" x2="{w - m // 2}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
        out.append(f'<text x="{m - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">{t:g}</text>')
    for t in xticks:
        x = _x(t, w, m)
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{m // 2}" y2="{h - m}" stroke="#eee"/>')
        out.append(f'<text x="{x:.1f}" y="{h - m + 16}" text-anchor="middle" font-size="11">{t:g}</text>')
    out.append(f'<text x="{(w + m / 2) / 2:.0f}" y="{h - 8}" text-anchor="middle" font-size="12">{_e(xlabel)}</text>')
    out.append(f'<text x="14" y="{h / 2:.0f}" text-anchor="middle" font-size="12" '
               f'transform="rotate(-90 14 {h / 2:.0f})">{_e(ylabel)}</text>')  # fmt: skip
    return out


def _x(v: float, w: int, m: int, lo: float = 0.0, hi: float = 1.0) -> float:
    return m + (v - lo) / (hi - lo) * (w - 1.5 * m)


def _y(v: float, h: int, m: int) -> float:
    return h - m - v * (h - 1.5 * m)


def scatter_svg(res: dict, w: int = 520, h: int = 480, m: int = 50) -> str:
    tasks = list(res["per_task"])
    color = {t: PALETTE[i % len(PALETTE)] for i, t in enumerate(tasks)}
    ticks = [0, 0.25, 0.5, 0.75, 1]
    out = _axes(w, h, m, "true success rate (reality)", "predicted success rate (imagination)", ticks, ticks)
    out.append(f'<line x1="{_x(0, w, m)}" y1="{_y(0, h, m)}" x2="{_x(1, w, m)}" y2="{_y(1, h, m)}" '
               'stroke="#888" stroke-dasharray="5,4"><title>y = x</title></line>')  # fmt: skip
    for p in res["policies"]:
        x, y, c = _x(p["real_rate"], w, m), _y(p["predicted_rate"], h, m), color[p["task"]]
        tip = (f"{p['policy']} ({p['task']}): true {100 * p['real_rate']:.0f}% [{100 * p['real_low']:.0f}, "
               f"{100 * p['real_high']:.0f}], predicted {100 * p['predicted_rate']:.0f}% "
               f"[{100 * p['predicted_low']:.0f}, {100 * p['predicted_high']:.0f}]")  # fmt: skip
        x0, x1 = _x(p["real_low"], w, m), _x(p["real_high"], w, m)
        y0, y1 = _y(p["predicted_low"], h, m), _y(p["predicted_high"], h, m)
        hollow = 'fill="white" stroke-opacity="1" stroke-width="1.5"'  # a low-trust verdict: the models disagree
        dot = hollow if p.get("low_trust") else f'fill="{c}" stroke="none"'
        out.append(f'<g stroke="{c}" stroke-opacity="0.45"><title>{_e(tip)}</title>'
                   f'<line x1="{x0:.1f}" x2="{x1:.1f}" y1="{y:.1f}" y2="{y:.1f}"/>'
                   f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y0:.1f}" y2="{y1:.1f}"/>'
                   f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" {dot}/></g>')  # fmt: skip
    for i, t in enumerate(tasks):
        out.append(f'<circle cx="{m + 12}" cy="{m // 2 + 14 + 16 * i}" r="4" fill="{color[t]}"/>'
                   f'<text x="{m + 20}" y="{m // 2 + 18 + 16 * i}" font-size="11">{_e(t)}</text>')  # fmt: skip
    return f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img">{"".join(out)}</svg>'


def ab_svg(res: dict, w: int = 520, h: int = 480, m: int = 50) -> str:
    curve = [a for a in res["ab_curve"] if a["pairs"] > 0 and np.isfinite(a["rate"])]
    hi_gap = max([a["gap"] for a in res["ab_curve"]] + [0.5])
    xt = [round(g, 2) for g in np.linspace(0, hi_gap, 6)]
    out = _axes(w, h, m, "true gap between the two policies", "P(world model picks the better one)",
                [0, 0.25, 0.5, 0.75, 1], [])  # fmt: skip
    for t in xt:
        x = _x(t, w, m, 0, hi_gap)
        out.append(f'<text x="{x:.1f}" y="{h - m + 16}" text-anchor="middle" font-size="11">{t:g}</text>')
    out.append(f'<line x1="{m}" x2="{w - m // 2}" y1="{_y(0.5, h, m)}" y2="{_y(0.5, h, m)}" stroke="#888" '
               'stroke-dasharray="5,4"><title>chance</title></line>')  # fmt: skip
    if curve:
        band = [(a["gap"], a["high"]) for a in curve] + [(a["gap"], a["low"]) for a in reversed(curve)]
        pts = " ".join(f"{_x(g, w, m, 0, hi_gap):.1f},{_y(v, h, m):.1f}" for g, v in band)
        out.append(f'<polygon points="{pts}" fill="#1f77b4" fill-opacity="0.15" stroke="none"/>')
        line = " ".join(f"{_x(a['gap'], w, m, 0, hi_gap):.1f},{_y(a['rate'], h, m):.1f}" for a in curve)
        out.append(f'<polyline points="{line}" fill="none" stroke="#1f77b4" stroke-width="2"/>')
        for a in curve:
            out.append(f'<circle cx="{_x(a["gap"], w, m, 0, hi_gap):.1f}" cy="{_y(a["rate"], h, m):.1f}" r="3.5" '
                       f'fill="#1f77b4"><title>gap {a["gap"]:.2f}: {a["rate"]:.2f} [{a["low"]:.2f}, '
                       f'{a["high"]:.2f}], {a["pairs"]} pairs</title></circle>')  # fmt: skip
    return f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img">{"".join(out)}</svg>'


def _table(head: list[str], rows: list[list[str]], num_from: int = 1) -> str:
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(f"<td{' class=num' if i >= num_from else ''}>{_e(c)}</td>" for i, c in enumerate(r)) + "</tr>"
        for r in rows
    )
    return f"<table><tr>{th}</tr>{body}</table>"


def _videos(eval_dir: Path | None) -> str:
    if eval_dir is None or not (eval_dir / "videos").is_dir():
        return '<p class="muted">No videos: the evaluation kept none (wmeval evaluate --videos N).</p>'
    pred, real = {}, {}
    ev_file = eval_dir / "evaluation.json"
    if ev_file.is_file():
        ev = json.loads(ev_file.read_text())
        for p in ev["policies"]:
            for s, q in zip(p["seeds"], p["probabilities"], strict=True):
                pred[(p["task"], p["policy"], s)] = q
        for r in (ev.get("replay") or {}).get("episodes_list", []):
            real[(r["task"], r["policy"], r["seed"])] = r["real"]
    figs = []
    for gif in sorted((eval_dir / "videos").glob("*.gif")):
        task, policy, seed = gif.stem.split("__")
        k = (task, policy, int(seed))
        data = base64.b64encode(gif.read_bytes()).decode()
        cap = f"{policy} on {task}, start {int(seed)}: "
        cap += ("real (left; " + ("success" if real[k] else "failure") + ") | imagined (right)") if k in real else (
            "imagined")  # fmt: skip
        if k in pred:
            cap += f"; predicted success probability {pred[k]:.2f}"
        figs.append(f'<figure><img class="video" src="data:image/gif;base64,{data}" alt="{_e(gif.stem)}">'
                    f"<figcaption>{_e(cap)}</figcaption></figure>")  # fmt: skip
    return '<div class="videos">' + "".join(figs) + "</div>"


def _how(cal: dict) -> str:
    """How the calibration episodes were read (evaluations before `--calibration auto` did not say)."""
    times = f", {cal['samples']} samples each" if cal.get("samples", 1) > 1 else ""
    if cal.get("method") == "closed-loop":
        return f" imagined in closed loop by their own policies{times}"
    return f" replayed open loop{times}" if cal.get("method") == "replay" else ""


def _members(res: dict) -> str:
    n = res.get("n_seeds", 1)
    if n < 2:
        return ""
    return (f"Judged by an ensemble of {n} world models (training seeds): the predicted rates are the ensemble's, "
            f"the headline gives the mean over seeds, its spread and the ensemble; verdicts on which the seeds "
            f"disagree by a standard deviation of {100 * res['trust']['low_trust_threshold']:.0f} points or more "
            "are flagged LOW trust. Member 1: ")  # fmt: skip


def render(res: dict, eval_dir: Path | None = None) -> str:
    ev = res["evaluation"]
    tr = ev["model_training"]
    excluded = ", ".join(tr.get("exclude_policies") or []) or "none (in-distribution)"
    rule = SuccessRule(**ev["rule"]).describe()
    cal = ev["calibration"]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>wmeval alignment report</title><style>{CSS}</style></head>
<body>
<h1>World-model evaluation vs reality</h1>
<p>{res["n_policies"]} policies on {res["n_tasks"]} task(s), {res["n_episodes_per_policy"]} imagined episodes each
(reality: {res["n_real_episodes_per_policy"]}+ per policy). {_members(res)}World model
<code>{_e(ev["model"])}</code>, trained on
{len(tr["policies"])} policies' episodes; held out: <code>{_e(excluded)}</code>. Success rule: {_e(rule)},
calibrated on {cal["episodes"]} validation episodes{_how(cal)} (accuracy {cal["accuracy"]:.2f},
AUROC {T.fmt_ci(cal["auroc"])}). Truth: <code>{_e(res["truth"])}</code>.</p>
<h2>Headline</h2>
{_table(T.summary_head(res), T.summary_rows(res))}
<div class="charts">
<div><h2>Predicted vs true success rate</h2>{scatter_svg(res)}
<p class="muted">Bars: 95% intervals (true: Wilson; predicted: bootstrap). Dashed: y = x. Hollow: a
low-trust verdict (the world models disagree).</p></div>
<div><h2>A/B decisions</h2>{ab_svg(res)}
<p class="muted">Pairs of policies of the same task whose true rates differ by the gap (+-5 points); band:
95% bootstrap interval. Dashed: a coin flip.</p></div>
</div>
<h2>Per task</h2>
{_table(T.PER_TASK_HEAD, T.per_task_rows(res))}
<h2>Policies</h2>
{_table(T.policy_head(res), T.policy_rows(res), num_from=2)}
<h2>Real vs imagined</h2>
{_videos(eval_dir)}
<h2>Conventions</h2>
<ul>{"".join(f"<li><b>{_e(k)}</b>: {_e(v)}</li>" for k, v in res["conventions"].items())}</ul>
</body></html>
"""


def write_report(alignment: str | Path, out: str | Path, evaluation_dir: str | Path | None = None) -> Path:
    try:
        res = json.loads(Path(alignment).read_text())
        if res.get("kind") != "wmeval-alignment":
            raise KeyError("kind")
    except (OSError, json.JSONDecodeError, KeyError) as e:
        raise ValueError(f"{alignment}: not an alignment written by `wmeval align` ({e!r})") from None
    ev_dir = Path(evaluation_dir) if evaluation_dir else Path(res["evaluation"].get("path", "")).parent
    out = Path(out)
    atomic_write_text(out, render(res, ev_dir if ev_dir.is_dir() else None))
    return out
