"""Policies acting inside the world model.

`BatchedImagination` runs B episodes in lockstep on one device: it starts from the recorded first frame
and proprio of real episodes and, at each step, turns every episode's action chunk into the next frame,
proprio and value. `ImaginationEnv` is the same thing for one episode behind the `Reality` interface, so
`rollout()` and any policy run unchanged in imagination. `imagine()` is the batched closed loop used by
`wmeval evaluate`: many episodes of many policies in parallel, each policy seeing only generated frames
and predicted proprio; a misbehaving policy loses its episode, reported by name, and the rest go on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from wmeval.data.store import EpisodeMeta, EpisodeStore
from wmeval.model.rollout import Imagination, begin
from wmeval.model.world_model import WorldModel
from wmeval.policies.base import Policy, PolicyError
from wmeval.policies.learned import LearnedPolicy, layout_mismatch
from wmeval.reality.base import Layout
from wmeval.rollout import ask_policy
from wmeval.types import Observation, Start, StepInfo
from wmeval.zoo import PolicySpec


class LayoutMismatch(ValueError):
    """A world model asked to judge policies or starts recorded with another layout."""


def check_layout(model_layout: dict, layout: Layout, model_name: str, what: str) -> None:
    """Refuse a world model trained on another suite, camera or action layout than `what` uses."""
    diff = layout_mismatch(model_layout, layout)
    if diff:
        raise LayoutMismatch(
            f"world model {model_name} was trained on layout {_brief(model_layout)}, but {what} has layout "
            f"{_brief(layout.to_json())} (differs in {diff}); train a world model on data with {what}'s layout"
        )


def _brief(d: dict) -> str:
    return (
        f"[suite={d.get('suite')}, views={list(d.get('views', []))}, image_size={d.get('image_size')}, "
        f"frame_skip={d.get('frame_skip')}, action_dim={d.get('action_dim')}, state_dim={d.get('state_dim')}]"
    )


@dataclass(frozen=True)
class StartFrame:
    """A recorded initial state: what the world model starts an imagined episode from."""

    start: Start
    images: np.ndarray  # uint8[V, H, W, 3]
    state: np.ndarray  # float32[S]
    # a start inside a recorded episode: the real frames before `images` (uint8[Tc, V, H, W, 3], `images` last),
    # their proprio float32[Tc, S] and the Tc - 1 chunks executed between them float32[Tc - 1, K, A]
    context: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None


def recorded_starts(
    store: EpisodeStore, task: str, seeds: Sequence[int], index: Sequence[EpisodeMeta] | None = None
) -> list[StartFrame]:
    """The first frame and proprio of a recorded episode of `task` for each seed. All policies of a task
    start from the same state for a given seed, so any recorded policy's episode will do. `index`: the
    store's index when the caller already has it."""
    want = set(seeds)
    by_seed = {}
    for m in store.index() if index is None else index:
        if m.task == task and m.seed in want and m.seed not in by_seed:
            by_seed[m.seed] = m
    missing = sorted(want - set(by_seed))
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
        raise ValueError(
            f"{store.root}: no recorded start for task {task!r}, seeds {shown}; record them first with "
            f"`wmeval collect --out {store.root} --tasks {task} --seed {min(missing)} ...` or pick other seeds"
        )
    return [start_frame(store, by_seed[s]) for s in seeds]


def start_frame(store: EpisodeStore, meta: EpisodeMeta) -> StartFrame:
    """The recorded start of one episode."""
    ep = store.load(meta.key, verify=False)
    return StartFrame(Start.from_json(ep.meta.start), np.array(ep.frames[0]), np.array(ep.proprio[0]))


def noise_seed(seed: int, start: Start) -> int:
    """The sampling-noise seed of one imagined episode. It depends on the start, not on the policy: every
    policy meets the same noise on the same start (common random numbers, so comparisons between policies
    carry less sampling noise), and an episode does not depend on the rest of its batch."""
    return int(hashlib.sha256(f"{seed}/{start.task}/{start.seed}".encode()).hexdigest()[:15], 16)


class BatchedImagination:
    """B imagined episodes stepped together; episodes end after the layout's horizon."""

    def __init__(self, model: WorldModel, layout: Layout, seed: int = 0) -> None:
        self.model, self.layout, self.seed = model, layout, seed
        self.device = model.latent_mean.device
        self.generators: list[torch.Generator] = []
        self.state: Imagination | None = None
        self.t = 0

    def reset(self, starts: Sequence[StartFrame]) -> tuple[list[Observation], np.ndarray]:
        """Begin one episode per start; returns the first observations and the value of the start frames."""
        lengths = {0 if s.context is None else len(s.context[0]) for s in starts}
        if len(lengths) > 1:
            raise ValueError(f"starts of one batch must have context of one length, got {sorted(lengths)}")
        self.generators = [torch.Generator().manual_seed(noise_seed(self.seed, s.start)) for s in starts]
        if lengths == {0}:
            frames = torch.from_numpy(np.stack([s.images for s in starts]))[:, None]
            proprio = torch.from_numpy(np.stack([s.state for s in starts]).astype(np.float32))[:, None]
            self.state = begin(self.model, frames, proprio)
        else:  # inside recorded episodes: the context's first frame is never an episode's first
            frames, proprio, actions = (torch.from_numpy(np.stack([s.context[i] for s in starts])) for i in range(3))
            self.state = begin(self.model, frames, proprio.float(), actions.float(), first_has_action=True)
        self.t = 0
        return [Observation(s.images, s.state.astype(np.float32)) for s in starts], self.state.value.cpu().numpy()

    def step(self, chunks: np.ndarray) -> tuple[list[Observation], bool, np.ndarray]:
        """Apply one chunk float32[B, frame_skip, A] per episode; returns the observations, whether the
        episodes are over, and the predicted value float[B] of the new frames."""
        if self.state is None:
            raise RuntimeError("call reset() before step()")
        pred = self.state.step(torch.as_tensor(chunks, dtype=torch.float32, device=self.device), self.generators)
        images = pred.frames[:, 0].cpu().numpy()
        states = pred.proprio[:, 0].float().cpu().numpy()
        self.t += 1
        obs = [Observation(images[i], states[i]) for i in range(len(images))]
        return obs, self.t >= self.layout.horizon, pred.value[:, 0].float().cpu().numpy()


class ImaginationEnv:
    """The `Reality` interface over a world model, one episode at a time. `start(seed)` looks the seed up
    among the recorded starts; `StepInfo.value` carries the predicted value (`success` is None: whether an
    imagined episode succeeded is the success rule's call, see `wmeval.eval.success`)."""

    def __init__(self, model: WorldModel, layout: Layout, task: str, starts: Sequence[StartFrame], seed: int = 0):
        self.layout, self.task = layout, task
        self.starts = {s.start.seed: s for s in starts}
        self.batch = BatchedImagination(model, layout, seed)

    def start(self, seed: int) -> Start:
        if seed not in self.starts:
            raise ValueError(f"no recorded start for {self.task!r} seed {seed}; have {sorted(self.starts)}")
        return self.starts[seed].start

    def reset(self, start: Start) -> Observation:
        self.start(start.seed)
        obs, _ = self.batch.reset([self.starts[start.seed]])
        return obs[0]

    def step(self, chunk: np.ndarray) -> tuple[Observation, bool, StepInfo]:
        obs, done, value = self.batch.step(np.asarray(chunk, np.float32)[None])
        return obs[0], done, StepInfo(success=None, value=float(value[0]))

    def close(self) -> None:
        pass


class Passthrough:
    """A do-nothing wrapper, so that an undegraded learned policy also has an `.inner` to prefetch into."""

    def __init__(self, inner: Policy) -> None:
        self.inner = inner

    def reset(self, seed: int) -> None:
        self.inner.reset(seed)

    def act(self, obs: Observation) -> np.ndarray:
        return self.inner.act(obs)


def batchable(policy) -> bool:
    """A policy object shared by every episode that can act for a whole batch at once (`act_batch(images,
    states)`): the project's learned policies and chunk-predicting LeRobot policies."""
    return hasattr(policy, "act_batch")


class Prefetched:
    """Stands in for a shared batchable policy inside one episode's policy (under any degradation wrappers):
    `imagine` computes the chunks of all episodes of a batch in one forward pass per network and hands each
    its chunk here, so the wrappers above see an ordinary `act`."""

    def __init__(self, net: Policy) -> None:
        self.net, self.chunk = net, None

    def reset(self, seed: int) -> None:
        self.net.reset(seed)

    def act(self, obs: Observation) -> np.ndarray:
        chunk, self.chunk = self.chunk, None
        return chunk if chunk is not None else self.net.act(obs)


def _prefetch_slot(policy: Policy, device: torch.device) -> Prefetched | None:
    """Replace the innermost batchable policy under a chain of wrappers (`.inner`) by a `Prefetched` one, and
    put a learned policy's network on the world model's device."""
    parent, node = None, policy
    while hasattr(node, "inner"):
        parent, node = node, node.inner
    if parent is None or not batchable(node):
        return None
    if isinstance(node, LearnedPolicy) and node.device != device:
        node.to(device)
    parent.inner = slot = Prefetched(node)
    return slot


def _prefetch(slots: list[Prefetched | None], obs: list[Observation], need: list[int]) -> None:
    """One batched forward per network for the episodes in `need` that run a batchable policy."""
    groups: dict[int, list[int]] = {}
    for i in need:
        if slots[i] is not None:
            groups.setdefault(id(slots[i].net), []).append(i)
    for idx in groups.values():
        net = slots[idx[0]].net
        chunks = net.act_batch(np.stack([obs[i].images for i in idx]), np.stack([obs[i].state for i in idx]))
        for i, c in zip(idx, chunks, strict=True):
            slots[i].chunk = c


@dataclass(frozen=True)
class Job:
    policy: PolicySpec
    task: str
    start: StartFrame


@dataclass
class ImaginedEpisode:
    policy: str
    task: str
    seed: int
    values: np.ndarray  # float32[steps + 1]: predicted value of each frame, the start frame included
    frames: np.ndarray | None = None  # uint8[T, V, H, W, 3] when kept
    error: str | None = None  # why the episode was stopped (a policy error), else None


def _live_through(policy: Policy, job: Job, L: Layout) -> tuple[np.ndarray, str | None]:
    """A policy taking over inside a recorded episode first acts on the real frames before it, as if it had
    been running (its actions there are not executed): a stateful policy (a latency queue, a frame history,
    an action chunk in progress) then takes over with its state. Returns the unfinished part of its last
    chunk, and its error, if any."""
    frames, proprio, _ = job.start.context
    who = f"policy {job.policy.name!r}, imagined episode {job.task}/seed {job.start.start.seed} (context)"
    pending = np.zeros((0, L.action_dim), np.float32)
    for k in range(len(frames) - 1):
        if not len(pending):
            try:
                pending = ask_policy(policy, Observation(frames[k], proprio[k]), L, who)
            except PolicyError as e:
                return pending, str(e)
        pending = pending[L.frame_skip :]
    return pending, None


def imagine(
    model: WorldModel, layout: Layout, jobs: Sequence[Job], batch_size: int = 64, seed: int = 0,
    keep_frames: set[tuple[str, str, int]] = frozenset(), progress: bool | tqdm = True, steps: int | None = None,
) -> list[ImaginedEpisode]:  # fmt: skip
    """Closed-loop episodes for `jobs`, `batch_size` at a time. Each episode gets its own policy instance
    (degradations keep per-episode state), reset with the start's seed as in reality, and its own noise
    (`noise_seed`), so an episode repeats whatever batch it runs in. `steps`: chunks to imagine (default the
    layout's horizon); fewer give each episode's first `steps` frames, as a longer run would."""
    out: list[ImaginedEpisode] = []
    L = layout
    steps = L.horizon if steps is None else min(steps, L.horizon)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    own_bar = not isinstance(progress, tqdm)  # a caller may pass its own bar to span several calls
    bar = tqdm(total=len(jobs) * steps, desc="imagine", unit="frame", disable=not progress) if own_bar else progress
    for b0 in range(0, len(jobs), batch_size):
        batch = jobs[b0 : b0 + batch_size]
        env = BatchedImagination(model, L, seed)
        policies: list[Policy | None] = []
        slots: list[Prefetched | None] = []
        errors: list[str | None] = []
        for j in batch:
            try:
                p = j.policy.build(j.task, L)
                if batchable(p):
                    p = Passthrough(p)  # gives the shared network an episode-local wrapper to prefetch into
                slots.append(_prefetch_slot(p, env.device))
                p.reset(j.start.start.seed)
                policies.append(p)
                errors.append(None)
            except Exception as e:  # a checkpoint that fails to load loses its episodes, not the run
                policies.append(None)
                slots.append(None)
                errors.append(f"policy {j.policy.name!r}: could not be built for {j.task!r}: {e}")
        obs, v0 = env.reset([j.start for j in batch])
        values = np.zeros((len(batch), steps + 1), np.float32)
        values[:, 0] = v0
        keep = [(j.policy.name, j.task, j.start.start.seed) in keep_frames for j in batch]
        frames = {i: [obs[i].images] for i in range(len(batch)) if keep[i]}
        pending = [np.zeros((0, L.action_dim), np.float32) for _ in batch]
        for i, j in enumerate(batch):
            if j.start.context is not None and errors[i] is None:
                pending[i], errors[i] = _live_through(policies[i], j, L)
        for t in range(steps):
            chunks = np.zeros((len(batch), L.frame_skip, L.action_dim), np.float32)
            need = [i for i in range(len(batch)) if errors[i] is None and not len(pending[i])]
            try:
                _prefetch(slots, obs, need)
            except Exception:  # noqa: BLE001  a failing batch falls back to per-episode calls, which name the culprit
                for i in need:
                    if slots[i] is not None:
                        slots[i].chunk = None
            for i, j in enumerate(batch):
                if errors[i] is not None:
                    continue  # a stopped episode idles with zero actions until the batch ends
                if not len(pending[i]):
                    who = f"policy {j.policy.name!r}, imagined episode {j.task}/seed {j.start.start.seed}"
                    try:
                        pending[i] = ask_policy(policies[i], obs[i], L, who)
                    except PolicyError as e:
                        errors[i] = str(e)
                        continue
                chunks[i], pending[i] = pending[i][: L.frame_skip], pending[i][L.frame_skip :]
            obs, done, v = env.step(chunks)
            values[:, t + 1] = v
            for i in frames:
                frames[i].append(obs[i].images)
            bar.update(len(batch))
            if done:
                break
        for i, j in enumerate(batch):
            out.append(ImaginedEpisode(j.policy.name, j.task, j.start.start.seed, values[i],
                                       np.stack(frames[i]) if i in frames else None, errors[i]))  # fmt: skip
    if own_bar:
        bar.close()
    return out
