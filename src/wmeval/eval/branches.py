"""Judging from logged states (`wmeval evaluate --starts logged`).

A verdict from the start imagines a whole episode: every frame after the first is generated, so the outcome
rests on the world model rendering 50 frames of contact right, and its errors compound. Here a judged policy
instead takes over recorded episodes of *other* policies (never a judged one's: those are the truth) at a
frame before that episode's success, with the real frames up to it as context (`--branch-context`), and acts
for a few imagined frames; before it takes over it acts on the context frames as if it had been running (their
actions are not executed), so a stateful policy (a latency queue, a frame history, a chunk in progress) brings
its state; its verdict is the mean over the same branch points for every policy (common random numbers).
This is off-policy evaluation from logged states with a short model rollout: it asks how well a
policy acts from the states a robot's logs hold, which ranks checkpoints without trusting long imagined
horizons; it is not the success rate from a reset, so read its rates as scores.

The success rule is fitted on the same kind of values: the world model's validation episodes, each branched
at one such frame and replayed with its own recorded actions, labelled with the episode's outcome.
"""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Collection, Sequence

import numpy as np
import torch
from tqdm import tqdm

from wmeval.data.store import Episode, EpisodeMeta, EpisodeStore
from wmeval.eval.imagination import StartFrame, noise_seed
from wmeval.eval.success import step_values
from wmeval.model.rollout import begin
from wmeval.model.world_model import WorldModel
from wmeval.types import Start

STARTS = ("reset", "logged")
BRANCH_SEED0 = 10_000_000  # branch ids: start seeds no recorded episode uses


def branch_range(ep: Episode, frames: int, context: int) -> range:
    """Frames a branch may take over at: the last context frame t with real frames t - context + 1 >= 1 (so
    the context's first frame is never an episode's first, which has no action before it), before the
    episode's first success, and with `frames` recorded chunks after it (a replay needs them)."""
    hit = np.flatnonzero(ep.success)
    end = min(int(hit[0]) if len(hit) else len(ep.frames), len(ep.frames) - frames)
    return range(context, end)


def branch_start(ep: Episode, t: int, ident: int, context: int) -> StartFrame:
    """The state at frame t of a recorded episode with its `context` real frames up to t (t last) and the
    context - 1 chunks executed between them, as a start with seed `ident`."""
    sl = slice(t - context + 1, t + 1)
    ctx = (np.array(ep.frames[sl]), np.array(ep.proprio[sl], np.float32), np.array(ep.actions[t - context + 1 : t]))
    return StartFrame(Start(ep.meta.suite, ep.meta.task, ident), ctx[0][-1], ctx[1][-1], ctx)


def _rng(*parts) -> np.random.Generator:
    return np.random.default_rng(int(hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[:15], 16))


def logged_starts(store: EpisodeStore, index: Sequence[EpisodeMeta], task: str, judged: Collection[str], n: int,
                  frames: int, context: int, seed: int) -> list[StartFrame]:  # fmt: skip
    """`n` branch points of `task` in recorded episodes of policies not in (or matching a pattern of) `judged`,
    drawn with replacement: episode uniformly, then frame uniformly in its `branch_range`. Repeatable from
    `seed`; the i-th point's start seed is BRANCH_SEED0 + i."""
    metas = sorted((m for m in index if m.task == task and not any(fnmatch.fnmatch(m.policy, p) for p in judged)),
                   key=lambda m: m.key)  # fmt: skip
    if not metas:
        raise ValueError(
            f"{store.root}: no recorded episode of {task!r} by a policy that is not judged; --starts logged "
            "branches into other policies' episodes: record some (`wmeval collect --tasks "
            f"{task} ...`), or use --starts reset"
        )
    rng, out, tries = _rng("logged", task, seed), [], 0
    while len(out) < n:
        tries += 1
        if tries > 50 * n:
            raise ValueError(
                f"{store.root}: too few recorded episodes of {task!r} have {context} frames before their first "
                f"success and {frames} after; record longer episodes, shorten --branch-context or --branch-frames, "
                "or use --starts reset"
            )
        m = metas[rng.integers(len(metas))]
        ep = store.load(m.key, verify=False)
        r = branch_range(ep, frames, context)
        if len(r):
            out.append(branch_start(ep, int(r[rng.integers(len(r))]), BRANCH_SEED0 + len(out), context))
    return out


def branch_replay_values(model: WorldModel, store: EpisodeStore, metas: Sequence[EpisodeMeta], frames: int,
                         context: int, batch_size: int = 64, seed: int = 0,
                         progress: bool = True) -> np.ndarray:  # fmt: skip
    """Each episode branched at one frame of its `branch_range` (chosen from its key) and replayed open loop
    with its recorded actions for `frames` chunks; the readout float32[N, frames + 1] (0: the branch frame).
    An episode without such a frame (success within its first frames) branches at its earliest possible one."""
    out = np.zeros((len(metas), frames + 1), np.float32)
    bar = tqdm(total=len(metas), desc="replay", unit="episode", disable=not progress)
    for b0 in range(0, len(metas), batch_size):
        idx = range(b0, min(b0 + batch_size, len(metas)))
        eps = [store.load(metas[i].key, verify=False) for i in idx]
        picks = []
        for i, ep in zip(idx, eps, strict=True):
            r = branch_range(ep, frames, context)
            t = int(r[_rng("branch", metas[i].key).integers(len(r))]) if len(r) else context
            if t + frames > len(ep.frames):
                raise ValueError(f"{metas[i].key}: {len(ep.frames)} frames, too short to branch and replay "
                                 f"{frames} chunks after {context} context frames")  # fmt: skip
            picks.append(t)
        starts = [branch_start(ep, t, 0, context) for ep, t in zip(eps, picks, strict=True)]
        ctx = [torch.from_numpy(np.stack([s.context[k] for s in starts])) for k in range(3)]
        im = begin(model, ctx[0], ctx[1].float(), ctx[2].float(), first_has_action=True)
        g = [torch.Generator().manual_seed(noise_seed(seed, Start.from_json(metas[i].start))) for i in idx]
        chunks = [np.array(ep.actions[t : t + frames]) for ep, t in zip(eps, picks, strict=True)]
        out[b0 : b0 + len(eps)] = step_values(im, torch.from_numpy(np.stack(chunks)), g)
        bar.update(len(eps))
    bar.close()
    return out
