"""`wmeval evaluate`: predicted success rates of a zoo's policies, judged in imagination.

    OUT/evaluation.json    the result: per policy its predicted rate with a bootstrap interval and every
                           episode's probability (read through the rate map, and raw); the success rule,
                           its calibration and rate map; open-loop replay agreement per episode; throughput
    OUT/episodes.jsonl     imagined episodes as they finish (what a restarted run skips)
    OUT/calibration.json   the success rules, and every row (episode, sample, outcome, readout) the one that
                           reads imagined episodes was fitted on, for offline analyses of other rules
    OUT/videos/*.gif       a few imagined episodes, beside the real one when the store has it

Steps: (1) calibrate the success rule on the world model's validation episodes, replayed open loop;
(2) run every (policy, task, start) closed loop in imagination, batched, as far as the rule reads (a
`mean-first` rule reads the first k generated frames, so the rest is not imagined unless `full_episodes`;
the episodes kept as videos always run to the horizon), each start's probability read through the rate map
fitted on the calibration's policies (wmeval.eval.rates), a policy's rate their mean; (3) replay the logged
actions of the judged policies' real episodes, if the store has them, and score the predicted outcome per
episode.
"""

from __future__ import annotations

import json
import time
from dataclasses import MISSING, asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from wmeval.data.store import EpisodeMeta, EpisodeStore, atomic_write_text, episode_key
from wmeval.eval.branches import STARTS, logged_starts
from wmeval.eval.calibration import CALIBRATIONS, cache_key, calibrate, episode_values, rate_map
from wmeval.eval.imagination import Job, check_layout, imagine, recorded_starts
from wmeval.eval.rates import RateMap
from wmeval.eval.rundir import append_lines, cached, episode_json, load_done
from wmeval.eval.success import SuccessRule, bootstrap_mean, outcome_metrics
from wmeval.eval.videos import video_path, video_picks, write_episode_video
from wmeval.model.judge import load_judge
from wmeval.model.proprio import load_proprio_net
from wmeval.model.world_model import load_world_model
from wmeval.policies.learned import LearnedPolicy
from wmeval.reality.base import Layout
from wmeval.train.common import resolve_device
from wmeval.zoo import IMAGINABLE, PolicySpec, load_zoo


@dataclass(frozen=True)
class EvalConfig:
    model: str
    zoo: str
    out: str
    store: str | None = None  # recorded starts and real episodes (default: the store the model trained on)
    policies: tuple[str, ...] | None = None  # names or glob patterns (default: the whole zoo)
    tasks: tuple[str, ...] | None = None  # default: the tasks the model was trained on
    episodes: int = 50
    seed: int = 1000  # first start seed: starts seed, seed + 1, ... as in `wmeval collect --seed`
    batch_size: int = 64
    rule: str = "combined"  # how the value trajectory is read as success, see wmeval.eval.success
    # fit the success rule on: "closed-loop" imagination of the training policies, "replay" (open loop), or "auto":
    # closed loop where there are enough such validation episodes (wmeval.eval.calibration)
    calibration: str = "auto"
    calibration_episodes: int = 256
    # replays or imagined episodes per calibration episode, each its own noise (None: 4 in closed loop, 1 on replays)
    calibration_samples: int | None = None
    replay: bool = True
    videos: int = 6
    noise_seed: int = 0
    samples: int = 1  # imagined episodes per (policy, start), each with its own noise; probabilities averaged
    # read each start's probability through the rate map fitted on the calibration's policies (wmeval.eval.rates);
    # off: a policy's rate is the plain mean probability of its imagined episodes
    rate_map: bool = True
    full_episodes: bool = False  # imagine to the horizon even when the success rule reads only the first frames
    euler_steps: int | None = None  # Euler steps per generated frame (None: the world model's own setting)
    context_tau: float | None = None  # signal level generated frames re-enter the context at (None: the model's)
    context_frames: int | None = None  # past frames a generated frame attends to (None: the model's)
    guidance: float | None = None  # action guidance (None: the model's, 1); > 1 needs a model trained with dropout
    # autoguidance: a weaker checkpoint of the same run guides sampling (WorldModel.guide_with), given as a path or
    # as the name of a sibling checkpoint of `model` ("step_004000"); its scale
    autoguide: str | None = None
    autoguide_scale: float = 2.0
    judge: str | None = None  # a judge (`wmeval train-judge`) reads the imagined episodes instead of the value head
    proprio_net: str | None = None  # a proprio net (`wmeval train-proprio`) predicts the imagined proprio
    # where imagined episodes begin: "reset", each recorded start, imagined to the horizon; "logged", `episodes`
    # states inside other policies' recorded episodes per task, each after `branch_context` real frames, imagined
    # `branch_frames` on (wmeval.eval.branches)
    starts: str = "reset"
    branch_frames: int = 7
    branch_context: int = 4
    device: str = "auto"

    def __post_init__(self) -> None:
        for name in ("episodes", "batch_size", "calibration_episodes", "calibration_samples", "samples"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.euler_steps is not None and self.euler_steps < 1:
            raise ValueError(f"euler_steps must be >= 1, got {self.euler_steps}")
        if self.context_tau is not None and not 0 < self.context_tau <= 1:
            raise ValueError(f"context_tau must be in (0, 1], got {self.context_tau}")
        if self.context_frames is not None and self.context_frames < 1:
            raise ValueError(f"context_frames must be >= 1, got {self.context_frames}")
        if self.calibration not in CALIBRATIONS:
            raise ValueError(f"unknown calibration {self.calibration!r}; valid: {', '.join(CALIBRATIONS)}")
        if self.starts not in STARTS:
            raise ValueError(f"unknown starts {self.starts!r}; valid: {', '.join(STARTS)}")
        for name in ("branch_frames", "branch_context"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.starts == "logged" and self.calibration == "closed-loop":
            raise ValueError("--starts logged calibrates on replays of branched validation episodes; use "
                             "--calibration replay (or auto)")

    def to_json(self) -> dict:
        return json.loads(json.dumps(asdict(self)))


def check_policies(specs: list[PolicySpec], tasks: dict[str, list[str]], model_layout: dict, model_name: str,
                   layout: Layout) -> None:  # fmt: skip
    """Refuse up front what imagination cannot run: scripted policies (they read simulator state, which
    imagination has not), learned ones trained on another layout than the world model's, and Python or
    LeRobot policies that cannot be built for the layout."""
    for spec in specs:
        if spec.base not in IMAGINABLE:
            raise ValueError(
                f"policy {spec.name!r} (base {spec.base!r}) reads privileged simulator state, which "
                "imagination does not have; judge learned (pixel) policies, or leave it out with --policies"
            )
        if spec.base == "checkpoint":
            trained = LearnedPolicy.read_layout(spec.checkpoint)
            check_layout(model_layout, Layout.from_json(trained), model_name, f"policy {spec.name!r}")
        for task in tasks[spec.name]:
            spec.check(task, layout)


def load_eval_model(cfg: EvalConfig, device: str | torch.device):
    """The world model an evaluation judges with: its checkpoint with the evaluation's sampling settings, guide
    and judge applied; returns (model, checkpoint config)."""
    model, meta = load_world_model(cfg.model, device)
    if cfg.euler_steps:
        model.cfg = replace(model.cfg, sample_steps=cfg.euler_steps)
    if cfg.context_tau:
        model.cfg = replace(model.cfg, context_tau=cfg.context_tau)
    if cfg.context_frames:
        model.cfg = replace(model.cfg, context_frames=cfg.context_frames)
    if cfg.guidance is not None:
        model.cfg = replace(model.cfg, guidance=cfg.guidance)
    if cfg.autoguide:
        model.guide_with(load_world_model(guide_path(cfg.model, cfg.autoguide), device)[0], cfg.autoguide_scale)
    if cfg.judge:
        model.judge_with(load_judge(cfg.judge, device)[0])
    if cfg.proprio_net:
        model.proprio_with(load_proprio_net(cfg.proprio_net, device)[0])
    return model, meta


def evaluate(cfg: EvalConfig, progress: bool = True) -> dict:
    device = resolve_device(cfg.device)
    model, meta = load_eval_model(cfg, device)
    if cfg.store is None and not Path(meta["data"]["store"]).is_dir():  # e.g. a shipped model (wmeval.models)
        raise ValueError(f"{cfg.model} was trained on {meta['data']['store']}, which is not on this machine: name "
                         "the store that holds the starts (and real episodes) to judge with --store")  # fmt: skip
    store = EpisodeStore(cfg.store or meta["data"]["store"])
    layout = store.layout
    check_layout(meta["layout"], layout, cfg.model, f"the store {store.root}")
    zoo = load_zoo(cfg.zoo).select(list(cfg.policies) if cfg.policies else None)
    tasks = tuple(cfg.tasks or meta["data"]["tasks"])
    runs = {p.name: [t for t in tasks if p.runs_on(t)] for p in zoo.policies}
    specs = [p for p in zoo.policies if runs[p.name]]
    if not specs:
        raise ValueError(f"no policy of {zoo.source} runs on tasks {list(tasks)}")
    check_policies(specs, runs, meta["layout"], cfg.model, layout)
    index = store.index()  # episode headers, read once

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    run_file = out / "run.json"
    want = {"config": cfg.to_json(), "model_step": meta.get("step")}  # the store may grow (e.g. its truth)
    if run_file.is_file() and (diffs := _differences(json.loads(run_file.read_text()), want)):
        raise ValueError(f"{out} holds an evaluation with other settings ({'; '.join(diffs)}); use a new "
                         f"--out or delete {out}")  # fmt: skip
    atomic_write_text(run_file, json.dumps(want, indent=2) + "\n")

    def _calibrate() -> dict:
        c = calibrate(model, meta, store, index, tasks, cfg, progress)
        return {"rule": c.rule.to_json(), "replay_rule": c.replay_rule.to_json(), "calibration": c.report,
                "rows": c.rows}  # fmt: skip

    cal = cached(out / "calibration.json", cache_key(cfg), _calibrate)
    rule, calibration = SuccessRule(**cal["value"]["rule"]), cal["value"]["calibration"]
    replay_rule = SuccessRule(**cal["value"]["replay_rule"])
    rates, rates_report = rate_map(cal["value"], index) if cfg.rate_map else (RateMap(), {"why": "--no-rate-map"})

    seeds = list(range(cfg.seed, cfg.seed + cfg.episodes))  # the recorded starts (and the real episodes judged)
    judged_tasks = sorted({t for s in specs for t in runs[s.name]})
    if cfg.starts == "logged":
        judged = {s.name for s in specs}
        starts = {t: logged_starts(store, index, t, judged, cfg.episodes, cfg.branch_frames, cfg.branch_context,
                                   cfg.seed) for t in judged_tasks}  # fmt: skip
        keep, steps = set(), cfg.branch_frames
    else:
        starts = {t: recorded_starts(store, t, seeds, index) for t in judged_tasks}
        keep = video_picks(specs, runs, seeds, store, cfg.videos)
        steps = layout.horizon if cfg.full_episodes else rule.frames_read(layout.horizon)
    jobs = [Job(s, t, st) for s in specs for t in runs[s.name] for st in starts[t]]
    done, spent = _imagine_all(model, layout, store, jobs, keep, cfg, progress, steps)

    policies = []
    errors = []
    for s in specs:
        for t in runs[s.name]:
            # a start's probability: the mean over its samples that ran; a start none of them ran is an error
            rows = {st.start.seed: [done[(s.name, t, st.start.seed, j)] for j in range(cfg.samples)]
                    for st in starts[t]}  # fmt: skip
            errors += [{"policy": s.name, "task": t, "seed": sd, "error": r[0]["error"]}
                       for sd, r in rows.items() if all(x["error"] for x in r)]  # fmt: skip
            ok = {sd: [x for x in r if not x["error"]] for sd, r in rows.items() if any(not x["error"] for x in r)}
            raw = np.array([rule.probability(np.array([x["values"][: steps + 1] for x in r])).mean()
                            for r in ok.values()])  # fmt: skip
            p = rates.apply(t, raw)
            rate, low, high = bootstrap_mean(p)
            policies.append({
                "policy": s.name, "task": t, "spec": s.to_json(), "tags": _tags(s), "episodes": len(ok),
                "errors": len(rows) - len(ok), "predicted_rate": rate, "low": low, "high": high,
                "mean_probability": float(raw.mean()) if len(raw) else float("nan"), "seeds": list(ok),
                "probabilities": [round(float(x), 5) for x in p],
                "raw_probabilities": [round(float(x), 5) for x in raw],
            })  # fmt: skip

    replay, t_replay = None, 0.0
    by_key = {m.key: m for m in index}
    keys = [episode_key(t, s.name, sd) for s in specs for t in runs[s.name] for sd in seeds]
    # the judged policies' recorded episodes with a known outcome
    recorded = [by_key[k] for k in keys if k in by_key and by_key[k].outcome is not None]
    if cfg.replay and recorded:
        rep = cached(out / "replay.json", {"keys": [m.key for m in recorded], "rule": replay_rule.to_json()},
                      lambda: _replay(model, store, recorded, replay_rule, cfg, progress))  # fmt: skip
        replay, t_replay = rep["value"], rep["seconds"]

    n_frames = spent["frames"]
    result = {
        "kind": "wmeval-evaluation", "model": str(cfg.model), "model_step": meta.get("step"),
        "model_training": {"store": meta["data"]["store"], "store_fingerprint": meta["data"]["store_fingerprint"],
                           "policies": meta["data"]["policies"], "tasks": meta["data"]["tasks"],
                           "exclude_policies": meta["train"].get("exclude_policies", [])},
        "store": str(store.root), "store_fingerprint": store.fingerprint(), "layout": layout.to_json(),
        "zoo": zoo.source, "tasks": list(tasks), "seeds": [seeds[0], seeds[-1]], "config": cfg.to_json(),
        "rule": rule.to_json(), "replay_rule": replay_rule.to_json(), "calibration": calibration,
        "rate_map": {"lines": rates.to_json(), **rates_report}, "policies": policies, "errors": errors,
        "replay": replay, "device": str(device),
        "timing": {"calibration_s": cal["seconds"], "imagination_s": spent["seconds"], "replay_s": t_replay,
                   "imagined_episodes": spent["episodes"], "imagined_frames": n_frames, "frames_per_episode": steps,
                   "frames_per_s": n_frames / spent["seconds"] if spent["episodes"] else None,
                   "episodes_per_s": spent["episodes"] / spent["seconds"] if spent["episodes"] else None,
                   "batch_size": cfg.batch_size},
    }  # fmt: skip
    atomic_write_text(out / "evaluation.json", json.dumps(result, indent=1) + "\n")
    return result


def _imagine_all(model, layout: Layout, store: EpisodeStore, jobs: list[Job], keep: set, cfg: EvalConfig,
                 progress: bool, steps: int) -> tuple[dict, dict]:  # fmt: skip
    """Every (job, sample) closed loop for `steps` chunks, resuming from OUT/episodes.jsonl and appending to it
    every few batches. Sample j draws its noise from seed `noise_seed + j`. The episodes in `keep` are written
    as videos of the whole horizon (imagined again to the end when `steps` stops short). Returns the episodes by
    (policy, task, seed, sample) and the imagination time spent over every run."""
    out = Path(cfg.out)
    log = out / "episodes.jsonl"
    done = load_done(log)
    spent_file = out / "imagination_time.json"  # seconds, episodes and frames over every run that imagined some
    spent = json.loads(spent_file.read_text()) if spent_file.is_file() else {"seconds": 0.0, "episodes": 0}
    spent.setdefault("frames", spent["episodes"] * layout.horizon)  # runs before `steps` imagined whole episodes
    whole = steps >= layout.horizon
    todo = [[j for j in jobs if (j.policy.name, j.task, j.start.start.seed, k) not in done] for k in range(cfg.samples)]
    bar = tqdm(total=sum(map(len, todo)) * steps, desc="imagine", unit="frame", disable=not progress)
    for k, todo_k in enumerate(todo):
        for b0 in range(0, len(todo_k), cfg.batch_size * 4):  # commit results every few batches
            t0 = time.perf_counter()
            eps = imagine(model, layout, todo_k[b0 : b0 + cfg.batch_size * 4], cfg.batch_size, cfg.noise_seed + k,
                          keep if k == 0 and whole else set(), bar, steps)  # fmt: skip
            spent = {"seconds": spent["seconds"] + time.perf_counter() - t0, "episodes": spent["episodes"] + len(eps),
                     "frames": spent["frames"] + len(eps) * steps}  # fmt: skip
            for e in eps:
                if e.frames is not None:
                    write_episode_video(out / "videos", e, store, layout.fps)
            lines = [episode_json(e, k) for e in eps]
            append_lines(log, lines)
            atomic_write_text(spent_file, json.dumps(spent) + "\n")
            done.update({(e.policy, e.task, e.seed, k): json.loads(line) for e, line in zip(eps, lines, strict=True)})
    bar.close()
    videos = [j for j in jobs if (j.policy.name, j.task, j.start.start.seed) in keep
              and not video_path(out / "videos", j.task, j.policy.name, j.start.start.seed).is_file()]  # fmt: skip
    if videos and not whole:
        for e in imagine(model, layout, videos, cfg.batch_size, cfg.noise_seed, keep, progress=False):
            write_episode_video(out / "videos", e, store, layout.fps)
    return done, spent


def guide_path(model: str, guide: str) -> Path:
    """The guiding checkpoint: a path, or a checkpoint beside the model's own (its training run's `step_N`)."""
    for path in (Path(guide), Path(model).resolve().parent / guide):
        if (path / "config.json").is_file():
            return path
    raise ValueError(f"no checkpoint {guide!r} for autoguidance: neither a path nor a checkpoint in "
                     f"{Path(model).resolve().parent}; pass an earlier checkpoint of the model's run")  # fmt: skip


REREAD = {"rate_map"}  # settings that only change how the stored episodes are read: a run may switch them


def _differences(saved: dict, want: dict) -> list[str]:
    """What differs between a run directory's settings and these, e.g. `calibration: 'replay' -> 'auto'` (a
    default that changed since the run was written); none: the directory holds this evaluation. Settings added
    to EvalConfig after the run was written count as the same when at their defaults (the run used that)."""
    old, new = saved.get("config", {}), want["config"]
    defaults = {f.name: f.default for f in fields(EvalConfig) if f.default is not MISSING}
    diffs = [f"{k}: {old[k]!r} -> {new.get(k)!r}" for k in sorted(old) if old[k] != new.get(k) and k not in REREAD]
    diffs += [f"{k}: not set -> {new[k]!r}" for k in sorted(set(new) - set(old))
              if k not in REREAD and (k not in defaults or new[k] != defaults[k])]  # fmt: skip
    if saved.get("model_step") != want["model_step"]:
        diffs.append(f"model step: {saved.get('model_step')} -> {want['model_step']}")
    return diffs


def _tags(spec: PolicySpec) -> dict:
    if spec.checkpoint is None:  # a Python or LeRobot policy: what it is, not how it was trained
        return {
            "base": spec.base,
            "run": str(spec.option("path") or spec.option("entry")),
            "degraded": bool(spec.degrade),
        }
    tags = dict(LearnedPolicy.read_tags(spec.checkpoint))
    tags["run"] = str(Path(spec.checkpoint).parent)
    tags["degraded"] = bool(spec.degrade)
    return tags


def _replay(model, store: EpisodeStore, metas: list[EpisodeMeta], rule: SuccessRule, cfg: EvalConfig,
            progress: bool) -> dict:  # fmt: skip
    """Open-loop replay of the judged policies' recorded episodes: predicted vs real outcome per episode."""
    values = episode_values(model, store, metas, cfg, progress)
    p = rule.probability(values)
    y = np.array([m.outcome for m in metas])
    per_task = {t: outcome_metrics(p[[m.task == t for m in metas]], y[[m.task == t for m in metas]])
                for t in sorted({m.task for m in metas})}  # fmt: skip
    return {
        **outcome_metrics(p, y), "per_task": per_task,
        "episodes_list": [{"policy": m.policy, "task": m.task, "seed": m.seed, "real": bool(m.outcome),
                           "probability": round(float(q), 5)} for m, q in zip(metas, p, strict=True)],
    }  # fmt: skip


def describe_rate_map(m: dict) -> list[str]:
    """The rate map's lines (an evaluation's `rate_map`), per task: its line or why the task has none."""
    if "why" in m:
        return [f"rate map: none ({m['why']})"]
    out = []
    for t, r in m.get("tasks", {}).items():
        line = (f"rate = {r['a']:+.2f} + {r['b']:.2f} x probability, on {r['policies']} calibration policies"
                f" (Pearson {r['pearson']:.2f})") if "b" in r else ""  # fmt: skip
        out.append(f"rate map, {t}: {line if t in m['lines'] else 'none (' + r['why'] + ')'}")
    return out


def format_evaluation(res: dict) -> str:
    """What `wmeval evaluate` prints: the success rule, every policy's predicted rate, replay and speed."""
    rule, cal = res["rule"], res["calibration"]
    lines = [f"success rule: {SuccessRule(**rule).describe()}; fitted {cal['method']} on {cal['episodes']} "
             f"calibration episodes: accuracy {cal['accuracy']:.3f}, AUROC {cal['auroc']:.3f}, "
             f"Brier {cal['brier']:.3f}",
             *describe_rate_map(res.get("rate_map") or {}),
             f"{'task':<22} {'policy':<44} predicted % [95% CI]   episodes"]  # fmt: skip
    for p in res["policies"]:
        err = f"  ({p['errors']} stopped by policy errors)" if p["errors"] else ""
        lines.append(f"{p['task']:<22} {p['policy']:<44} {100 * p['predicted_rate']:5.1f} [{100 * p['low']:4.1f}, "
                     f"{100 * p['high']:5.1f}]   {p['episodes']}{err}")  # fmt: skip
    if res["replay"]:
        r = res["replay"]
        lines.append(f"open-loop replay of {r['episodes']} recorded episodes ({r['successes']} successes): accuracy "
                     f"{r['accuracy']:.3f}, balanced {r['balanced_accuracy']:.3f}, AUROC {r['auroc']:.3f}, "
                     f"Brier {r['brier']:.3f}")  # fmt: skip
    t = res["timing"]
    if t["frames_per_s"]:
        lines.append(f"imagined {t['imagined_episodes']} episodes ({t.get('frames_per_episode', '?')} frames each) "
                     f"in {t['imagination_s']:.0f} s: "
                     f"{t['frames_per_s']:.0f} frames/s, {t['episodes_per_s']:.2f} episodes/s "
                     f"on {res['device']}")  # fmt: skip
    return "\n".join(lines)
