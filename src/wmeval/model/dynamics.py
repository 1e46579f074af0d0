"""Action-conditioned latent dynamics: a transformer over frame tokens, causal across frames.

Each frame is V * P latent-patch tokens plus one proprio token. Attention is full within a frame and
causal across frames (a frame sees itself and the past, never the future). Each frame is conditioned,
through adaLN-Zero (Peebles & Xie 2023, DiT), on the action chunk that led into it and on its own noise
level. Time enters as rotary embeddings over the frame index (Su et al. 2021), so attention depends on
how far back a frame is, which lets a sliding KV cache roll out longer than the training window.
Heads: latent and proprio velocities (flow matching, see flow.py), a value logit per frame and, when
`success_head` is on, a success logit per frame: whether the task is succeeded in that frame's state.
The value (will this episode succeed?) depends on the policy acting; success-now is a property of the
state alone, so it reads the same for any policy, including the held-out ones a world model judges.
It reads the frame's proprio token together with the mean of its patch tokens.

With `residual` on, each frame also sees the previous frame's clean latents and proprio (zeros for an
episode's first frame) and predicts itself as that frame plus a change: the output layers start at zero,
so an untrained model copies the previous frame, and what it learns is the change an action makes. The
prediction x_hat is turned into the flow velocity (x_hat - x_tau) / (1 - tau) (flow.velocity_from_x), so
sampling and the loss keep the velocity form.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from wmeval.model.flow import velocity_from_x


@dataclass(frozen=True)
class DynamicsConfig:
    latent_channels: int = 8
    grid: int = 8  # latent grid side per view
    views: int = 1
    patch: int = 2  # latent patch side
    state_dim: int = 4
    action_dim: int = 4
    chunk_len: int = 4
    d_model: int = 128
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    success_head: bool = False  # off in checkpoints written before it existed
    residual: bool = False  # predict each frame as the previous frame plus a change (off in older checkpoints)
    # the proprio token carries its own noise level (`tau_p`): a frame can be sampled given a known proprio
    # (clean, tau_p = 1) while its latents are noisy; in training a frame's proprio is given with this
    # probability (0: one noise level per frame, as in older checkpoints)
    proprio_given: float = 0.0

    def __post_init__(self) -> None:
        if self.grid % self.patch:
            raise ValueError(f"latent grid ({self.grid}) must be divisible by patch ({self.patch})")
        if self.d_model % self.heads or (self.d_model // self.heads) % 4:
            raise ValueError(f"d_model/heads ({self.d_model}/{self.heads}) must be a multiple of 4")
        if not 0 <= self.proprio_given < 1:
            raise ValueError(f"proprio_given must be in [0, 1), got {self.proprio_given}")

    @property
    def patches(self) -> int:
        return self.views * (self.grid // self.patch) ** 2

    @property
    def tokens_per_frame(self) -> int:
        return self.patches + 1  # + the proprio token

    def to_json(self) -> dict:
        return asdict(self)


def rope(x_BHND: torch.Tensor, frame_N: torch.Tensor) -> torch.Tensor:
    """Rotary embedding of each token's frame index on the first half of the head dim."""
    D = x_BHND.shape[-1] // 2  # rotated part
    freqs = 1.0 / (10000 ** (torch.arange(0, D, 2, device=x_BHND.device).float() / D))  # (D/2,)
    ang = frame_N.float()[:, None] * freqs[None]  # (N, D/2)
    cos, sin = ang.cos().to(x_BHND.dtype), ang.sin().to(x_BHND.dtype)
    x1, x2, rest = x_BHND[..., 0:D:2], x_BHND[..., 1:D:2], x_BHND[..., D:]
    rot = torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).flatten(-2)
    return torch.cat([rot, rest], dim=-1)


@dataclass
class KVCache:
    """Keys/values of past frames per layer, (B, H, L, Dh) each; a sliding window of `max_frames`."""

    max_frames: int
    tokens_per_frame: int
    k: list[torch.Tensor | None] = field(default_factory=list)
    v: list[torch.Tensor | None] = field(default_factory=list)
    frames: int = 0  # frames ever appended (the next frame's index)
    last: tuple[torch.Tensor, torch.Tensor] | None = None  # the newest frame's clean (latents, proprio), T = 1
    guide: KVCache | None = None  # the guiding model's cache, with autoguidance (WorldModel.guide_with)
    recent: tuple[torch.Tensor, torch.Tensor] | None = None  # the newest frames (latents, proprio) a judge reads
    # the newest frames' normalised proprio (B, T, S) and the chunks that led into them (B, T, K, A), which a
    # proprio net reads (WorldModel.proprio_with)
    arm: tuple[torch.Tensor, torch.Tensor] | None = None

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> None:
        while len(self.k) <= layer:
            self.k.append(None)
            self.v.append(None)
        K, V = self.k[layer], self.v[layer]
        K = k if K is None else torch.cat([K, k], dim=2)
        V = v if V is None else torch.cat([V, v], dim=2)
        keep = self.max_frames * self.tokens_per_frame
        self.k[layer], self.v[layer] = K[:, :, -keep:], V[:, :, -keep:]


class Attention(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)

    def forward(self, x_BND, frame_N, mask=None, past_k=None, past_v=None):
        q, k, v = rearrange(self.qkv(x_BND), "b n (three h d) -> three b h n d", three=3, h=self.heads)
        q, k = rope(q, frame_N), rope(k, frame_N)
        k_all = k if past_k is None else torch.cat([past_k, k], dim=2)
        v_all = v if past_v is None else torch.cat([past_v, v], dim=2)
        y = F.scaled_dot_product_attention(q, k_all, v_all, attn_mask=mask)
        return self.out(rearrange(y, "b h n d -> b n (h d)")), k, v


def modulate(x_BND: torch.Tensor, shift_BTD: torch.Tensor, scale_BTD: torch.Tensor) -> torch.Tensor:
    """x * (1 + scale) + shift, with one (shift, scale) per frame broadcast over the frame's N tokens."""
    B, T, D = shift_BTD.shape
    x = x_BND.view(B, T, -1, D)
    return (x * (1 + scale_BTD[:, :, None]) + shift_BTD[:, :, None]).view(B, -1, D)


def per_token(g_BTD: torch.Tensor, N: int) -> torch.Tensor:
    """A per-frame gate (B, T, D) spread over the frame's N tokens: (B, T * N, D)."""
    return g_BTD[:, :, None].expand(-1, -1, N, -1).flatten(1, 2)


class Block(nn.Module):
    """Pre-norm transformer block with adaLN-Zero: the conditioning regresses shift/scale/gate for both
    sub-layers; gates start at zero, so each block starts as the identity (DiT, Peebles & Xie 2023)."""

    def __init__(self, d: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(d, heads)
        self.norm2 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        hidden = int(d * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(d, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, d))
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(d, 6 * d))
        nn.init.zeros_(self.ada[1].weight)
        nn.init.zeros_(self.ada[1].bias)

    def forward(self, x_BND, cond_BTD, frame_N, mask=None, past_k=None, past_v=None):
        # The conditioning is one vector per frame, so the modulation is computed per frame (not per token:
        # that would cost as much as the MLP) and broadcast over the frame's tokens.
        s1, c1, g1, s2, c2, g2 = self.ada(cond_BTD).chunk(6, dim=-1)
        N = x_BND.shape[1] // cond_BTD.shape[1]
        a, k, v = self.attn(modulate(self.norm1(x_BND), s1, c1), frame_N, mask, past_k, past_v)
        x_BND = x_BND + per_token(g1, N) * a
        x_BND = x_BND + per_token(g2, N) * self.mlp(modulate(self.norm2(x_BND), s2, c2))
        return x_BND, k, v


def timestep_features(tau_BT: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features of the signal level (scaled to [0, 1000] as diffusion step indices are)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(half, device=tau_BT.device).float() / half)
    ang = tau_BT.float()[..., None] * 1000 * freqs
    return torch.cat([ang.cos(), ang.sin()], dim=-1)


@dataclass
class DynamicsOutput:
    latent_velocity: torch.Tensor  # (B, T, V, C, h, w)
    proprio_velocity: torch.Tensor  # (B, T, S)
    value_logit: torch.Tensor  # (B, T)
    success_logit: torch.Tensor | None = None  # (B, T); None without a success head


class Dynamics(nn.Module):
    def __init__(self, cfg: DynamicsConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d, p, C = cfg.d_model, cfg.patch, cfg.latent_channels
        self.patch_in = nn.Linear(C * p * p, d)
        self.proprio_in = nn.Linear(cfg.state_dim, d)
        if cfg.residual:
            self.prev_patch_in = nn.Linear(C * p * p, d)
            self.prev_proprio_in = nn.Linear(cfg.state_dim, d)
        self.pos = nn.Parameter(torch.randn(1, cfg.tokens_per_frame, d) * 0.02)  # position within a frame
        self.action_in = nn.Sequential(
            nn.Linear(cfg.chunk_len * cfg.action_dim + 1, d), nn.SiLU(), nn.Linear(d, d)
        )  # + 1: a "has an action" flag (the first frame of an episode has none)
        self.tau_in = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        if cfg.proprio_given:  # the proprio token's own noise level, added to it; zero at first (one level)
            self.proprio_tau_in = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
            nn.init.zeros_(self.proprio_tau_in[2].weight)
            nn.init.zeros_(self.proprio_tau_in[2].bias)
        self.blocks = nn.ModuleList(Block(d, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.norm_out = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.ada_out = nn.Sequential(nn.SiLU(), nn.Linear(d, 2 * d))
        self.patch_out = nn.Linear(d, C * p * p)
        self.proprio_out = nn.Linear(d, cfg.state_dim)
        self.value_out = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, 1))
        if cfg.success_head:
            self.success_out = nn.Sequential(nn.Linear(2 * d, d), nn.SiLU(), nn.Linear(d, 1))
        for layer in (self.ada_out[1], self.patch_out, self.proprio_out):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    # ---- tokens in and out ----
    def _patches(self, latents: torch.Tensor) -> torch.Tensor:
        p = self.cfg.patch
        return rearrange(latents, "b t v c (h p1) (w p2) -> b t (v h w) (c p1 p2)", p1=p, p2=p)

    def tokens(self, latents, proprio, actions_in, has_action, tau, prev=None, tau_p=None):
        """(B, T, V, C, h, w), (B, T, S), (B, T, K, A), (B, T), (B, T) and, for a residual model, the
        previous frames (latents, proprio) -> tokens (B, T*N, d) and the per-frame conditioning (B, T, d).
        `tau_p` (B, T): the proprio's own noise level where it differs from the frame's (`proprio_given`)."""
        c = self.cfg
        p_tok = self.proprio_in(proprio)
        if c.proprio_given:
            p_tok = p_tok + self.proprio_tau_in(timestep_features(tau if tau_p is None else tau_p, c.d_model))
        elif tau_p is not None:
            raise ValueError("this dynamics model has one noise level per frame (trained without proprio_given)")
        x = torch.cat([self.patch_in(self._patches(latents)), p_tok[:, :, None]], dim=2)
        if c.residual:
            if prev is None:
                raise ValueError("a residual dynamics model needs the previous frames (prev)")
            z_prev, p_prev = prev
            x = x + torch.cat([self.prev_patch_in(self._patches(z_prev)), self.prev_proprio_in(p_prev)[:, :, None]], 2)
        x = x + self.pos
        act = torch.cat([actions_in.flatten(2), has_action[..., None].float()], dim=-1)
        cond = self.action_in(act) + self.tau_in(timestep_features(tau, c.d_model))  # (B, T, d)
        return x.flatten(1, 2), cond

    def heads(self, x_BND, cond_BTD, T: int, inputs=None) -> DynamicsOutput:
        """Output heads; a residual model also needs `inputs` = (latents, proprio, tau, prev) of the frames."""
        c, p = self.cfg, self.cfg.patch
        shift, scale = self.ada_out(cond_BTD).chunk(2, dim=-1)
        h = modulate(self.norm_out(x_BND), shift, scale)
        h = rearrange(h, "b (t n) d -> b t n d", t=T)
        g = c.grid // p
        lat = rearrange(
            self.patch_out(h[:, :, : c.patches]), "b t (v h w) (c p1 p2) -> b t v c (h p1) (w p2)",
            v=c.views, h=g, w=g, p1=p, p2=p,
        )  # fmt: skip
        prop = self.proprio_out(h[:, :, -1])
        if c.residual:  # x_hat = previous frame + change, as a velocity
            z_tau, p_tau, tau, (z_prev, p_prev) = inputs
            lat, prop = velocity_from_x(z_prev + lat, z_tau, tau), velocity_from_x(p_prev + prop, p_tau, tau)
        tok = rearrange(x_BND, "b (t n) d -> b t n d", t=T)
        ptok = tok[:, :, -1]
        success = None
        if c.success_head:
            success = self.success_out(torch.cat([ptok, tok[:, :, :-1].mean(2)], dim=-1)).squeeze(-1)
        return DynamicsOutput(lat, prop, self.value_out(ptok).squeeze(-1), success)

    # ---- whole windows (training) ----
    def forward(self, latents, proprio, actions_in, has_action, tau, frame0: int = 0, prev=None, context=None,
                tau_p=None):
        """A window (B, T, ...) -> DynamicsOutput, each frame attending to its own and earlier frames.

        With `context` = (latents, proprio, tau) of the same T frames at a context signal level (teacher
        forcing), the window is run twice in one sequence, as a rollout sees it: each frame of `latents` at
        its own noise level attends only to itself and to the *context* copies of the earlier frames, the
        context copies attend causally among themselves. Returns (output of the noisy frames, output of the
        context copies); the noisy frame t's output equals `step` on a cache holding context frames < t."""
        B, T = tau.shape
        N = self.cfg.tokens_per_frame
        x, cond = self.tokens(latents, proprio, actions_in, has_action, tau, prev, tau_p)
        frame_N = torch.arange(T, device=x.device).repeat_interleave(N) + frame0
        q, k = frame_N[:, None], frame_N[None, :]
        mask = q >= k  # block-causal: attend to own frame and the past
        if context is not None:  # one sequence: [context copies, noisy frames]
            z_c, p_c, tau_c = context
            x_c, cond_c = self.tokens(z_c, p_c, actions_in, has_action, tau_c, prev)
            mask = torch.cat([torch.cat([mask, torch.zeros_like(mask)], 1),  # copies: causal among themselves
                              torch.cat([q > k, q == k], 1)], 0)  # noisy frames: earlier copies + themselves
            x, cond, frame_N = torch.cat([x_c, x], 1), torch.cat([cond_c, cond], 1), torch.cat([frame_N, frame_N])
        for blk in self.blocks:
            x, _, _ = blk(x, cond, frame_N, mask)
        if context is None:
            return self.heads(x, cond, T, (latents, proprio, tau, prev))
        TN = T * N
        return (self.heads(x[:, TN:], cond[:, T:], T, (latents, proprio, tau, prev)),
                self.heads(x[:, :TN], cond[:, :T], T, (z_c, p_c, tau_c, prev)))  # fmt: skip

    # ---- one frame against a KV cache (sampling) ----
    def step(self, latents, proprio, actions_in, has_action, tau, cache: KVCache, commit: bool,
             prev=None, tau_p=None) -> DynamicsOutput:  # fmt: skip
        """One new frame (T = 1) attending to the cached past; `commit` appends its keys/values."""
        N = self.cfg.tokens_per_frame
        x, cond = self.tokens(latents, proprio, actions_in, has_action, tau, prev, tau_p)
        frame_N = torch.full((N,), cache.frames, device=x.device)
        for i, blk in enumerate(self.blocks):
            pk = cache.k[i] if i < len(cache.k) else None
            pv = cache.v[i] if i < len(cache.v) else None
            x, k, v = blk(x, cond, frame_N, None, pk, pv)
            if commit:
                cache.append(i, k, v)
        if commit:
            cache.frames += 1
        return self.heads(x, cond, 1, (latents, proprio, tau, prev))
