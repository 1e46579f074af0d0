"""The world model: codec + dynamics + normalisation, its training loss and the step that generates one frame
(rollouts built on it: `wmeval.model.rollout`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from wmeval.model.codec import FrameCodec, to_uint8
from wmeval.model.config import WorldModelConfig, preset, sized  # noqa: F401  (also imported from here)
from wmeval.model.dynamics import Dynamics, DynamicsOutput, KVCache
from wmeval.model.flow import (
    Generators,
    euler_schedule,
    interpolate,
    randn,
    sample_tau,
    velocity_from_x,
    velocity_target,
)
from wmeval.model.judge import Judge
from wmeval.model.proprio import ProprioNet, pad_history
from wmeval.model.value import masked_bce


@dataclass
class Window:
    """A batch of training windows (never crossing episodes); latents and proprio already normalised."""

    latents: torch.Tensor  # (B, T, V, C, h, w)
    proprio: torch.Tensor  # (B, T, S)
    actions_in: torch.Tensor  # (B, T, K, A): the chunk that led into each frame
    has_action: torch.Tensor  # (B, T) bool: False for an episode's first frame
    value: torch.Tensor  # (B, T) value labels in [0, 1]
    success: torch.Tensor | None = None  # (B, T) 1.0 where the task is succeeded in that frame
    prev_latents: torch.Tensor | None = None  # (B, T, V, C, h, w) each frame's previous frame (zeros at a start)
    prev_proprio: torch.Tensor | None = None  # (B, T, S)

    def to(self, device: torch.device | str) -> Window:
        return Window(**{k: None if v is None else v.to(device, non_blocking=True) for k, v in vars(self).items()})


def motion_weights(latents: torch.Tensor, a: float) -> torch.Tensor:
    """Per latent cell (B, T, V, h, w): (1 + a * m / mean m) / (1 + a), m = |z_t - z_(t-1)| averaged over the
    channels (a window's first frame takes its successor's motion), so the weights average 1 over a batch
    (all 1 when nothing moves)."""
    d = (latents[:, 1:] - latents[:, :-1]).abs().mean(3)  # (B, T-1, V, h, w)
    m = torch.cat([d[:, :1], d], dim=1)
    mean = m.mean()
    return (1 + a * m / mean.clamp_min(1e-8)) / (1 + a * (mean > 0).to(m.dtype))


class WorldModel(nn.Module):
    """Frames are encoded by the (frozen) codec, normalised per latent channel; proprio is normalised with
    the training set's statistics. Both normalisations are buffers, so they travel with the weights."""

    def __init__(self, cfg: WorldModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.codec = FrameCodec(cfg.codec)
        self.dynamics = Dynamics(cfg.dynamics)
        C, S = cfg.codec.latent_channels, cfg.dynamics.state_dim
        self.register_buffer("latent_mean", torch.zeros(C))
        self.register_buffer("latent_std", torch.ones(C))
        self.register_buffer("proprio_mean", torch.zeros(S))
        self.register_buffer("proprio_std", torch.ones(S))
        self.autoguide: tuple[WorldModel, float] | None = None  # set by guide_with; a tuple, so not a submodule
        self.judge: tuple[Judge] | None = None  # set by judge_with
        self.proprio_net: tuple[ProprioNet] | None = None  # set by proprio_with

    def judge_with(self, judge: Judge | None) -> None:
        """Judge imagined episodes by `judge` (wmeval.model.judge: the value of the rendered state alone) instead
        of the dynamics' own readout; `readout` values then come from it. None: back to the dynamics' head."""
        if judge is not None:
            d, j = self.cfg.dynamics, judge.cfg
            mine, theirs = ((c.latent_channels, c.grid, c.views, c.patch, c.state_dim) for c in (d, j))
            if theirs != mine:
                raise ValueError(f"the judge reads latents (channels, grid, views, patch, state) {theirs}, this "
                                 f"world model makes {mine}: train a judge for it (`wmeval train-judge --model`)")
        self.judge = None if judge is None else (judge.to(self.latent_mean.device).eval(),)

    def _judged(self, cache: KVCache, z: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """Append frames (B, T, ...) to the judge's recent frames; the judge's probability after each (B, T)."""
        (judge,) = self.judge
        probs = []
        for t in range(z.shape[1]):
            new = (z[:, t : t + 1], p[:, t : t + 1])
            cache.recent = new if cache.recent is None else tuple(
                torch.cat([old, x], 1)[:, -judge.cfg.frames :] for old, x in zip(cache.recent, new, strict=True))
            probs.append(torch.sigmoid(judge(*cache.recent)))
        return torch.stack(probs, 1)

    def proprio_with(self, net: ProprioNet | None) -> None:
        """Predict each imagined frame's proprio with `net` (wmeval.model.proprio) and sample the frame given it,
        instead of sampling both together. None: back to the dynamics' own proprio."""
        if net is not None:
            d, n = self.cfg.dynamics, net.cfg
            mine, theirs = ((c.state_dim, c.action_dim, c.chunk_len, c.latent_channels, c.grid, c.views)
                            for c in (d, n))  # fmt: skip
            if theirs != mine:
                raise ValueError(f"the proprio net reads (state, action, chunk, channels, grid, views) {theirs}, this "
                                 f"world model has {mine}: train one for it (`wmeval train-proprio --model`)")
        self.proprio_net = None if net is None else (net.to(self.latent_mean.device).eval(),)

    def _arm(self, cache: KVCache, p: torch.Tensor, chunks: torch.Tensor) -> None:
        """Append frames' normalised proprio (B, T, S) and the chunks into them (B, T, K, A) to the history a
        proprio net reads."""
        if self.proprio_net:
            n = self.proprio_net[0].cfg.history + 1
            cache.arm = (p, chunks) if cache.arm is None else tuple(
                torch.cat([old, x], 1)[:, -n:] for old, x in zip(cache.arm, (p, chunks), strict=True))

    def guide_with(self, guide: WorldModel | None, scale: float = 2.0) -> None:
        """Autoguidance (Karras et al. 2024, "Guiding a diffusion model with a bad version of itself"): sample
        with the velocity v_guide + scale * (v - v_guide), where the guide is a weaker model of the same
        latent space, e.g. an earlier checkpoint of the same run, so sampling moves further along what this
        model learned beyond the guide. No retraining; one more dynamics pass per Euler step."""
        if guide is not None:
            def frame(m: WorldModel) -> dict[str, torch.Tensor]:  # what fixes the latent space
                norm = ("latent_mean", "latent_std", "proprio_mean", "proprio_std")
                return {**m.codec.state_dict(), **{n: getattr(m, n) for n in norm}}

            mine, theirs = frame(self), frame(guide)
            if guide.cfg.codec != self.cfg.codec or any(not torch.equal(v, theirs[k].to(v.device))
                                                        for k, v in mine.items()):  # fmt: skip
                raise ValueError("the guide must share this model's codec and normalisation (an earlier checkpoint "
                                 "of the same training run)")  # fmt: skip
            if self.cfg.guidance != 1:
                raise ValueError("autoguidance and action guidance cannot be combined: use one of them")
            if scale < 0:
                raise ValueError(f"the autoguidance scale must be >= 0, got {scale}")
        self.autoguide = None if guide is None else (guide.to(self.latent_mean.device).eval(), float(scale))

    # ---- normalisation ----
    def _bc(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, None, None]  # (C,) -> (C, 1, 1) for (..., C, h, w)

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 (B, V, H, W, 3) -> normalised latents (B, V, C, h, w)."""
        return (self.codec.encode(frames) - self._bc(self.latent_mean)) / self._bc(self.latent_std)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """normalised latents (B, V, C, h, w) -> uint8 (B, V, H, W, 3)."""
        return to_uint8(self.codec.decode(latents * self._bc(self.latent_std) + self._bc(self.latent_mean)))

    def norm_proprio(self, p: torch.Tensor) -> torch.Tensor:
        return (p - self.proprio_mean) / self.proprio_std

    def denorm_proprio(self, p: torch.Tensor) -> torch.Tensor:
        return p * self.proprio_std + self.proprio_mean

    # ---- training ----
    def loss(
        self, w: Window, generator: torch.Generator | None = None, dynamics: nn.Module | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Diffusion-forcing flow-matching loss on latents and proprio, plus the value head's BCE (with
        `teacher_forcing`, every frame is noisy and conditioned on context copies of the earlier frames).
        `dynamics` overrides the network called (a DistributedDataParallel wrapper of `self.dynamics`).
        The metrics are detached 0-d tensors: reading one (`.item()`) waits for the device, so a training
        loop reads them only when it logs, and `torch.compile` keeps the loss in one graph."""
        B, T = w.value.shape
        dev, tf = w.latents.device, self.cfg.teacher_forcing
        tau = torch.rand((B, T), generator=generator) if tf else sample_tau((B, T), self.cfg.p_clean, generator)
        tau = tau.to(dev)
        eps_z = torch.randn(w.latents.shape, generator=generator).to(dev)
        eps_p = torch.randn(w.proprio.shape, generator=generator).to(dev)
        tau_p = None  # the proprio's own noise level: some frames' proprio given clean, its loss not counted
        if self.cfg.dynamics.proprio_given:
            given = (torch.rand((B, T), generator=generator) < self.cfg.dynamics.proprio_given).to(dev)
            tau_p = torch.where(given, torch.ones_like(tau), tau)
        z_tau = interpolate(w.latents, eps_z, tau)
        p_tau = interpolate(w.proprio, eps_p, tau if tau_p is None else tau_p)
        prev = (w.prev_latents, w.prev_proprio) if self.cfg.dynamics.residual else None
        if prev is not None and self.cfg.prev_noise > 0:
            tau_prev = (1 - self.cfg.prev_noise * torch.rand((B, T), generator=generator)).to(dev)
            prev = tuple(interpolate(x, torch.randn(x.shape, generator=generator).to(x.device), tau_prev) for x in prev)
        actions_in, has_action = w.actions_in, w.has_action
        if self.cfg.action_dropout > 0:  # hidden as at an episode's first frame: no action, has_action False
            keep = (torch.rand((B, T), generator=generator) >= self.cfg.action_dropout).to(dev)
            has_action = has_action & keep
            actions_in = actions_in * keep[:, :, None, None].to(actions_in.dtype)
        net = dynamics or self.dynamics
        if tf:  # the readout heads learn on the context copies, which is where a rollout reads them
            ct = self.cfg.context_tau
            tau_r = (ct + (1 - ct) * torch.rand((B, T), generator=generator)).to(dev)
            ctx = tuple(interpolate(x, torch.randn(x.shape, generator=generator).to(dev), tau_r)
                        for x in (w.latents, w.proprio))  # fmt: skip
            out, read = net(z_tau, p_tau, actions_in, has_action, tau, prev=prev, context=(*ctx, tau_r), tau_p=tau_p)
        else:
            out = net(z_tau, p_tau, actions_in, has_action, tau, prev=prev, tau_p=tau_p)
            read, tau_r = out, tau
        noisy = (tau < 1).float()  # at tau = 1 the velocity target is pure noise: no signal to learn
        if self.cfg.dynamics.residual:  # the velocity form of an x-prediction (see flow.velocity_from_x)
            v_z, v_p = velocity_from_x(w.latents, z_tau, tau), velocity_from_x(w.proprio, p_tau, tau)
        else:
            v_z, v_p = velocity_target(w.latents, eps_z), velocity_target(w.proprio, eps_p)
        z_err = (out.latent_velocity - v_z).pow(2)
        if self.cfg.motion_weight > 0:
            z_err = z_err * motion_weights(w.latents, self.cfg.motion_weight)[:, :, :, None]
        z_err = z_err.flatten(2).mean(-1)
        p_err = (out.proprio_velocity - v_p).pow(2).mean(-1)
        denom = noisy.sum().clamp_min(1)
        noisy_p = noisy if tau_p is None else (tau_p < 1).float()
        z_loss, p_loss = (z_err * noisy).sum() / denom, (p_err * noisy_p).sum() / noisy_p.sum().clamp_min(1)
        # The value of a nearly pure-noise frame is unknowable; weight the value loss by the signal level.
        # Frames of episodes whose outcome is unknown carry NaN labels and weigh nothing.
        v_loss = masked_bce(read.value_logit, w.value, tau_r)
        loss = z_loss + self.cfg.proprio_weight * p_loss + self.cfg.value_weight * v_loss
        metrics = {"loss": loss, "latent": z_loss, "proprio": p_loss, "value_bce": v_loss}
        if read.success_logit is not None:
            if w.success is None:
                raise ValueError("this world model has a success head but its training windows carry no success flags")
            s_loss = masked_bce(read.success_logit, w.success, tau_r)
            loss = loss + self.cfg.success_weight * s_loss
            metrics.update(loss=loss, success_bce=s_loss)
        return loss, {k: v.detach() for k, v in metrics.items()}

    @staticmethod
    def readout(out: DynamicsOutput) -> torch.Tensor:
        """The per-frame probability an imagined episode is judged by: the success head's (is the task
        succeeded in this frame?) when the model has one, else the value head's (will it succeed?)."""
        return torch.sigmoid(out.value_logit if out.success_logit is None else out.success_logit)

    # ---- sampling ----
    @torch.no_grad()
    def start(self, latents: torch.Tensor, proprio: torch.Tensor, actions_in: torch.Tensor, has_action: torch.Tensor,
              max_frames: int | None = None) -> tuple[KVCache, torch.Tensor]:  # fmt: skip
        """Prefill a KV cache with clean context frames (B, Tc, ...) (normalised), a sliding window of
        `max_frames` (default: `context_frames`, else window - 1: a new frame then sees as many frames,
        itself included, as the last frame of a training window); returns the cache and the readout of
        every context frame (B, Tc)."""
        T = latents.shape[1]
        keep = max_frames or self.cfg.context_frames or self.cfg.window - 1
        cache = KVCache(keep, self.cfg.dynamics.tokens_per_frame)
        readouts = []
        # the first frame's previous frame is unknown: zeros, as at an episode's start in training
        prev = (torch.zeros_like(latents[:, :1]), torch.zeros_like(proprio[:, :1]))
        for t in range(T):
            tau = torch.ones(latents.shape[0], 1, device=latents.device)
            now = (latents[:, t : t + 1], proprio[:, t : t + 1])
            out = self.dynamics.step(*now, actions_in[:, t : t + 1], has_action[:, t : t + 1], tau, cache,
                                     commit=True, prev=prev)  # fmt: skip
            readouts.append(self.readout(out))
            prev = now
        cache.last = prev
        self._arm(cache, proprio, actions_in)
        if self.autoguide:
            cache.guide = self.autoguide[0].start(latents, proprio, actions_in, has_action, keep)[0]
        if self.judge:
            return cache, self._judged(cache, latents, proprio)
        return cache, torch.cat(readouts, dim=1)

    @torch.no_grad()
    def next_frame(
        self, cache: KVCache, action_chunk: torch.Tensor, generator: Generators = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Generate the frame that follows `action_chunk` (B, K, A) with a few Euler steps, commit it to the
        cache (at `context_tau`) and return normalised latents (B, V, C, h, w), proprio (B, S) and the
        readout probability (B,) on the committed frame (see `readout`). `generator` may be one generator per
        row, which makes each row's sample independent of what else is in the batch."""
        dyn = self.dynamics.cfg
        B, dev = action_chunk.shape[0], action_chunk.device
        shape_z = (B, 1, dyn.views, dyn.latent_channels, dyn.grid, dyn.grid)
        z = randn(shape_z, generator, dev)
        p = randn((B, 1, dyn.state_dim), generator, dev)
        a = action_chunk[:, None]
        has = torch.ones(B, 1, dtype=torch.bool, device=dev)
        taus = euler_schedule(self.cfg.sample_steps)
        prev, g = cache.last, self.cfg.guidance
        known = tau_p = None
        if self.proprio_net:  # the proprio first, then the frame sampled given it
            (net,) = self.proprio_net
            hist_p, hist_a = pad_history(*cache.arm, net.cfg.history + 1)
            known = net(hist_p, torch.cat([hist_a[:, 1:], action_chunk[:, None]], 1), prev[0][:, 0])[:, None]
            eps_p = p
            if dyn.proprio_given:  # a model trained for it reads the known proprio clean at every step
                p, tau_p = known, torch.ones(B, 1, device=dev)
        for t0, t1 in zip(taus[:-1], taus[1:], strict=True):
            tau = torch.full((B, 1), float(t0), device=dev)
            if known is not None and tau_p is None:  # else its path is held to the prediction (replacement)
                p = interpolate(known, eps_p, tau)
            out = self.dynamics.step(z, p, a, has, tau, cache, commit=False, prev=prev, tau_p=tau_p)
            v_z, v_p = out.latent_velocity, out.proprio_velocity
            if g != 1:  # guidance: extrapolate from the action-free prediction through the conditional one
                free = self.dynamics.step(z, p, torch.zeros_like(a), ~has, tau, cache, commit=False, prev=prev,
                                          tau_p=tau_p)
                v_z = free.latent_velocity + g * (v_z - free.latent_velocity)
                v_p = free.proprio_velocity + g * (v_p - free.proprio_velocity)
            if self.autoguide:  # autoguidance: extrapolate from the weaker model's prediction through this one's
                guide, w = self.autoguide
                weak = guide.dynamics.step(z, p, a, has, tau, cache.guide, commit=False, prev=prev)
                v_z = weak.latent_velocity + w * (v_z - weak.latent_velocity)
                v_p = weak.proprio_velocity + w * (v_p - weak.proprio_velocity)
            z = z + (t1 - t0) * v_z
            p = p + (t1 - t0) * v_p if tau_p is None else p
        if known is not None:
            p = known
            self._arm(cache, known, action_chunk[:, None])
        ct = self.cfg.context_tau
        z_ctx = interpolate(z, randn(shape_z, generator, dev), torch.full((B, 1), ct, device=dev))
        p_ctx = interpolate(p, randn(p.shape, generator, dev), torch.full((B, 1), ct, device=dev))
        out = self.dynamics.step(z_ctx, p_ctx, a, has, torch.full((B, 1), ct, device=dev), cache, commit=True,
                                 prev=prev)  # fmt: skip
        if self.autoguide:
            self.autoguide[0].dynamics.step(z_ctx, p_ctx, a, has, torch.full((B, 1), ct, device=dev), cache.guide,
                                            commit=True, prev=prev)  # fmt: skip
        cache.last = (z, p)
        value = self._judged(cache, z, p) if self.judge else self.readout(out)
        return z[:, 0], p[:, 0], value[:, 0]


def load_world_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[WorldModel, dict]:
    """A trained world model (EMA weights) and its checkpoint config (layout, training data, metrics), or a member
    of a packed ensemble (wmeval.models)."""
    from wmeval.checkpoint import CheckpointError, load_weights, read_config
    from wmeval.models import members, read_shared

    if not (Path(path) / "config.json").is_file() and (ms := members(path)):
        raise CheckpointError(
            f"{path} is a packed ensemble of {len(ms)} world models: evaluate with each member "
            f"({', '.join(str(m) for m in ms)}) and align the evaluations together (`wmeval align EVAL ...`)"
        )
    cfg = read_config(path)
    if cfg.get("kind") != "world-model":
        raise CheckpointError(f"{path} holds a {cfg.get('kind')!r} checkpoint, not a 'world-model'")
    cfg, shared = read_shared(path, cfg)  # a member of a packed ensemble (wmeval.models) shares its codec
    missing = [k for k in ("model", "layout", "data", "train") if not isinstance(cfg.get(k), dict)]
    try:
        if missing:
            raise KeyError(", ".join(missing))
        model = WorldModel(WorldModelConfig.from_json(cfg["model"]))
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(
            f"{Path(path) / 'config.json'} is damaged or from another version (bad or missing {e}); "
            "use another checkpoint or train again"
        ) from None
    try:
        model.load_state_dict({**shared, **load_weights(path)})
    except RuntimeError as e:  # weights of another shape than config.json says
        raise CheckpointError(f"{path}: model.safetensors does not match config.json ({str(e)[:200]})") from None
    return model.to(device).eval(), cfg
