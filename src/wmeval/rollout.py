"""Run one policy for one episode in any environment with the Reality interface."""

from __future__ import annotations

import numpy as np

from wmeval.data.store import Episode, EpisodeMeta, episode_key
from wmeval.policies.base import Policy, PolicyError
from wmeval.reality.base import Layout, Reality
from wmeval.types import Observation, Start


def ask_policy(policy: Policy, obs: Observation, layout: Layout, who: str) -> np.ndarray:
    """Query the policy and check its chunk: float[K, A], K a positive multiple of frame_skip, finite."""
    try:
        chunk = np.asarray(policy.act(obs), dtype=np.float32)
    except Exception as e:
        raise PolicyError(f"{who}: act() raised {type(e).__name__}: {e}") from e
    k, a = layout.frame_skip, layout.action_dim
    if chunk.ndim != 2 or chunk.shape[1] != a or chunk.shape[0] == 0 or chunk.shape[0] % k:
        raise PolicyError(f"{who}: act() returned shape {chunk.shape}, expected (K, {a}) with K a multiple of {k}")
    if not np.all(np.isfinite(chunk)):
        raise PolicyError(f"{who}: act() returned NaN or inf actions; the episode was stopped")
    return np.clip(chunk, -1.0, 1.0)  # record what the robot executes


def rollout(env: Reality, policy: Policy, start: Start, policy_name: str, policy_spec: dict) -> Episode:
    """One episode from `start`. The policy's chunks are executed open loop, `frame_skip` actions per
    frame, and it is asked again when its chunk runs out."""
    L = env.layout
    who = f"policy {policy_name!r}, episode {start.task}/seed {start.seed}"
    obs = env.reset(start)
    policy.reset(start.seed)
    frames, states, success, chunks = [obs.images], [obs.state], [False], []
    pending = np.zeros((0, L.action_dim), np.float32)
    for _ in range(L.horizon):
        if not len(pending):
            pending = ask_policy(policy, obs, L, who)
        chunk, pending = pending[: L.frame_skip], pending[L.frame_skip :]
        obs, done, info = env.step(chunk)
        chunks.append(chunk)
        frames.append(obs.images)
        states.append(obs.state)
        success.append(bool(info.success))
        if done:
            break
    if not len(pending):  # the chunk the policy chose at the last frame, recorded but never executed
        pending = ask_policy(policy, obs, L, who)
    chunks.append(pending[: L.frame_skip])
    success_arr = np.array(success, dtype=np.bool_)
    meta = EpisodeMeta(
        key=episode_key(start.task, policy_name, start.seed),
        suite=L.suite,
        task=start.task,
        policy=policy_name,
        policy_spec=policy_spec,
        seed=start.seed,
        start=start.to_json(),
        outcome=bool(success_arr.any()),
        length=len(frames),
        fps=L.fps,
        frame_skip=L.frame_skip,
    )
    return Episode(
        frames=np.stack(frames),  # (T, V, H, W, 3)
        actions=np.stack(chunks).astype(np.float32),  # (T, K, A)
        proprio=np.stack(states).astype(np.float32),  # (T, S)
        success=success_arr,
        meta=meta,
    )
