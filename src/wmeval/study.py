"""The data study: how held-out alignment grows with the world model's training data, by amount and kind.

Run on the data of a finished `wmeval bench` run (`wmeval bench --preset cpu --study size,kind`), each
point like an ablation (`wmeval.ablations.run_point`): one world model per seed from the headline's codec,
the same judged policies, starts and metrics. Only the *training* episodes change; the validation
episodes, on which the success rule is calibrated, stay those of the headline, so every point is judged
by a rule fitted on the same unseen episodes.

- size: a nested fraction (12.5, 25, 50%) of the headline's training episodes (100% is the headline);
- kind, at equal size (as many training episodes as the expert's demonstrations): expert demonstrations
  only; + the scripted degradations (others' failures); + rollouts of the learned policies that are not
  judged (the headline's data kind); the in-distribution case (rollouts of the judged policies
  themselves) needs episodes on starts other than the evaluation's and is not a point yet;
- compute at the headline's data: the `steps-half` and `steps-double` ablations, read from their rows.

The codec is the headline's for every point (trained on all the data): the study varies what the
dynamics and heads learn from, not the pixels-to-latents map.

    OUT/study/NAME/...          as an ablation: wm-sK, eval-sK, alignment.json
    OUT/study.json              every finished point: axis, x, episodes, metrics (mean, seed spread)
    OUT/study-*.png             the curves (with matplotlib: pip install -e '.[plots]')
"""

from __future__ import annotations

import json
from pathlib import Path

from wmeval.ablations import Ablation, _brief, run_point
from wmeval.data.store import atomic_write_text
from wmeval.pipeline import PipelineConfig

SIZES = (0.125, 0.25, 0.5)
KINDS = ("expert", "scripted", "learned")
PARTS = ("size", "kind")


def headline_counts(cfg: PipelineConfig) -> dict:
    """Training episodes of the headline (all, and of the expert alone) and the scripted policies' names."""
    from wmeval.data.store import EpisodeStore
    from wmeval.data.windows import is_validation, select_episodes
    from wmeval.zoo import load_zoo

    meta = json.loads((Path(cfg.out) / "wm-heldout" / "model" / "config.json").read_text())
    store = EpisodeStore(Path(cfg.out) / "store")
    train = [m for m in select_episodes(store, cfg.tasks, tuple(cfg.judged))
             if not is_validation(m.key, meta["train"]["val_fraction"])]  # fmt: skip
    scripted = tuple(p.name for p in load_zoo(cfg.scripted_zoo).policies) if cfg.scripted_zoo else ("expert",)
    return {"train": len(train), "expert": sum(m.policy == "expert" for m in train), "scripted": scripted}


def points(cfg: PipelineConfig, parts: tuple[str, ...]) -> dict[str, tuple[str, float | str, Ablation]]:
    """name -> (axis, x, what to train) for the chosen parts of the study."""
    counts = headline_counts(cfg)
    out: dict[str, tuple[str, float | str, Ablation]] = {}
    if "size" in parts:
        for f in SIZES:
            n = max(1, round(f * counts["train"]))
            out[f"size-{f * 100:g}"] = ("size", f, Ablation(f"{f:.1%} of the training episodes ({n})",
                                                            train={"train_episodes": n}))  # fmt: skip
    if "kind" in parts:
        n = counts["expert"]
        policies = {"expert": ("expert",), "scripted": counts["scripted"], "learned": ()}
        for kind in KINDS:
            out[f"kind-{kind}"] = ("kind", kind, Ablation(
                f"{n} training episodes of: {kind} ({', '.join(policies[kind][:4]) or 'every policy not judged'}"
                f"{' ...' if len(policies[kind]) > 4 else ''})",
                train={"train_policies": policies[kind], "train_episodes": n}))  # fmt: skip
    return out


def parse_parts(text: str) -> tuple[str, ...]:
    parts = tuple(PARTS) if text == "all" else tuple(p.strip() for p in text.split(",") if p.strip())
    bad = [p for p in parts if p not in PARTS]
    if bad or not parts:
        raise ValueError(f"unknown study part(s) {', '.join(bad) or repr(text)}; valid: {', '.join(PARTS)}, all")
    return parts


def run_study(cfg: PipelineConfig, parts: tuple[str, ...], progress: bool = True) -> dict:
    """Run (or resume) every point of `parts`, then write OUT/study.json (and the figures)."""
    base = Path(cfg.out)
    for name, (_, _, ab) in points(cfg, parts).items():
        print(f"\n== study point {name}: {ab.what}", flush=True)
        run_point(cfg, ab, base / "study" / name, progress)
    return write_study(cfg)


def _point(name: str, axis: str, x, what: str, al: dict, train_episodes: int | None) -> dict:
    return {"name": name, "axis": axis, "x": x, "what": what, "train_episodes": train_episodes,
            "alignment": _brief(al),
            "seed_values": {k: (al.get(k) or {}).get("seed_values") for k, _ in METRICS}}


def write_study(cfg: PipelineConfig) -> dict:
    """Every finished point (the headline as size 100% and kind `learned` at full size; the steps ablations
    as the compute axis) in OUT/study.json, and the figures if matplotlib is there."""
    base = Path(cfg.out)
    counts = headline_counts(cfg)
    headline = json.loads((base / "alignment-heldout.json").read_text())
    rows = [_point("headline", "size", 1.0, "the headline's training episodes", headline, counts["train"]),
            _point("headline", "compute", 1.0, f"{cfg.wm_steps} steps", headline, counts["train"])]  # fmt: skip
    for name, (axis, x, ab) in points(cfg, PARTS).items():
        path = base / "study" / name / "alignment.json"
        if path.is_file():
            rows.append(_point(name, axis, x, ab.what, json.loads(path.read_text()), ab.train.get("train_episodes")))
    for name, scale in (("steps-half", 0.5), ("steps-double", 2.0)):
        path = base / "ablations" / name / "alignment.json"
        if path.is_file():
            rows.append(_point(name, "compute", scale, f"{scale:g}x the steps", json.loads(path.read_text()),
                               counts["train"]))  # fmt: skip
    res = {"kind": "wmeval-data-study", "bench": str(base), "seeds": cfg.seeds, "points": rows,
           "figures": plot_study(rows, base)}  # fmt: skip
    atomic_write_text(base / "study.json", json.dumps(res, indent=1, default=float) + "\n")
    return res


METRICS = (("within_task_spearman", "within-task Spearman"), ("mmrv", "MMRV"),
           ("checkpoint_regret", "checkpoint regret"), ("pearson", "pooled Pearson"))  # fmt: skip


def plot_study(rows: list[dict], out: Path) -> list[str]:
    """One PNG per axis (size, kind, compute): each metric's seed mean with the seeds' spread as a band
    (or error bars for kinds). Returns the paths written; none without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ModuleNotFoundError:
        return []
    import numpy as np

    written = []
    for axis in ("size", "compute", "kind"):
        pts = sorted((r for r in rows if r["axis"] == axis), key=lambda r: str(r["x"]) if axis == "kind" else r["x"])
        if len(pts) < 2:
            continue
        fig, axes = plt.subplots(1, len(METRICS), figsize=(4 * len(METRICS), 3.2), constrained_layout=True)
        for ax, (key, label) in zip(axes, METRICS, strict=True):
            mean = np.array([(r["alignment"].get(key) or {}).get("value", np.nan) for r in pts], float)
            sd = np.array([(r["alignment"].get(key) or {}).get("seed_std") or 0.0 for r in pts], float)
            xs = np.arange(len(pts)) if axis == "kind" else np.array([r["x"] for r in pts], float)
            if axis == "kind":
                ax.errorbar(xs, mean, yerr=sd, fmt="o", capsize=4)
                ax.set_xticks(xs, [str(r["x"]) for r in pts])
            else:
                ax.plot(xs, mean, "o-")
                ax.fill_between(xs, mean - sd, mean + sd, alpha=0.25)
                ax.set_xscale("log", base=2)
                ax.set_xlabel("fraction of the training episodes" if axis == "size" else "training steps (x headline)")
            ax.set_title(label)
            ax.grid(alpha=0.3)
        fig.suptitle(f"held-out alignment vs {axis} (mean over world-model seeds, band: +- 1 sd)")
        path = out / f"study-{axis}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(str(path))
    return written


def format_study(res: dict) -> str:
    from wmeval.ablations import _cell
    from wmeval.align.tables import markdown

    head = ["axis", "point", "training episodes", "within-task Spearman", "MMRV", "regret (points)",
            "pooled Pearson", "what"]  # fmt: skip
    body = [[r["axis"], r["name"], str(r["train_episodes"]), _cell(r["alignment"]["within_task_spearman"]),
             _cell(r["alignment"]["mmrv"], digits=3), _cell(r["alignment"]["checkpoint_regret"], 100, 1),
             _cell(r["alignment"]["pearson"]), r["what"]] for r in res["points"]]  # fmt: skip
    figures = "".join(f"\nfigure: {f}" for f in res["figures"])
    return markdown(head, body) + f"\npoints written to {res['bench']}/study.json{figures}"

