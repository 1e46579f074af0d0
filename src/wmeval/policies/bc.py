"""Behaviour-cloning policy networks: camera views (+ optional proprio) -> a chunk of K actions.

Two encoder variants, as in the architecture A/B tests of the 1X report: a small CNN and a small ViT.
The proprio-free variant has no proprio input at all, so it cannot read it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

ENCODERS = ("cnn", "vit")


@dataclass(frozen=True)
class BCModelConfig:
    encoder: str = "cnn"
    use_proprio: bool = True
    views: int = 1
    image_size: int = 64
    state_dim: int = 4
    action_dim: int = 4
    chunk_len: int = 4  # K control steps per predicted chunk
    width: int = 256  # per-view feature width and MLP hidden width
    vit_dim: int = 128
    vit_depth: int = 4
    vit_heads: int = 4
    patch: int = 8

    def __post_init__(self) -> None:
        if self.encoder not in ENCODERS:
            raise ValueError(f"unknown encoder {self.encoder!r}; valid encoders: {', '.join(ENCODERS)}")
        if self.image_size % 8 or self.image_size % self.patch:
            raise ValueError(f"image_size ({self.image_size}) must be divisible by 8 and by patch ({self.patch})")
        if self.vit_dim % self.vit_heads:
            raise ValueError(f"vit_dim ({self.vit_dim}) must be divisible by vit_heads ({self.vit_heads})")

    @property
    def variant(self) -> str:
        return f"{self.encoder}-{'proprio' if self.use_proprio else 'noproprio'}"

    def to_json(self) -> dict:
        return asdict(self)


class CNNEncoder(nn.Module):
    """Three stride-2 convolutions (H -> H/8) and a linear map of the flattened grid: keeps the spatial
    layout that manipulation needs (global pooling would throw away where things are)."""

    def __init__(self, cfg: BCModelConfig) -> None:
        super().__init__()
        c = [3, 32, 64, 128]
        layers: list[nn.Module] = []
        for cin, cout in zip(c[:-1], c[1:], strict=True):
            layers += [nn.Conv2d(cin, cout, 4, stride=2, padding=1), nn.GroupNorm(8, cout), nn.GELU()]
        layers += [nn.Conv2d(128, 64, 3, padding=1), nn.GELU()]
        self.net = nn.Sequential(*layers)
        self.proj = nn.Linear(64 * (cfg.image_size // 8) ** 2, cfg.width)

    def forward(self, x_BCHW: torch.Tensor) -> torch.Tensor:
        return self.proj(self.net(x_BCHW).flatten(1))  # (B, width)


class ViTEncoder(nn.Module):
    """Patchify, a pre-norm transformer, and the CLS token (Dosovitskiy et al. 2020), at toy size."""

    def __init__(self, cfg: BCModelConfig) -> None:
        super().__init__()
        n = (cfg.image_size // cfg.patch) ** 2
        self.patchify = nn.Conv2d(3, cfg.vit_dim, cfg.patch, stride=cfg.patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, cfg.vit_dim))
        self.pos = nn.Parameter(torch.randn(1, n + 1, cfg.vit_dim) * 0.02)
        d = cfg.vit_dim
        layer = nn.TransformerEncoderLayer(
            d, cfg.vit_heads, 4 * d, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.blocks = nn.TransformerEncoder(layer, cfg.vit_depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.vit_dim)
        self.proj = nn.Linear(cfg.vit_dim, cfg.width)

    def forward(self, x_BCHW: torch.Tensor) -> torch.Tensor:
        tok_BND = rearrange(self.patchify(x_BCHW), "b d h w -> b (h w) d")
        tok_BND = torch.cat([self.cls.expand(len(tok_BND), -1, -1), tok_BND], dim=1) + self.pos
        return self.proj(self.norm(self.blocks(tok_BND)[:, 0]))  # (B, width)


class BCPolicyNet(nn.Module):
    """images uint8 (B, V, H, W, 3) [+ normalised proprio (B, S)] -> actions in [-1, 1] (B, K, A)."""

    def __init__(self, cfg: BCModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = CNNEncoder(cfg) if cfg.encoder == "cnn" else ViTEncoder(cfg)
        self.view_emb = nn.Parameter(torch.zeros(cfg.views, cfg.width))
        d_in = cfg.views * cfg.width
        if cfg.use_proprio:
            self.proprio = nn.Sequential(nn.Linear(cfg.state_dim, 64), nn.GELU())
            d_in += 64
        d_out = cfg.chunk_len * cfg.action_dim
        self.head = nn.Sequential(
            nn.Linear(d_in, 512), nn.GELU(), nn.Linear(512, 512), nn.GELU(), nn.Linear(512, d_out)
        )

    def forward(self, images_BVHWC: torch.Tensor, proprio_BS: torch.Tensor | None = None) -> torch.Tensor:
        B, V = images_BVHWC.shape[:2]
        assert V == self.cfg.views, f"expected {self.cfg.views} views, got {V}"
        x = rearrange(images_BVHWC, "b v h w c -> (b v) c h w").float() / 127.5 - 1.0
        feat_BVD = rearrange(self.encoder(x), "(b v) d -> b v d", b=B) + self.view_emb
        feats = [feat_BVD.flatten(1)]
        if self.cfg.use_proprio:
            assert proprio_BS is not None, "this policy variant reads proprio"
            feats.append(self.proprio(proprio_BS))
        out = self.head(torch.cat(feats, dim=-1))
        return torch.tanh(rearrange(out, "b (k a) -> b k a", k=self.cfg.chunk_len))


def random_shift(images_BVHWC: torch.Tensor, pad: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random-shift augmentation (Yarats et al. 2021, DrQ): replicate-pad by `pad`, crop back at a random
    offset per image. The single most useful regulariser for pixel BC with few demos."""
    B, V, H, W, C = images_BVHWC.shape
    x = rearrange(images_BVHWC, "b v h w c -> (b v) c h w").float()
    x = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    off = torch.randint(0, 2 * pad + 1, (B * V, 2), generator=generator)
    rows = off[:, 0, None] + torch.arange(H)  # (BV, H)
    cols = off[:, 1, None] + torch.arange(W)  # (BV, W)
    idx = torch.arange(B * V)[:, None, None, None]
    out = x[idx, torch.arange(C)[None, :, None, None], rows[:, None, :, None], cols[:, None, None, :]]
    return rearrange(out, "(b v) c h w -> b v h w c", b=B).to(images_BVHWC.dtype)
