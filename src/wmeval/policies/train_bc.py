"""`wmeval policy train`: behaviour cloning of a pixel policy on episodes from a store.

One policy per task (documented choice: the zoo judges per-task checkpoints, as the 1X report does, and a
per-task policy trains in minutes on a CPU). Demonstrations are the successful episodes of one source
policy (default: the scripted expert), taken in seed order, so "40 episodes" always means the same 40;
validation episodes are the next ones, never trained on.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from wmeval.checkpoint import git_sha, load_optimizer, load_weights, read_config, save_checkpoint
from wmeval.data.store import EpisodeStore, software_versions
from wmeval.policies.bc import BCModelConfig, BCPolicyNet, random_shift
from wmeval.policies.learned import KIND
from wmeval.train.common import latest_step_dir, resolve_device


@dataclass(frozen=True)
class BCTrainConfig:
    store: str
    task: str
    out: str
    source: str = "expert"  # whose episodes are the demonstrations
    episodes: int = 40  # training demonstrations
    val_episodes: int = 5
    successful_only: bool = True  # clone successes only (the usual choice for demonstrations)
    encoder: str = "cnn"
    use_proprio: bool = True
    chunk_frames: int = 1  # predicted chunk = chunk_frames * frame_skip actions
    steps: int = 2000
    batch_size: int = 64
    lr: float = 3e-4
    weight_decay: float = 1e-4
    save_every: int = 500
    save_at: tuple[int, ...] = ()  # extra steps to checkpoint at (besides every save_every and the last)
    eval_every: int = 250
    augment_pad: int = 4  # random-shift augmentation in pixels; 0 disables
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        for name in ("episodes", "steps", "batch_size", "save_every", "eval_every", "chunk_frames"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.val_episodes < 0 or self.augment_pad < 0 or self.lr <= 0:
            raise ValueError("val_episodes and augment_pad must be >= 0 and lr > 0")


@dataclass
class Demos:
    """Demonstrations in memory: frames (N, T, V, H, W, 3) u8, states (N, T, S), targets (N, T, K, A)."""

    frames: torch.Tensor
    states: torch.Tensor
    targets: torch.Tensor
    keys: list[str]

    def __len__(self) -> int:
        return self.frames.shape[0] * self.frames.shape[1]

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        T = self.frames.shape[1]
        e, t = idx // T, idx % T
        return self.frames[e, t], self.states[e, t], self.targets[e, t]


def chunk_targets(actions_TKA: np.ndarray, m: int) -> np.ndarray:
    """targets[t] = actions[t], ..., actions[t+m-1] concatenated (K*m, A); past the end, the last chunk."""
    T = len(actions_TKA)
    idx = np.minimum(np.arange(T)[:, None] + np.arange(m)[None], T - 1)  # (T, m)
    return actions_TKA[idx].reshape(T, m * actions_TKA.shape[1], actions_TKA.shape[2])


def select_demos(store: EpisodeStore, cfg: BCTrainConfig) -> tuple[list[str], list[str]]:
    metas = [
        m
        for m in store.index()
        if m.task == cfg.task and m.policy == cfg.source and (m.outcome or not cfg.successful_only)
    ]
    metas.sort(key=lambda m: m.seed)
    need = cfg.episodes + cfg.val_episodes
    if len(metas) < need:
        raise ValueError(
            f"{store.root} has {len(metas)} {'successful ' if cfg.successful_only else ''}{cfg.source!r} episodes "
            f"of task {cfg.task!r}; training "
            f"needs {cfg.episodes} + {cfg.val_episodes} for validation. Collect more, e.g. `wmeval collect --out "
            f"{store.root} --tasks {cfg.task} --policies {cfg.source} --episodes {need + need // 4}`"
        )
    keys = [m.key for m in metas]
    return keys[: cfg.episodes], keys[cfg.episodes : need]


def load_demos(store: EpisodeStore, keys: list[str], chunk_frames: int) -> Demos | None:
    if not keys:
        return None
    eps = [store.load(k) for k in keys]
    return Demos(
        frames=torch.from_numpy(np.stack([np.asarray(e.frames) for e in eps])),
        states=torch.from_numpy(np.stack([np.asarray(e.proprio) for e in eps])),
        targets=torch.from_numpy(np.stack([chunk_targets(np.asarray(e.actions), chunk_frames) for e in eps])),
        keys=keys,
    )


def demos_fingerprint(store: EpisodeStore, keys: list[str]) -> str:
    h = hashlib.sha256()
    for k in keys:
        h.update(f"{k}={store.meta(k).digest};".encode())
    return h.hexdigest()[:16]


def bc_loss(net: BCPolicyNet, frames, states, targets, mean, std) -> torch.Tensor:
    pred = net(frames, (states - mean) / std if net.cfg.use_proprio else None)
    return F.mse_loss(pred, targets)


@torch.no_grad()
def evaluate(net: BCPolicyNet, demos: Demos, mean, std, device, batch: int = 256) -> float:
    net.eval()
    total, n = 0.0, len(demos)
    for i in range(0, n, batch):
        f, s, a = (x.to(device) for x in demos.batch(torch.arange(i, min(i + batch, n))))
        total += bc_loss(net, f, s, a, mean, std).item() * len(f)
    net.train()
    return total / max(n, 1)


def train_bc(cfg: BCTrainConfig, resume: bool = False, progress: bool = True) -> Path:
    """Train; save `out/step_XXXXXX/` every `save_every` steps and at the end; return the last checkpoint.
    With `resume`, continue from the newest checkpoint in `out` (same config), exactly as if uninterrupted."""
    out = Path(cfg.out)
    store = EpisodeStore(cfg.store)
    L = store.layout
    device = resolve_device(cfg.device)
    train_keys, val_keys = select_demos(store, cfg)
    train, val = load_demos(store, train_keys, cfg.chunk_frames), load_demos(store, val_keys, cfg.chunk_frames)
    mean = train.states.flatten(0, 1).mean(0)
    std = train.states.flatten(0, 1).std(0).clamp_min(1e-3)

    model_cfg = BCModelConfig(
        encoder=cfg.encoder, use_proprio=cfg.use_proprio, views=len(L.views), image_size=L.image_size,
        state_dim=L.state_dim, action_dim=L.action_dim, chunk_len=cfg.chunk_frames * L.frame_skip,
    )  # fmt: skip
    torch.manual_seed(cfg.seed)
    net = BCPolicyNet(model_cfg).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    start = 0
    prev = latest_step_dir(out) if resume else None
    if prev is not None:
        saved = read_config(prev)
        if saved["train"] != json.loads(json.dumps(asdict(replace(cfg, device=saved["train"]["device"])))):
            raise ValueError(f"{prev} was trained with another config; use a new --out or the same options")
        net.load_state_dict(load_weights(prev))
        load_optimizer(opt, {k: v.to(device) for k, v in load_weights(prev, "optim.safetensors").items()},
                       saved["optimizer"])  # fmt: skip
        start = saved["step"]
    elif latest_step_dir(out) is not None:
        raise ValueError(f"{out} already holds checkpoints; pass --resume to continue, or choose a new --out")

    meta = {
        "kind": KIND, "task": cfg.task, "model": model_cfg.to_json(), "layout": L.to_json(),
        "norm": {"state_mean": mean.tolist(), "state_std": std.tolist()}, "train": asdict(cfg),
        "data": {"store": str(store.root), "fingerprint": demos_fingerprint(store, train_keys),
                 "train_episodes": len(train_keys), "val_episodes": len(val_keys), "train_keys": train_keys,
                 "val_keys": val_keys},
        "versions": {**software_versions(), "torch": torch.__version__}, "git_sha": git_sha(),
    }  # fmt: skip
    mean, std = mean.to(device), std.to(device)
    log = out / "train_log.jsonl"
    out.mkdir(parents=True, exist_ok=True)
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc=f"bc {cfg.task} {model_cfg.variant}",
               disable=not progress, dynamic_ncols=True)  # fmt: skip
    last, val_loss, t0 = None, float("nan"), time.perf_counter()
    for step in bar:
        # The batch depends only on (seed, step), so a resumed run sees exactly the batches it would have.
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        idx = torch.randint(0, len(train), (cfg.batch_size,), generator=g)
        frames, states, targets = train.batch(idx)
        if cfg.augment_pad:
            frames = random_shift(frames, cfg.augment_pad, g)
        loss = bc_loss(net, frames.to(device), states.to(device), targets.to(device), mean, std)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss is {loss.item()} at step {step + 1}; the last good checkpoint is {last}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        done = step + 1
        if done % cfg.eval_every == 0 or done == cfg.steps or done in cfg.save_at:
            val_loss = evaluate(net, val, mean, std, device) if val is not None else float("nan")
            rec = {"step": done, "loss": loss.item(), "val_loss": val_loss, "wall_s": time.perf_counter() - t0}
            with open(log, "a") as f:
                f.write(json.dumps(rec) + "\n")
        bar.set_postfix(loss=f"{loss.item():.4f}", val=f"{val_loss:.4f}", refresh=False)
        if done % cfg.save_every == 0 or done == cfg.steps or done in cfg.save_at:
            last = save_checkpoint(out / f"step_{done:06d}", {**meta, "step": done, "val_loss": val_loss}, net, opt)
    bar.close()
    return last or latest_step_dir(out)
