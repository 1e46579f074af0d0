"""The data study: how held-out alignment grows with the world model's training data, by amount and kind.

Run on the data of a finished `wmeval bench` run (`wmeval bench --preset cpu --study size,kind`), each
point like an ablation (`wmeval.ablations.run_point`): one world model per seed from the headline's codec,
the same judged policies, starts and metrics. Only the *training* episodes change; the validation
episodes, on which the success rule is calibrated, stay those of the headline, so every point is judged
by a rule fitted on the same unseen episodes.

- size: a nested fraction (12.5, 25, 50, 100%) of the headline's training episodes;
- kind, at the smallest size (12.5%, as many episodes as the expert's demonstrations or fewer), adding one
  kind of data at a time: expert demonstrations only; + the scripted degradations (others' failures);
  + rollouts of the learned policies that are not judged (the headline's data kind: the point *is* size
  12.5%, run once); + a few real rollouts of the judged policies themselves (`JUDGED_EPISODES` per policy
  and task, collected on starts far from the evaluation's, `OTHER_STARTS` on; they take their place in the
  same number of episodes): the in-distribution case, 1X's on-policy data. Their evaluation episodes stay
  held out (only `WMTrainConfig.train_seeds` train) and they never validate;
- compute at the headline's data: the `steps-half` and `steps-double` ablations and the headline;
- advice (`wmeval suggest` put to the test): a budget of `ADVICE_BUDGET` new real episodes of the judged
  policies (fresh starts), spent where `wmeval suggest` says (on the headline's three world models) or on
  judged policies drawn at random, added to all the training data; against `steps-half`, the same data
  and compute without them. Each arm collects on its own starts, so the arms never share an episode.

Every size and kind point trains for half the headline's steps (`STEPS_SCALE`): measured on the CPU
headline, within-task Spearman reads 0.45 / 0.52 / 0.48 at 0.5x / 1x / 2x the steps, flat inside the seed
spread, and half the steps lets the whole study run in about 3 hours on 2 cores. Its 100% point is
therefore the `steps-half` ablation (run by the study if missing).

The codec is the headline's for every point (trained on all the data): the study varies what the
dynamics and heads learn from, not the pixels-to-latents map.

    OUT/study/NAME/...          as an ablation: wm-sK, eval-sK, alignment.json (size 100%: OUT/ablations/steps-half)
    OUT/study.json              every finished point: axis, x, episodes, metrics (mean, seed spread)
    OUT/study-*.png             the curves (with matplotlib: pip install -e '.[plots]')
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from wmeval.ablations import Ablation, _brief, run_point
from wmeval.data.store import atomic_write_text
from wmeval.pipeline import PipelineConfig, validate_seeds

SIZES = (0.125, 0.25, 0.5, 1.0)
KINDS = ("expert", "scripted", "learned", "judged")
JUDGED_EPISODES = 2  # real rollouts per judged policy (and task) in the in-distribution kind
OTHER_STARTS = 10_000  # their start seeds begin this far after the evaluation's first
PARTS = ("size", "kind", "advice")
ADVICE_BUDGET = 48  # real episodes of the judged policies added in each arm of the advice experiment
ADVICE_BLOCK = 4  # `wmeval suggest --min-episodes`
ADVICE_ARMS = {"suggest": 2, "random": 3}  # arm -> its starts begin at cfg.seed + k * OTHER_STARTS
CATEGORIES = {  # the categorical axes: value -> tick label, in plotting order
    "kind": {"expert": "expert only", "scripted": "+ scripted\nfailures", "learned": "+ learned\n(not judged)",
             "judged": "+ judged\npolicies' own"},
    "advice": {"none": "no new\nepisodes", "random": "+ random\nepisodes", "suggest": "+ suggested\nepisodes"},
}
STEPS_SCALE = 0.5  # of the headline's dynamics steps, for every size and kind point (as `steps-half`)


def headline_counts(cfg: PipelineConfig) -> dict:
    """Training episodes of the headline (all, and of the expert alone) and the scripted policies' names."""
    from wmeval.data.store import EpisodeStore
    from wmeval.data.windows import select_episodes, validates
    from wmeval.zoo import load_zoo

    store = EpisodeStore(Path(cfg.out) / "store")
    train = [m for m in select_episodes(store, cfg.tasks, tuple(cfg.judged))
             if not validates(m, cfg.val_fraction, validate_seeds(cfg))]  # fmt: skip
    scripted = tuple(p.name for p in load_zoo(cfg.scripted_zoo).policies) if cfg.scripted_zoo else ("expert",)
    return {"train": len(train), "expert": sum(m.policy == "expert" for m in train), "scripted": scripted}


def _size_name(f: float) -> str:
    return f"size-{f * 100:g}"


def points(cfg: PipelineConfig, parts: tuple[str, ...]) -> dict[str, tuple[str, float | str, Ablation, str]]:
    """name -> (axis, x, what to train, its directory under OUT) for the chosen parts of the study. Points
    that train the same thing share a directory (kind `learned` is size 12.5% when the sizes agree)."""
    from wmeval.ablations import ABLATIONS

    counts = headline_counts(cfg)
    sizes = {f: max(1, round(f * counts["train"])) for f in SIZES}
    out: dict[str, tuple[str, float | str, Ablation, str]] = {}
    for f, n in sizes.items():
        if f == 1.0:
            if "size" in parts:
                out[_size_name(f)] = ("size", f, ABLATIONS["steps-half"], "ablations/steps-half")
        elif "size" in parts or ("kind" in parts and f == SIZES[0]):
            out[_size_name(f)] = ("size", f, Ablation(
                f"{f:.1%} of the training episodes ({n}), {STEPS_SCALE:g}x the steps",
                train={"train_episodes": n, "steps_scale": STEPS_SCALE}), f"study/{_size_name(f)}")  # fmt: skip
    if "kind" in parts:
        n = min(counts["expert"], sizes[SIZES[0]])
        policies = {"expert": ("expert",), "scripted": counts["scripted"], "learned": (), "judged": ()}
        for kind in KINDS:
            ab = Ablation(
                f"{n} training episodes of: {kind} ({', '.join(policies[kind][:4]) or 'every policy not judged'}"
                f"{' ...' if len(policies[kind]) > 4 else ''}), {STEPS_SCALE:g}x the steps",
                train={"train_policies": policies[kind], "train_episodes": n, "steps_scale": STEPS_SCALE})
            if kind == "judged":
                ab = Ablation(
                    f"{n} training episodes: {JUDGED_EPISODES} real rollouts of each judged policy on other starts, "
                    f"the rest as `learned`, {STEPS_SCALE:g}x the steps",
                    train={"train_seeds": (cfg.seed + OTHER_STARTS, cfg.seed + 2 * OTHER_STARTS - 1),
                           "train_episodes": n, "steps_scale": STEPS_SCALE})  # fmt: skip
            same = kind == "learned" and n == sizes[SIZES[0]]
            out[f"kind-{kind}"] = ("kind", kind, ab, f"study/{_size_name(SIZES[0])}" if same else f"study/kind-{kind}")
    if "advice" in parts:
        out["advice-none"] = ("advice", "none", ABLATIONS["steps-half"], "ablations/steps-half")
        for arm, k in ADVICE_ARMS.items():
            lo = cfg.seed + k * OTHER_STARTS
            out[f"advice-{arm}"] = ("advice", arm, Ablation(
                f"all the training episodes + {ADVICE_BUDGET} real episodes of the judged policies chosen by "
                f"{'`wmeval suggest`' if arm == 'suggest' else 'a uniform draw'}, {STEPS_SCALE:g}x the steps",
                train={"train_seeds": (lo, lo + OTHER_STARTS - 1), "steps_scale": STEPS_SCALE}), f"study/advice-{arm}")
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
    if "kind" in parts:
        collect_judged_elsewhere(cfg, progress)
    if "advice" in parts:
        collect_advice(cfg, progress)
    done = set()
    for name, (_, _, ab, where) in points(cfg, parts).items():
        if where not in done:
            done.add(where)
            print(f"\n== study point {name}: {ab.what}", flush=True)
            run_point(cfg, ab, base / where, progress)
    return write_study(cfg)


def collect_judged_elsewhere(cfg: PipelineConfig, progress: bool = True) -> None:
    """The judged policies' own rollouts for the in-distribution kind: `JUDGED_EPISODES` per policy and task,
    on starts `cfg.seed + OTHER_STARTS` on (never the evaluation's), into the bench store (resumable)."""
    from wmeval.ablations import finished_bench
    from wmeval.collect import collect
    from wmeval.zoo import load_zoo, matches_any

    zoo = load_zoo(finished_bench(cfg, models=False))
    judged = [p.name for p in zoo.policies if matches_any(p.name, cfg.judged)]
    store = Path(cfg.out) / "store"
    collect(store, zoo.select(judged), cfg.tasks, JUDGED_EPISODES, _reality_config(cfg), seed=cfg.seed + OTHER_STARTS,
            workers=cfg.workers or os.cpu_count() or 1, progress=progress,
            command="wmeval bench --study kind: the judged policies' own rollouts on other starts")  # fmt: skip


def advice_plan(cfg: PipelineConfig) -> dict:
    """{arm: {(policy, task): episodes}}: `wmeval suggest` on the headline's world models, and a uniform
    draw (seeded) of judged (policy, task) pairs, each spending `ADVICE_BUDGET` episodes."""
    from collections import Counter

    import numpy as np

    from wmeval.align.align import load_evaluation
    from wmeval.align.suggest import suggest

    base = Path(cfg.out)
    evals = [load_evaluation(base / ("eval-heldout" if k == 0 else f"eval-heldout-s{k}"))[0] for k in range(cfg.seeds)]
    advice = suggest(evals, ADVICE_BUDGET, ADVICE_BLOCK)["policies"]
    pairs = sorted((d["policy"], d["task"]) for d in advice)
    draw = Counter(pairs[i] for i in np.random.default_rng(0).integers(len(pairs), size=ADVICE_BUDGET))
    return {"suggest": {(d["policy"], d["task"]): d["episodes"] for d in advice if d["episodes"]},
            "random": dict(draw)}  # fmt: skip


def collect_advice(cfg: PipelineConfig, progress: bool = True) -> None:
    """Each arm's real episodes on its own fresh starts (resumable); the plan goes to OUT/study/advice.json."""
    from wmeval.ablations import finished_bench
    from wmeval.collect import collect
    from wmeval.zoo import load_zoo

    plan = advice_plan(cfg)
    base = Path(cfg.out)
    (base / "study").mkdir(parents=True, exist_ok=True)
    atomic_write_text(base / "study" / "advice.json", json.dumps(
        {arm: [{"policy": p, "task": t, "episodes": n} for (p, t), n in sorted(a.items())] for arm, a in plan.items()},
        indent=1) + "\n")  # fmt: skip
    zoo, reality = load_zoo(finished_bench(cfg)), _reality_config(cfg)
    for arm, alloc in plan.items():
        for (policy, task), n in sorted(alloc.items()):
            collect(base / "store", zoo.select([policy]), (task,), n, reality,
                    seed=cfg.seed + ADVICE_ARMS[arm] * OTHER_STARTS, workers=1, progress=False,
                    command=f"wmeval bench --study advice: the {arm} arm")  # fmt: skip
        if progress:
            print(f"advice arm {arm}: {sum(alloc.values())} real episodes over {len(alloc)} judged policies")


def _reality_config(cfg: PipelineConfig):
    """How the bench store's episodes were observed, to collect more like them."""
    from wmeval.data.store import EpisodeStore
    from wmeval.reality import make_config

    L = EpisodeStore(Path(cfg.out) / "store").layout
    return make_config(cfg.suite, views=L.views, image_size=L.image_size, frame_skip=L.frame_skip,
                       max_steps=L.horizon * L.frame_skip)  # fmt: skip


def _point(name: str, axis: str, x, what: str, al: dict, train_episodes: int | None) -> dict:
    return {"name": name, "axis": axis, "x": x, "what": what, "train_episodes": train_episodes,
            "alignment": _brief(al),
            "seed_values": {k: (al.get(k) or {}).get("seed_values") for k, _ in METRICS}}


def write_study(cfg: PipelineConfig) -> dict:
    """Every finished point (and the compute axis: the steps ablations and the headline) in OUT/study.json,
    and the figures if matplotlib is there."""
    from wmeval.ablations import ABLATIONS

    base = Path(cfg.out)
    counts = headline_counts(cfg)
    rows = [_point("headline", "compute", 1.0, f"{cfg.wm_steps} steps",
                   json.loads((base / "alignment-heldout.json").read_text()), counts["train"])]  # fmt: skip
    for name, scale in (("steps-half", 0.5), ("steps-double", 2.0)):
        path = base / "ablations" / name / "alignment.json"
        if path.is_file():
            rows.append(_point(name, "compute", scale, ABLATIONS[name].what, json.loads(path.read_text()),
                               counts["train"]))  # fmt: skip
    for name, (axis, x, ab, where) in points(cfg, PARTS).items():
        path = base / where / "alignment.json"
        if path.is_file():
            n = ab.train.get("train_episodes", counts["train"])
            n += ADVICE_BUDGET if axis == "advice" and x != "none" else 0  # the arm's real episodes come on top
            rows.append(_point(name, axis, x, ab.what, json.loads(path.read_text()), n))
    res = {"kind": "wmeval-data-study", "bench": str(base), "seeds": cfg.seeds, "steps_scale": STEPS_SCALE,
           "points": rows, "figures": plot_study(rows, base)}  # fmt: skip
    atomic_write_text(base / "study.json", json.dumps(res, indent=1, default=float) + "\n")
    return res


METRICS = (("within_task_spearman", "within-task Spearman"), ("mmrv", "MMRV"),
           ("checkpoint_regret", "checkpoint regret"), ("pearson", "pooled Pearson"))  # fmt: skip


def plot_study(rows: list[dict], out: Path) -> list[str]:
    """One PNG per axis (size, kind, compute, advice): each metric's seed mean with the seeds' spread as a band
    (or error bars for kinds). Returns the paths written; none without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ModuleNotFoundError:
        return []
    import numpy as np

    written = []
    for axis in ("size", "compute", "kind", "advice"):
        pts = sorted((r for r in rows if r["axis"] == axis),
                     key=lambda r: list(CATEGORIES[axis]).index(r["x"]) if axis in CATEGORIES else r["x"])  # fmt: skip
        if len(pts) < 2:
            continue
        fig, axes = plt.subplots(1, len(METRICS), figsize=(4 * len(METRICS), 3.2), constrained_layout=True)
        for ax, (key, label) in zip(axes, METRICS, strict=True):
            mean = np.array([(r["alignment"].get(key) or {}).get("value", np.nan) for r in pts], float)
            sd = np.array([(r["alignment"].get(key) or {}).get("seed_std") or 0.0 for r in pts], float)
            xs = np.arange(len(pts)) if axis in CATEGORIES else np.array([r["x"] for r in pts], float)
            ax.set_title(label)
            if not np.isfinite(mean).any():  # e.g. a single task has no within-task ranking to score
                ax.text(0.5, 0.5, "n/a", ha="center", va="center", transform=ax.transAxes)
                continue
            if axis in CATEGORIES:
                ax.errorbar(xs, mean, yerr=sd, fmt="o", capsize=4)
                ax.set_xticks(xs, [CATEGORIES[axis][r["x"]] for r in pts])
            else:
                ax.plot(xs, mean, "o-")
                ax.fill_between(xs, mean - sd, mean + sd, alpha=0.25)
                ax.set_xscale("log", base=2)
                ax.set_xlabel(f"fraction of the training episodes ({STEPS_SCALE:g}x the steps)" if axis == "size"
                              else "training steps (x headline)")
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

