"""Train a judge (wmeval.model.judge) for a trained world model, on that model's own latent cache: the same
training episodes (its training policies, never its validation episodes, never a held-out policy's), its
normalisation and its value targets. Validation: the world model's validation episodes.

With `imagined`, the judge learns to read imagination instead of reality: it trains on the world model's
open-loop imagination of the same episodes (from each episode's first real frame, with its recorded
actions), labelled with what really happened in them, and validates on the imagination of the validation
episodes. A judge trained on real frames meets imagined ones only when it judges; this one has seen how
the model renders a success and a failure.

    wmeval train-judge --model runs/bench-cpu/wm-heldout/model --out runs/bench-cpu/judge [--imagined]
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from wmeval.checkpoint import load_optimizer, load_weights, read_config, save_checkpoint
from wmeval.data.store import EpisodeStore
from wmeval.data.windows import EpisodeArrays, Normalisation, WindowSampler, cache_writer
from wmeval.metrics import auroc
from wmeval.model.flow import interpolate
from wmeval.model.judge import Judge, JudgeConfig
from wmeval.model.value import masked_bce
from wmeval.train.common import latest_step_dir, link_latest, resolve_device


@dataclass(frozen=True)
class JudgeTrainConfig:
    model: str  # the world model whose latent space (codec, normalisation, latent cache) the judge reads
    out: str
    steps: int = 3000
    batch_size: int = 64
    lr: float = 1e-3
    frames: int = 4
    d_model: int = 64
    depth: int = 2
    heads: int = 2
    noise: float = 0.1
    imagined: bool = False  # train on the world model's open-loop imagination of its episodes, not their real frames
    eval_every: int = 500
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "eval_every", "frames"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    def to_json(self) -> dict:
        return asdict(self)


def judge_episodes(model_path: str | Path) -> tuple[EpisodeArrays, EpisodeArrays | None, dict]:
    """The world model's cached episodes, split as it was: (training, validation, the model's config)."""
    meta = read_config(model_path)
    cache = Path(meta["train"]["out"]) / "latents.safetensors"
    if not cache.is_file():
        raise ValueError(f"{cache}: the latent cache of the world model {model_path} is gone; a judge trains on it "
                         "(train the world model again, or keep its run directory)")  # fmt: skip
    arrays, _ = EpisodeArrays.load(cache)
    store = EpisodeStore(meta["data"]["store"])
    index = {m.key: m for m in store.index()}
    policies, tasks, val = set(meta["data"]["policies"]), set(meta["data"]["tasks"]), set(meta["data"]["val_keys"])
    usable = [i for i, k in enumerate(arrays.keys) if k in index and index[k].policy in policies
              and index[k].task in tasks]  # fmt: skip
    trained = meta["data"].get("train_keys")  # exactly the model's own (a subset in the data study); older: all
    trained = None if trained is None else set(trained)
    train = [i for i in usable if arrays.keys[i] not in val and (trained is None or arrays.keys[i] in trained)]
    held = [i for i in usable if arrays.keys[i] in val]
    return arrays.subset(train), (arrays.subset(held) if held else None), meta


def _episode_seed(seed: int, key: str) -> int:
    return int(hashlib.sha256(f"{seed}/{key}".encode()).hexdigest()[:15], 16)


@torch.no_grad()
def imagine_arrays(wm, arrays: EpisodeArrays, path: Path, model_id: dict, seed: int = 0, batch: int = 64,
                   progress: bool = True) -> EpisodeArrays:  # fmt: skip
    """The world model's open-loop imagination of every episode of `arrays`: from the episode's first real
    frame, its recorded actions, one noise draw per episode (seeded by `seed` and its key, whatever the
    batch). Written at `path` as a latent cache of the same layout: imagined raw latents and proprio (the
    first frame real), the real episode's actions, value labels, success flags and outcome. An existing
    cache of the same model (`model_id`: e.g. its path and step), seed and episodes is reused."""
    wm_id = {**model_id, "seed": seed, "episodes": len(arrays.keys), "frames": int(arrays.lens.sum())}
    if path.is_file():
        old, meta = EpisodeArrays.load(path)
        if meta.get("imagined") == wm_id and old.keys == list(arrays.keys):
            return old
    norm, dev = Normalisation.of(wm), wm.latent_mean.device
    raw_z = (norm.latent_std[:, None, None], norm.latent_mean[:, None, None])
    K, A = arrays.actions.shape[1:]
    order = np.argsort(-arrays.lens, kind="stable")  # episodes of similar length share a batch
    bar = tqdm(total=int(arrays.lens.sum()), desc="imagine episodes", unit="frame", disable=not progress,
               dynamic_ncols=True)  # fmt: skip
    with cache_writer(path, arrays.lens, arrays.latents.shape[1:], arrays.proprio.shape[1:], (K, A),
                      {"imagined": wm_id}, list(arrays.keys)) as put:  # fmt: skip
        for lo in range(0, len(order), batch):
            idx = order[lo : lo + batch]
            eps = [arrays.episode(i) for i in idx]
            T = max(len(e["value"]) for e in eps)
            z = norm.latents(torch.from_numpy(np.stack([e["latents"][0] for e in eps])))[:, None].to(dev)
            p = norm.proprio(torch.from_numpy(np.stack([e["proprio"][0] for e in eps])))[:, None].to(dev)
            acts = torch.zeros(len(idx), T, K, A)
            for j, e in enumerate(eps):
                acts[j, : len(e["actions"])] = torch.from_numpy(e["actions"])
            cache, _ = wm.start(z, p, torch.zeros(len(idx), 1, K, A, device=dev),
                                torch.zeros(len(idx), 1, dtype=torch.bool, device=dev))  # fmt: skip
            gens = [torch.Generator().manual_seed(_episode_seed(seed, arrays.keys[i])) for i in idx]
            zs, ps = [z[:, 0].cpu()], [p[:, 0].cpu()]
            for t in range(1, T):  # actions[t - 1] lead from frame t - 1 to frame t
                z_t, p_t, _ = wm.next_frame(cache, acts[:, t - 1].to(dev), gens)
                zs.append(z_t.cpu())
                ps.append(p_t.cpu())
                bar.update(int((arrays.lens[idx] > t).sum()))
            bar.update(len(idx))  # the real first frames
            Z = torch.stack(zs, 1) * raw_z[0] + raw_z[1]
            P = torch.stack(ps, 1) * norm.proprio_std + norm.proprio_mean
            for j, (i, e) in enumerate(zip(idx, eps, strict=True)):
                n = len(e["value"])
                e.setdefault("success", np.zeros(n, np.float32))
                put(int(i), {**e, "latents": Z[j, :n].numpy(), "proprio": P[j, :n].numpy()}, bool(arrays.outcome[i]))
    bar.close()
    return EpisodeArrays.load(path)[0]


def _inputs(w, frames: int, noise: float, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The newest T in [1, frames] frames of each window (the judge meets short histories at a rollout's
    start), each at a signal level in [1 - noise, 1]; the newest frame's value target."""
    T = int(torch.randint(1, frames + 1, (1,), generator=g))
    z, p = w.latents[:, -T:], w.proprio[:, -T:]
    tau = 1 - noise * torch.rand(z.shape[:2], generator=g)
    z = interpolate(z, torch.randn(z.shape, generator=g), tau)
    p = interpolate(p, torch.randn(p.shape, generator=g), tau)
    return z, p, w.value[:, -1]


@torch.no_grad()
def validate(judge: Judge, sampler: WindowSampler, cfg: JudgeTrainConfig, device, batches: int = 8) -> dict:
    """Validation BCE on the value targets, and the AUROC of the newest frame's value against the episode's
    real outcome (read from the target's side of 0.5 at the episode's last frames)."""
    judge.eval()
    losses, scores, labels = [], [], []
    for b in range(batches):
        w = sampler.batch(b, cfg.batch_size)
        z, p, target = _inputs(w, cfg.frames, 0.0, torch.Generator().manual_seed(b))
        logits = judge(z.to(device), p.to(device)).cpu()
        losses.append(float(masked_bce(logits, target, torch.ones_like(target))))
        known = torch.isfinite(target) & (target != 0.5)
        scores += logits[known].tolist()
        labels += (target[known] > 0.5).tolist()
    judge.train()
    return {"val_bce": float(np.mean(losses)), "val_auroc": auroc(np.array(scores), np.array(labels))}


def train_judge(cfg: JudgeTrainConfig, progress: bool = True) -> Path:
    """Train (or resume) the judge; returns OUT/model (a link to the last checkpoint)."""
    from wmeval.model.world_model import load_world_model

    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    train, val, wm_meta = judge_episodes(cfg.model)
    wm, _ = load_world_model(cfg.model, device)
    out = Path(cfg.out)
    if cfg.imagined:  # the same episodes, as the world model imagines them from their first frame and actions
        out.mkdir(parents=True, exist_ok=True)
        ident = {"model": str(cfg.model), "step": wm_meta.get("step")}
        train = imagine_arrays(wm, train, out / "imagined-train.safetensors", ident, cfg.seed, progress=progress)
        if val is not None:
            val = imagine_arrays(wm, val, out / "imagined-val.safetensors", ident, cfg.seed, progress=progress)
    d = wm.cfg.dynamics
    jcfg = JudgeConfig(d.latent_channels, d.grid, d.views, d.patch, d.state_dim, cfg.d_model, cfg.depth, cfg.heads,
                       cfg.frames, cfg.noise)  # fmt: skip
    norm = Normalisation.of(wm)
    sampler = WindowSampler(train, cfg.frames, cfg.seed, norm)
    val_sampler = WindowSampler(val, cfg.frames, cfg.seed + 1, norm) if val is not None else None
    judge = Judge(jcfg).to(device)
    opt = torch.optim.AdamW(judge.parameters(), lr=cfg.lr, weight_decay=0.01)
    done, last = 0, latest_step_dir(out)
    if last is not None:
        saved = read_config(last)
        free = {"steps": 0, "device": "", "eval_every": 0}  # settings a resumed run may change
        if {**saved.get("train", {}), **free} != {**cfg.to_json(), **free}:
            raise ValueError(f"{out} holds a judge trained with other settings; use a new --out or delete {out}")
        judge.load_state_dict(load_weights(last))
        load_optimizer(opt, load_weights(last, "optim.safetensors"), saved["optimizer"])
        done = saved["step"]
    meta = {"kind": "judge", "judge": jcfg.to_json(), "train": cfg.to_json(), "world_model": str(cfg.model),
            "world_model_step": wm_meta.get("step"), "episodes": {"train": len(train.keys),
            "val": 0 if val is None else len(val.keys)}}  # fmt: skip
    bar = tqdm(total=cfg.steps, initial=done, desc="judge", disable=not progress, dynamic_ncols=True)
    for step in range(done, cfg.steps):
        lr = cfg.lr * 0.5 * (1 + np.cos(np.pi * step / cfg.steps))  # cosine to 0
        for group in opt.param_groups:
            group["lr"] = lr
        z, p, target = _inputs(sampler.batch(step, cfg.batch_size), cfg.frames, cfg.noise,
                               torch.Generator().manual_seed(cfg.seed * 1_000_003 + step))  # fmt: skip
        target = target.to(device)
        loss = masked_bce(judge(z.to(device), p.to(device)), target, torch.ones_like(target))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
        n = step + 1
        if n % cfg.eval_every == 0 or n == cfg.steps:
            metrics = {"loss": loss.item()} | (validate(judge, val_sampler, cfg, device) if val_sampler else {})
            save_checkpoint(out / f"step_{n:06d}", {**meta, "step": n, "metrics": metrics}, judge, opt)
    bar.close()
    return link_latest(out / "model", out)
