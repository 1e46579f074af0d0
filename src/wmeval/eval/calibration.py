"""The success rule's calibration: which episodes it is fitted on (the world model's validation episodes,
never its training ones) and how their values are obtained (open-loop replay or closed loop); or the
calibration readouts a packed model ships with (`readouts` makes them, `shipped_readouts` decides whether an
evaluation can use them: wmeval.models)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from wmeval.data.store import EpisodeMeta, EpisodeStore
from wmeval.eval.branches import branch_replay_values
from wmeval.eval.imagination import Job, imagine, start_frame
from wmeval.eval.rates import RateMap
from wmeval.eval.success import SuccessRule, fit_rule, outcome_metrics, replay_values
from wmeval.zoo import load_zoo

if TYPE_CHECKING:
    from wmeval.eval.evaluate import EvalConfig

CALIBRATIONS = ("auto", "closed-loop", "replay", "shipped")


def spread(items: list, n: int) -> list:
    """n items evenly spaced over a list (all of them when n >= len)."""
    if n >= len(items):
        return list(items)
    return [items[int(i * len(items) / n)] for i in range(n)]


MIN_LEARNED = 48  # learned-policy calibration episodes (with >= MIN_LEARNED // 6 of each outcome) to use them alone
# `auto` fits the rule in closed loop on at least this many validation episodes of learned policies the zoo can
# run, at least MIN_CLOSED_LOOP // 6 of each outcome; on open-loop replays otherwise. Closed-loop labels are
# noisier than replay ones (the imagined episode tells the real outcome less well), so it asks for as many as
# the learned-only pool does (measured: the demo's one model, 34 such episodes, ranked its drawer checkpoints
# better fitted in closed loop but lost its pooled calibration, pooled Pearson 0.65 -> -0.18)
MIN_CLOSED_LOOP = MIN_LEARNED
# samples per calibration episode when the rule is fitted in closed loop (and `calibration_samples` is not set):
# measured (docs/RESULTS.md, 2026-11-28, six models): one imagined sample per episode fits a noisy rule; four
# raised the mean within-task Spearman 0.65 -> 0.76 and the six-model ensemble's 0.86 -> 0.90
CLOSED_LOOP_SAMPLES = 4


def samples_for(cfg: EvalConfig, method: str) -> int:
    """Replays or imagined episodes per calibration episode: `cfg.calibration_samples`, or by default
    CLOSED_LOOP_SAMPLES in closed loop and one on replays (open loop from real actions varies less)."""
    return cfg.calibration_samples or (CLOSED_LOOP_SAMPLES if method == "closed-loop" else 1)


def cache_key(cfg: EvalConfig) -> dict:
    """What a cached calibration was computed for (run.json guards the settings themselves): it names what
    the defaults mean, so runs calibrated under an earlier default recalibrate on resume."""
    from wmeval.models import READOUTS

    key = {"rules": ["imagined", "replay"], "samples": cfg.calibration_samples or f"closed loop {CLOSED_LOOP_SAMPLES}"}
    shipped = Path(cfg.model) / f"{READOUTS}.json"
    if cfg.calibration in ("auto", "shipped") and shipped.is_file():  # a model packed with readouts since
        r = json.loads(shipped.read_text())
        key["readouts"] = {**(r.get("how") or {}), "policies": len(r.get("policies", []))}  # named since the rate map
    return key


def unseen_episodes(meta: dict, index: list[EpisodeMeta], judged: set[str]) -> list[EpisodeMeta]:
    """Episodes of `index` the world model's weights never saw and the evaluation does not judge, with a known
    outcome. On its own training store: its validation episodes, of the policies it was trained on (never
    the judged ones when they were held out). A packed model (wmeval.models) knows the content digests of its
    training episodes, so on another store (a shipped model judging the user's policies) every episode whose
    digest is not among them counts, of any policy but the judged ones."""
    digests = meta["data"].get("train_digests")
    if digests is not None:  # a packed model keeps their first DIGEST_CHARS hex digits (older ones: all)
        seen, n = set(digests), len(digests[0]) if digests else 64
        return [m for m in index if m.digest[:n] not in seen and m.policy not in judged and m.outcome is not None]
    val, trained = set(meta["data"]["val_keys"]), set(meta["data"]["policies"])
    return [m for m in index if m.policy in trained and m.key in val and m.outcome is not None]


def calibration_episodes(meta: dict, index: list[EpisodeMeta], tasks: tuple[str, ...], n: int,
                         judged: set[str] = frozenset()) -> list[EpisodeMeta]:  # fmt: skip
    """Episodes to fit the success rule on: `unseen_episodes` only (training episodes would make the rule, and
    the calibration it reports, optimistic). Learned policies' episodes alone when there are enough, since
    they fail the way the judged (learned) policies do."""
    pool = sorted((m for m in unseen_episodes(meta, index, judged) if m.task in tasks), key=lambda m: m.key)
    learned = [m for m in pool if m.policy_spec.get("base") == "checkpoint"]
    wins = sum(m.outcome for m in learned)
    if len(learned) >= MIN_LEARNED and min(wins, len(learned) - wins) >= MIN_LEARNED // 6:
        pool = learned
    chosen = spread(pool, n)
    if len({m.outcome for m in chosen}) < 2:
        raise ValueError(
            f"the episodes on tasks {list(tasks)} that the world model never trained on hold {len(chosen)} episodes "
            f"with {sum(m.outcome for m in chosen)} successes: calibration needs unseen episodes of both outcomes; "
            "retrain with a larger --val-fraction, or evaluate with the store it was trained on (--store)"
        )
    return chosen


def episode_values(model, store: EpisodeStore, metas: list[EpisodeMeta], cfg: EvalConfig, progress: bool,
                   sample: int = 0):  # fmt: skip
    """The readout of recorded episodes replayed open loop with their own actions, as the evaluation's judged
    episodes begin: from the recorded start to the end, or (`--starts logged`) from one branch point on.
    Sample k draws its noise from seed `noise_seed + k`."""
    if cfg.starts == "logged":
        return branch_replay_values(model, store, metas, cfg.branch_frames, cfg.branch_context, cfg.batch_size,
                                    cfg.noise_seed + sample, progress)  # fmt: skip
    return replay_values(model, store, metas, cfg.batch_size, cfg.noise_seed + sample, progress)


def closed_loop_method(cfg: EvalConfig, chosen: list[EpisodeMeta], learned: list[EpisodeMeta]) -> tuple[str, str]:
    """Which calibration `cfg.calibration` resolves to for these calibration episodes (`learned`: those of
    learned policies the zoo can run), and why."""
    wins = sum(m.outcome for m in learned)
    enough = len(learned) >= MIN_CLOSED_LOOP and min(wins, len(learned) - wins) >= MIN_CLOSED_LOOP // 6
    if cfg.calibration == "replay":
        return "replay", "requested"
    if cfg.calibration == "closed-loop":
        if len({m.outcome for m in learned}) < 2:
            raise ValueError(
                f"closed-loop calibration needs validation episodes of both outcomes from learned policies of "
                f"{cfg.zoo} that the world model was trained on; found {len(learned)}: add such policies' "
                "rollouts to the training data, or use --calibration replay"
            )
        return "closed-loop", "requested"
    if cfg.starts == "logged":
        return "replay", "logged starts are calibrated on replays of branched validation episodes"
    if not enough:
        return "replay", (f"{len(learned)} of the {len(chosen)} validation episodes are of learned policies the zoo "
                          f"runs ({wins} successes): closed loop needs >= {MIN_CLOSED_LOOP}, >= "
                          f"{MIN_CLOSED_LOOP // 6} of each outcome")  # fmt: skip
    return "closed-loop", f"{len(learned)} validation episodes of learned policies the zoo runs ({wins} successes)"


@dataclass(frozen=True)
class Calibration:
    rule: SuccessRule  # reads the judged policies' imagined episodes
    replay_rule: SuccessRule  # reads open-loop replays (the same rule when calibrated on replays)
    report: dict  # how it was fitted, and its agreement on the rows it was fitted on
    # the rows `rule` was fitted on, for offline analyses of other rules: per row the calibration episode's
    # key, the sample, the real outcome and the readout of every frame
    rows: dict
    replay_rows: dict | None = None  # the same of `replay_rule` (None: fitted on readouts, wmeval.models)


def shipped_readouts(cfg: EvalConfig, tasks: tuple[str, ...], frames: int) -> tuple[dict | None, str]:
    """The model's calibration readouts (wmeval.models.write_readouts) on `tasks`, when this evaluation can fit
    its rules on them (else None), and why not. They can when they hold every task with both outcomes, read
    episodes of the judged ones' length with the statistics of today's rules, and the evaluation reads
    episodes as they were read (from the recorded start, by a `combined` or `auto` rule of the value head)."""
    from wmeval.eval.success import candidates
    from wmeval.models import read_readouts

    r = read_readouts(cfg.model) if cfg.calibration in ("auto", "shipped") else None
    if r is None and cfg.calibration == "shipped":
        raise ValueError(f"--calibration shipped: {cfg.model} ships no calibration readouts (a packed model made "
                         "with `readout_episodes`, wmeval.models); calibrate on the store's episodes "
                         "(--calibration auto)")  # fmt: skip
    if r is None:
        return None, ""
    checks = [
        (r["frames"] != frames, f"they read episodes of {r['frames']} frames, these have {frames}"),
        (r["parts"] != [c.to_json() for c in candidates(r["frames"], "auto")],
         "they were read by other statistics than this version's rules"),
        (cfg.rule not in ("combined", "auto"), f"--rule {cfg.rule} is not fitted on statistics (combined or auto are)"),
        (cfg.starts != "reset", "--starts logged reads branched episodes"),
        (bool(cfg.judge), "a judge reads the episodes, not the value head"),
    ]  # fmt: skip
    for t in tasks:
        i = r["tasks"].index(t) if t in r["tasks"] else -1
        for kind in ("imagined", "replay"):
            outcomes = {y for ti, y in zip(r[kind]["task"], r[kind]["outcome"], strict=True) if ti == i}
            checks.append((len(outcomes) < 2,
                           f"they hold {'no' if i < 0 else 'one outcome of the'} {kind} episodes of task {t!r}"))
    why = next((text for failed, text in checks if failed), "")
    if why and cfg.calibration == "shipped":
        raise ValueError(f"--calibration shipped: the calibration readouts of {cfg.model} do not fit this "
                         f"evaluation ({why}); calibrate on the store's episodes (--calibration auto)")  # fmt: skip
    return (None, why) if why else (r, "")


def from_readouts(r: dict, tasks: tuple[str, ...], cfg: EvalConfig) -> Calibration:
    """The success rules fitted on the model's calibration readouts of `tasks` (`shipped_readouts`)."""
    from wmeval.eval.success import SuccessRule, fit_statistics, statistics_probability

    parts = [SuccessRule(**p) for p in r["parts"]]
    keep = {r["tasks"].index(t) for t in tasks}
    fitted = {}
    for kind in ("imagined", "replay"):
        rows = r[kind]
        sel = np.array([t in keep for t in rows["task"]])
        z, y = rows["z"][sel], np.array(rows["outcome"])[sel].astype(bool)
        fitted[kind] = (fit_statistics(z, y, parts, cfg.rule), z, y, np.array(rows["sample"])[sel],
                        [r["tasks"][t] for t, s in zip(rows["task"], sel, strict=True) if s])  # fmt: skip
    rule, z, y, samples, row_tasks = fitted["imagined"]
    policy = r["imagined"].get("policy")  # readouts older than the rate map name no policies
    how = r.get("how") or {}
    k = len(set(samples.tolist()))
    episodes = len(y) // k  # every readout episode is a learned policy's
    report = {"method": "shipped", "requested": cfg.calibration,
              "reason": f"the model's calibration readouts: {how.get('episodes', '?')} episodes of its "
                        f"training policies that it never saw, imagined closed loop by it "
                        f"({how.get('samples', '?')} samples each)",
              **outcome_metrics(statistics_probability(rule, parts, z), y), "episodes": episodes, "samples": k,
              "validation_episodes": 0, "training_episodes": 0, "learned_policy_episodes": episodes,
              "readouts": how}  # fmt: skip
    rows = {"task": row_tasks, "sample": samples.tolist(), "outcome": y.tolist(),
            "statistics": [[round(float(v), 4) for v in row] for row in z]}  # fmt: skip
    if policy is not None:
        sel = [t in keep for t in r["imagined"]["task"]]
        rows["policy"] = [r["policies"][q] for q, s in zip(policy, sel, strict=True) if s]
        rows["parts"] = r["parts"]  # what the statistics are: an `auto` rule reads one of them
    return Calibration(rule, fitted["replay"][0], report, rows)


def rate_map(value: dict, index: list[EpisodeMeta]) -> tuple[RateMap, dict]:
    """The rate map (wmeval.eval.rates) of a calibration (`calibrate`'s cached value: its rule, report and
    rows), fitted on the rows its imagined-episode rule was fitted on when those are closed-loop imagination
    of policies (a calibration on replays reads real actions, not the policies acting); the identity else,
    and per task its line or why not."""
    from wmeval.eval.rates import fit_rate_map
    from wmeval.eval.success import statistics_probability

    method, rows = value["calibration"]["method"], value["rows"]
    if method not in ("closed-loop", "shipped"):
        return RateMap(), {"why": f"the rule was fitted on {method} rows, not on imagined episodes of policies"}
    rule = SuccessRule(**value["rule"])
    if "statistics" in rows:  # fitted on readouts (from_readouts)
        if "policy" not in rows:
            return RateMap(), {"why": "the model's calibration readouts name no policies (packed before the rate map)"}
        parts = [SuccessRule(**q) for q in rows["parts"]] if "parts" in rows else rule.components
        p = statistics_probability(rule, parts, np.array(rows["statistics"]))
        policy, task = rows["policy"], rows["task"]
    else:
        by_key = {m.key: m for m in index}
        p, policy = rule.probability(np.array(rows["values"])), [by_key[k].policy for k in rows["key"]]
        task = [by_key[k].task for k in rows["key"]]
    rates, tasks = fit_rate_map(p, np.array(rows["outcome"]), policy, task, rows["sample"])
    return rates, {"tasks": tasks}


def readouts(model, meta: dict, store: EpisodeStore, index: list[EpisodeMeta], tasks: tuple[str, ...],
             cfg: EvalConfig, progress: bool) -> dict:  # fmt: skip
    """A model's calibration readouts (wmeval.models.write_readouts) on its training store's episodes that it
    never saw, of learned policies (of every policy in `cfg.zoo`: none is judged), imagined closed loop and
    replayed open loop (one sample) as `calibrate` does: what an evaluation that ships with the model fits its
    rules on."""
    from wmeval.eval.success import statistics

    c = calibrate(model, meta, store, index, tasks, cfg, progress, judged=set())
    if c.report["method"] != "closed-loop":
        raise ValueError(f"calibration readouts are imagined closed loop, but {c.report['reason']}")
    parts, z = statistics(np.array(c.rows["values"]))
    tasks_of, policy_of = {m.key: m.task for m in index}, {m.key: m.policy for m in index}
    policies = sorted({policy_of[k] for k in c.rows["key"] + c.replay_rows["key"]})
    at = {q: i for i, q in enumerate(policies)}
    out = {"parts": [p.to_json() for p in parts], "frames": len(c.rows["values"][0]), "tasks": list(tasks),
           "policies": policies,
           "how": {"store_fingerprint": store.fingerprint(), "episodes": c.report["episodes"],
                   "samples": c.report["samples"], "noise_seed": cfg.noise_seed,
                   "successes": int(sum(c.rows["outcome"]) // c.report["samples"])}}  # fmt: skip
    # replays: the first sample only (open loop from the real actions varies less; one is the default on replays)
    first = [i for i, s in enumerate(c.replay_rows["sample"]) if s == 0]
    replay = {k: [c.replay_rows[k][i] for i in first] for k in ("key", "outcome", "sample", "values")}
    for kind, rows, zz in (("imagined", c.rows, z), ("replay", replay, statistics(np.array(replay["values"]))[1])):
        out[kind] = {"z": zz, "task": [tasks.index(tasks_of[k]) for k in rows["key"]],
                     "policy": [at[policy_of[k]] for k in rows["key"]],
                     "outcome": [int(y) for y in rows["outcome"]], "sample": rows["sample"]}  # fmt: skip
    return out


def calibrate(model, meta: dict, store: EpisodeStore, index: list[EpisodeMeta], tasks: tuple[str, ...],
              cfg: EvalConfig, progress: bool, judged: set[str] | None = None) -> Calibration:  # fmt: skip
    """Fit the success rule on `calibration_episodes`; report its agreement there. Each rule is fitted on
    values obtained the way it is applied.

    `replay`: their logged actions replayed open loop. `closed-loop`: their policies (learned ones, named
    in the zoo) act in imagination from the episode's recorded start, as the judged policies will, and
    the real episode's outcome is the label: the rule is then fitted where it is applied, so drift that
    only closed loop shows (a policy reacting to blurry imagined frames) is calibrated away. Each episode is
    replayed and imagined `samples_for` times (sample k with noise seed `noise_seed + k`), every sample a
    row of the fit labelled by the real outcome, as each judged sample is read alone. `auto` (the
    default): closed loop where there are enough such episodes of both outcomes, replay otherwise.
    Measured (docs/RESULTS.md, 2026-11-28): fitted in closed loop, each world model's verdicts rank the
    judged policies a little better on average, and the seeds' errors fall on different tasks, so their
    ensemble ranks far better than the replay-fitted one's."""
    r, why = shipped_readouts(cfg, tasks, store.layout.horizon + 1)
    if r is not None:
        return from_readouts(r, tasks, cfg)
    zoo = load_zoo(cfg.zoo)
    if judged is None:
        judged = {p.name for p in zoo.select(list(cfg.policies) if cfg.policies else None).policies}
    chosen = calibration_episodes(meta, index, tasks, cfg.calibration_episodes, judged)
    learned = []
    if cfg.calibration != "replay":
        names = {p.name for p in zoo.policies if p.base == "checkpoint"}
        learned = [m for m in chosen if m.policy in names]
    method, reason = closed_loop_method(cfg, chosen, learned)
    k = samples_for(cfg, method)
    replay_vals = np.concatenate([episode_values(model, store, chosen, cfg, progress, j) for j in range(k)])
    replay_rule = fit_rule(replay_vals, np.array([m.outcome for m in chosen] * k), cfg.rule)
    replay_rows = {"key": [m.key for m in chosen] * k, "sample": [j for j in range(k) for _ in chosen],
                   "outcome": [bool(m.outcome) for m in chosen] * k, "values": replay_vals.tolist()}  # fmt: skip
    if method == "closed-loop":
        jobs = [Job(zoo.policy(m.policy), m.task, start_frame(store, m)) for m in learned]
        eps = [e for j in range(k) for e in imagine(model, store.layout, jobs, cfg.batch_size, cfg.noise_seed + j,
                                                     progress=progress)]  # fmt: skip
        ok = [i for i, e in enumerate(eps) if e.error is None]  # sample i // n of episode i % n
        n = len(learned)
        values, outcomes = np.stack([eps[i].values for i in ok]), np.array([learned[i % n].outcome for i in ok])
        keys, samples = [learned[i % n].key for i in ok], [i // n for i in ok]
        chosen = [learned[i] for i in sorted({i % n for i in ok})]
        rule = fit_rule(values, outcomes, cfg.rule)
    else:
        values, outcomes, rule = replay_vals, np.array([m.outcome for m in chosen] * k), replay_rule
        keys, samples = [m.key for m in chosen] * k, [j for j in range(k) for _ in chosen]
    if why:
        reason = f"{reason}; the model's calibration readouts do not fit ({why})"
    report = {"method": method, "requested": cfg.calibration, "reason": reason,
              **outcome_metrics(rule.probability(values), outcomes),  # over every sample
              "episodes": len(chosen), "samples": k, "validation_episodes": len(chosen), "training_episodes": 0,
              "learned_policy_episodes": sum(m.policy_spec.get("base") == "checkpoint" for m in chosen)}  # fmt: skip
    rows = {"key": keys, "sample": samples, "outcome": [bool(y) for y in outcomes],
            "values": [[round(float(v), 5) for v in row] for row in values]}  # fmt: skip
    return Calibration(rule, replay_rule, report, rows, replay_rows)
