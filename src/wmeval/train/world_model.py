"""`wmeval train`: codec -> latent cache -> dynamics (+ proprio and value heads), resumable at every phase.

    OUT/codec/step_XXXXXX/       codec checkpoints (phase 1)
    OUT/latents.safetensors      every episode encoded once, with value labels (phase 2)
    OUT/dynamics/step_XXXXXX/    world-model checkpoints: EMA weights in model.safetensors, raw weights and
                                 optimiser in train.safetensors / optim.safetensors (phase 3)
    OUT/model -> the last dynamics checkpoint, what `WorldModel.load` and evaluation use
Runs under torchrun (DDP over the dynamics); rank 0 writes.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import MISSING, asdict, dataclass, fields, replace
from pathlib import Path

import torch
from tqdm import tqdm

from wmeval.checkpoint import git_sha, load_optimizer, load_weights, read_config, save_checkpoint
from wmeval.data.store import EpisodeStore, software_versions
from wmeval.data.windows import (
    EpisodeArrays,
    Normalisation,
    WindowSampler,
    long_enough,
)
from wmeval.model.codec import FrameCodec
from wmeval.model.world_model import Window, WorldModel, WorldModelConfig, preset, sized
from wmeval.train.common import EMA, Logger, dist_info, latest_step_dir, link_latest, resolve_device
from wmeval.train.data import Data, prepare_data

KIND = "world-model"
CHECK_EVERY = 10  # steps between reads of the loss on the host (each read waits for the device)


@dataclass(frozen=True)
class WMTrainConfig:
    store: str
    out: str
    preset: str = "tiny"
    window: int | None = None  # frames per training window (None: the preset's)
    d_model: int | None = None  # dynamics width, depth and heads (None: the preset's)
    depth: int | None = None
    heads: int | None = None
    patch: int | None = None  # latent patch side per dynamics token (None: the preset's 2; 1: 4x the tokens)
    latent_channels: int | None = None  # codec latent channels and base width (None: the preset's)
    codec_width: int | None = None  # the codec's channels at H/2; doubled at H/4 and H/8
    tasks: tuple[str, ...] | None = None
    exclude_policies: tuple[str, ...] = ()  # e.g. hold judged policies out of the training data
    # with exclude_policies: their episodes on these start seeds (first, last) train after all, never validate
    # (a few real rollouts of the judged policies on starts other than the evaluation's); the rest stay out
    train_seeds: tuple[int, int] | None = None
    # episodes on these start seeds (first, last) always validate, never train: e.g. real episodes of the training
    # policies collected for the success rule's calibration (PipelineConfig.readout_episodes)
    validate_seeds: tuple[int, int] | None = None
    # the data study: which of the selected episodes train (validation, hence calibration, is unchanged)
    train_policies: tuple[str, ...] = ()  # only these policies' episodes train (names or globs; () = all)
    train_episodes: int | None = None  # at most this many training episodes, a nested subset (hash order)
    value_scheme: str = "linear"
    success_head: bool = False  # a head for "succeeded in this frame", read by evaluation instead of the value
    residual: bool = False  # dynamics predict each frame as the previous one plus a change
    prev_noise: float = 0.0  # residual: noise on the previous frame in training (WorldModelConfig.prev_noise)
    teacher_forcing: bool = False  # train every frame on context copies of the earlier ones, as rollouts sample
    action_dropout: float = 0.0  # hide each frame's actions with this probability (enables evaluation's guidance)
    motion_weight: float = 0.0  # weight the latent loss by each cell's motion (WorldModelConfig.motion_weight)
    proprio_given: float = 0.0  # give a frame's proprio clean with this probability (DynamicsConfig.proprio_given)
    init_from: str | None = None  # a trained world model whose dynamics weights this run starts from (fine-tuning)
    val_fraction: float = 0.1
    codec_steps: int = 1000
    codec_batch: int = 32
    codec_lr: float = 1e-3
    steps: int = 2000
    batch_size: int = 16
    lr: float = 5e-4
    weight_decay: float = 0.01
    warmup: int = 100
    ema: float = 0.995
    eval_every: int = 250
    save_every: int = 500
    # also save once this many minutes have passed since the last save, so an interrupted run on a slow machine
    # loses at most that much; such an in-between checkpoint is removed when the next one is written
    save_minutes: float = 10.0
    seed: int = 0
    codec_from: str | None = None  # a run directory whose finished codec and latent cache this run reuses
    device: str = "auto"
    bf16: bool | None = None  # None: on for CUDA
    compile: bool | None = None  # None: on for CUDA

    def __post_init__(self) -> None:
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.validate_seeds is not None and not (
            len(self.validate_seeds) == 2 and 0 <= self.validate_seeds[0] <= self.validate_seeds[1]
        ):
            raise ValueError(f"validate_seeds must be (first, last) start seeds, got {self.validate_seeds}")
        if self.train_seeds is not None and not (
            len(self.train_seeds) == 2 and 0 <= self.train_seeds[0] <= self.train_seeds[1]
        ):
            raise ValueError(f"train_seeds must be (first, last) start seeds, got {self.train_seeds}")
        if self.train_episodes is not None and self.train_episodes < 1:
            raise ValueError(f"train_episodes must be >= 1, got {self.train_episodes}")
        for name in ("steps", "batch_size", "eval_every", "save_every", "codec_batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.save_minutes > 0:
            raise ValueError(f"save_minutes must be > 0, got {self.save_minutes}")

    def to_json(self) -> dict:
        return json.loads(json.dumps(asdict(self)))


def model_config(cfg: WMTrainConfig, store: EpisodeStore) -> WorldModelConfig:
    L = store.layout
    base = preset(cfg.preset, L.image_size, len(L.views), L.state_dim, L.action_dim, L.frame_skip)
    window = cfg.window or base.window
    base = sized(base, cfg.latent_channels, cfg.codec_width, d_model=cfg.d_model, depth=cfg.depth, heads=cfg.heads,
                 patch=cfg.patch)  # fmt: skip
    dyn = replace(base.dynamics, success_head=cfg.success_head, residual=cfg.residual,
                  proprio_given=cfg.proprio_given)  # fmt: skip
    context = min(base.context, window - 1)
    return replace(base, value_scheme=cfg.value_scheme, window=window, context=context, dynamics=dyn,
                   prev_noise=cfg.prev_noise, teacher_forcing=cfg.teacher_forcing,
                   action_dropout=cfg.action_dropout, motion_weight=cfg.motion_weight)  # fmt: skip


def lr_at(step: int, cfg: WMTrainConfig) -> float:
    """Linear warm-up, then cosine decay to 10%."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    frac = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))


def setup_device(cfg: WMTrainConfig) -> tuple[int, int, torch.device]:
    """(rank, world size, device); joins the torchrun process group when there is one."""
    rank, local_rank, world = dist_info()
    device = resolve_device(cfg.device)
    if world > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        if device.type == "cuda":
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
    return rank, world, device


def init_model(wm_cfg: WorldModelConfig, codec: FrameCodec, data: Data, device) -> WorldModel:
    """The world model with the frozen codec and normalisation from the training episodes only (batches
    are normalised as they are gathered; the cache stays raw)."""
    model = WorldModel(wm_cfg).to(device)
    model.codec.load_state_dict(codec.state_dict())
    model.codec.requires_grad_(False)
    norm = Normalisation.fit(data.train)
    for k in ("latent_mean", "latent_std", "proprio_mean", "proprio_std"):
        getattr(model, k).copy_(getattr(norm, k))
    return model


def settings_diff(cfg: WMTrainConfig, saved: dict) -> dict:
    """The settings in which `cfg` differs from a saved checkpoint's (saved, now); a setting added after the
    run was saved counts as saved at its default."""
    free = ("device", "steps", "eval_every", "save_every", "save_minutes", "bf16", "compile")
    defaults = json.loads(json.dumps({f.name: f.default for f in fields(WMTrainConfig) if f.default is not MISSING}))
    then = defaults | saved["train"]
    return {k: (then.get(k), v) for k, v in cfg.to_json().items() if k not in free and then.get(k) != v}


def finished(cfg: WMTrainConfig) -> Path | None:
    """OUT/model when this run has already trained `cfg.steps` steps with these settings (nothing to do)."""
    link = Path(cfg.out) / "model"
    if not link.exists():
        return None
    saved = read_config(link)
    return link if saved["step"] >= cfg.steps and not settings_diff(cfg, saved) else None


def resume(cfg: WMTrainConfig, model: WorldModel, opt, device) -> tuple[int, EMA]:
    """Restore raw weights, optimiser and EMA from the newest dynamics checkpoint, if any."""
    last = latest_step_dir(Path(cfg.out) / "dynamics")
    ema = EMA(model, cfg.ema)
    if last is None:
        return 0, ema
    saved = read_config(last)
    diff = settings_diff(cfg, saved)
    if diff:
        raise ValueError(f"{cfg.out} holds a run with other settings {diff} (saved vs now); use a new --out")
    model.load_state_dict(load_weights(last, "train.safetensors"))
    load_optimizer(opt, {k: v.to(device) for k, v in load_weights(last, "optim.safetensors").items()},
                   saved["optimizer"])  # fmt: skip
    ema.shadow = {k: v.to(device) for k, v in load_weights(last).items()}
    return saved["step"], ema


def init_dynamics(model: WorldModel, source: str) -> list[str]:
    """Start the dynamics from another trained world model's (EMA) weights; parameters this model adds (e.g.
    `proprio_given`'s) keep their initialisation, and their names are returned so the run can say so. The codec
    and normalisation stay this run's own."""
    theirs = {k.removeprefix("dynamics."): v for k, v in load_weights(source).items() if k.startswith("dynamics.")}
    mine = model.dynamics.state_dict()
    bad = [k for k, v in theirs.items() if k not in mine or mine[k].shape != v.shape]
    if bad or not theirs:
        raise ValueError(f"--init-from {source}: its dynamics do not fit this model's ({', '.join(bad[:4]) or 'none'}"
                         "); start from a model of the same preset, sizes and data layout")  # fmt: skip
    model.dynamics.load_state_dict(theirs, strict=False)
    return sorted({k.rsplit(".", 1)[0] for k in mine if k not in theirs})


def run_meta(cfg, wm_cfg, store, data: Data, world: int) -> dict:
    return {
        "kind": KIND, "model": wm_cfg.to_json(), "layout": store.layout.to_json(), "train": cfg.to_json(),
        "data": {"store": str(store.root), "store_fingerprint": data.store_fingerprint, "episodes": len(data.keys),
                 "train_episodes": len(data.train_keys), "val_episodes": len(data.val_keys),
                 "val_keys": data.val_keys, "train_keys": data.train_keys, "tasks": data.tasks,
                 "policies": data.policies},
        "world_size": world, "versions": {**software_versions(), "torch": torch.__version__}, "git_sha": git_sha(),
    }  # fmt: skip


LABELS = ("value", "success")


def check_finite(w: Window, keys: list[str], step: int, out: Path) -> None:
    """Stop on NaN/inf inputs, naming the step, episode and tensor; checkpoints on disk stay as they are."""
    for name, t in vars(w).items():
        if name in LABELS or t is None:  # NaN labels mark episodes of unknown outcome; the loss skips them
            continue
        if t.dtype.is_floating_point and not torch.isfinite(t).all():
            b = int((~torch.isfinite(t)).flatten(1).any(1).nonzero()[0])
            raise FloatingPointError(
                f"non-finite {name!r} in the batch of step {step + 1}, episode {keys[b]}; the last good "
                f"checkpoint is {latest_step_dir(out / 'dynamics')}"
            )


def train_world_model(cfg: WMTrainConfig, progress: bool = True) -> Path:
    done = finished(cfg)
    if done is not None:  # its data is not read again: the store may have grown since
        return done
    rank, world, device = setup_device(cfg)
    main = rank == 0
    progress = progress and main
    out = Path(cfg.out)
    store = EpisodeStore(cfg.store)
    wm_cfg = model_config(cfg, store)
    if cfg.init_from:  # a wrong path fails now, not after the codec and the latent cache
        read_config(cfg.init_from)
    torch.manual_seed(cfg.seed)
    codec, data = prepare_data(cfg, wm_cfg, store, device, rank, world, progress)
    unknown = sum(store.meta(k).outcome is None for k in data.train_keys)
    if unknown and main:
        print(
            f"{unknown} of {len(data.train_keys)} training episodes have no known outcome (imported without "
            "success labels): the dynamics learn from them, the value head only from the others"
        )
    model = init_model(wm_cfg, codec, data, device)
    dyn = model.dynamics
    opt = torch.optim.AdamW(dyn.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.95))
    start, ema = resume(cfg, model, opt, device)
    if start == 0 and cfg.init_from:
        fresh = init_dynamics(model, cfg.init_from)
        if main:
            print(f"dynamics start from {cfg.init_from}" + (f"; new, at their initialisation: {', '.join(fresh)}"
                                                            if fresh else ""))  # fmt: skip
        ema = EMA(model, cfg.ema)
    cuda = device.type == "cuda"
    bf16 = cuda if cfg.bf16 is None else cfg.bf16
    # Under DDP the loss calls the wrapper, so gradients are all-reduced across ranks.
    net = (
        torch.nn.parallel.DistributedDataParallel(dyn, device_ids=[device.index] if cuda else None)
        if world > 1
        else dyn
    )
    loss_fn = torch.compile(model.loss) if (cuda if cfg.compile is None else cfg.compile) else model.loss
    norm = Normalisation.of(model)  # after resume: the statistics the run was trained with
    sampler = WindowSampler(data.train, wm_cfg.window, seed=cfg.seed * 1000 + rank, norm=norm)
    dyn_dir = out / "dynamics"
    log = Logger(dyn_dir, "dynamics", enabled=main)
    meta = run_meta(cfg, wm_cfg, store, data, world)
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc=f"world model ({cfg.preset})",
               disable=not progress, dynamic_ncols=True)  # fmt: skip
    t0, checked, finite = time.perf_counter(), start, torch.ones((), dtype=torch.bool, device=device)
    saved_at = t0
    for step in bar:
        w, keys = sampler.batch_with_keys(step, cfg.batch_size)
        check_finite(w, keys, step, out)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss, m = loss_fn(w.to(device), torch.Generator().manual_seed(cfg.seed * 7919 + step * 31 + rank), net)
        finite = finite & torch.isfinite(loss.detach())  # no host read here: the device runs ahead
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(dyn.parameters(), 1.0)
        opt.step()
        ema.update(model)
        done = step + 1
        logging = done % cfg.eval_every == 0 or done == cfg.steps
        saving = done % cfg.save_every == 0 or time.perf_counter() - saved_at >= 60 * cfg.save_minutes
        if done % CHECK_EVERY == 0 or logging or saving:  # before anything is logged or saved
            if not finite:
                raise FloatingPointError(
                    f"world-model loss became non-finite within steps {checked + 1}-{done} (last batch: episodes "
                    f"{keys}); the last good checkpoint is {latest_step_dir(dyn_dir)}")  # fmt: skip
            checked, m = done, {k: v.item() for k, v in m.items()}
            bar.set_postfix(loss=f"{m['loss']:.4f}", refresh=False)
        if main and logging:
            m["lr"], m["step_s"] = lr_at(step, cfg), (time.perf_counter() - t0) / (done - start)
            if data.val is not None:
                m["val_loss"] = validation_loss(model, ema, data.val, wm_cfg.window, norm, device, cfg.seed)
                log.image(done, "real_over_imagined", sample_strip(model, ema, data.val, norm, device))
            log.scalars(done, m)
        if main and (saving or done == cfg.steps):
            save_dynamics(dyn_dir / f"step_{done:06d}", {**meta, "step": done, "metrics": m}, model, ema, opt)
            remove_in_between(dyn_dir, cfg.save_every, keep=done)
            saved_at = time.perf_counter()
    bar.close()
    log.close()
    if world > 1:
        torch.distributed.barrier()
    if main:
        link_latest(out / "model", dyn_dir)
    return out / "model"


def remove_in_between(dyn_dir: Path, save_every: int, keep: int) -> None:
    """Remove the checkpoints saved for time alone (steps not a multiple of `save_every`) except step `keep`,
    the one just written, and the run's `model` (a finished run's last step, which a longer run resumes from):
    the run keeps its regular checkpoints and at most one in between."""
    link = dyn_dir.parent / "model"
    published = link.resolve() if link.exists() else None
    for d in dyn_dir.glob("step_*"):
        step = d.name.removeprefix("step_")
        if step.isdigit() and int(step) % save_every and int(step) != keep and d.resolve() != published:
            shutil.rmtree(d)


def save_dynamics(path: Path, meta: dict, model: WorldModel, ema: EMA, opt) -> None:
    """model.safetensors holds the EMA weights (what inference loads); train.safetensors the raw ones."""
    save_checkpoint(path, meta, ema.shadow, opt, extra={"train.safetensors": model.state_dict()})


@torch.no_grad()
def validation_loss(model, ema, val_arr, window, norm, device, seed, batches: int = 4) -> float:
    """Loss of the EMA weights on fixed validation windows (same windows and noise every evaluation)."""
    if not len(long_enough(val_arr, window)):
        return float("nan")
    sampler = WindowSampler(val_arr, window, seed=10_000 + seed, norm=norm)
    total = 0.0
    with ema.applied(model):
        for i in range(batches):
            w = sampler.batch(i, 16).to(device)
            total += model.loss(w, torch.Generator().manual_seed(i))[1]["loss"].item()
    return total / batches


@torch.no_grad()
def sample_strip(model: WorldModel, ema: EMA, val_arr: EpisodeArrays, norm: Normalisation, device) -> torch.Tensor:
    """One validation window, real frames above frames imagined open loop from its first `context` frames
    and its logged actions (EMA weights): uint8 (2 * H, T * W, 3)."""
    W, Tc = model.cfg.window, model.cfg.context
    if not len(long_enough(val_arr, W)):
        return torch.zeros(8, 8, 3, dtype=torch.uint8)
    w = WindowSampler(val_arr, W, seed=0, norm=norm).batch(0, 1).to(device)
    with ema.applied(model):
        cache, _ = model.start(w.latents[:, :Tc], w.proprio[:, :Tc], w.actions_in[:, :Tc], w.has_action[:, :Tc])
        imagined = [w.latents[:, t] for t in range(Tc)]
        for t in range(Tc, W):
            imagined.append(model.next_frame(cache, w.actions_in[:, t], torch.Generator().manual_seed(t))[0])
        real = torch.cat([model.decode(w.latents[:, t])[0, 0] for t in range(W)], dim=1)  # (H, T*W, 3)
        fake = torch.cat([model.decode(z)[0, 0] for z in imagined], dim=1)
    return torch.cat([real, fake], dim=0).cpu()
