"""Frame codec: pixels (V views of H x W) <-> a compact latent grid per view (H/8 x W/8 x C).

A plain convolutional autoencoder, trained first on the store's frames and then frozen; the dynamics
model works on its (normalised) latents so training never touches video again.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


@dataclass(frozen=True)
class CodecConfig:
    image_size: int = 64
    latent_channels: int = 8
    widths: tuple[int, int, int] = (32, 64, 128)  # channels at H/2, H/4, H/8

    def __post_init__(self) -> None:
        if self.image_size % 8:
            raise ValueError(f"image_size must be divisible by 8, got {self.image_size}")

    @property
    def grid(self) -> int:
        return self.image_size // 8

    def to_json(self) -> dict:
        return asdict(self)


class ResBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.GroupNorm(8, c), nn.SiLU(), nn.Conv2d(c, c, 3, padding=1), nn.GroupNorm(8, c), nn.SiLU(),
            nn.Conv2d(c, c, 3, padding=1),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


class FrameCodec(nn.Module):
    """encode: uint8 (B, V, H, W, 3) -> latents (B, V, C, h, w); decode: the inverse, as floats in [-1, 1]."""

    def __init__(self, cfg: CodecConfig) -> None:
        super().__init__()
        self.cfg = cfg
        w1, w2, w3 = cfg.widths
        # No residual blocks at full resolution: they would dominate the cost for little gain at 64-128 px.
        self.encoder = nn.Sequential(
            nn.Conv2d(3, w1, 4, stride=2, padding=1), ResBlock(w1),
            nn.Conv2d(w1, w2, 4, stride=2, padding=1), ResBlock(w2),
            nn.Conv2d(w2, w3, 4, stride=2, padding=1), ResBlock(w3), ResBlock(w3),
            nn.GroupNorm(8, w3), nn.SiLU(), nn.Conv2d(w3, cfg.latent_channels, 3, padding=1),
        )  # fmt: skip
        self.decoder = nn.Sequential(
            nn.Conv2d(cfg.latent_channels, w3, 3, padding=1), ResBlock(w3), ResBlock(w3),
            nn.Upsample(scale_factor=2), nn.Conv2d(w3, w2, 3, padding=1), ResBlock(w2),
            nn.Upsample(scale_factor=2), nn.Conv2d(w2, w1, 3, padding=1), ResBlock(w1),
            nn.Upsample(scale_factor=2), nn.Conv2d(w1, w1, 3, padding=1),
            nn.GroupNorm(8, w1), nn.SiLU(), nn.Conv2d(w1, 3, 3, padding=1),
        )  # fmt: skip

    def encode(self, frames_BVHWC: torch.Tensor) -> torch.Tensor:
        B = frames_BVHWC.shape[0]
        x = rearrange(frames_BVHWC, "b v h w c -> (b v) c h w").float() / 127.5 - 1.0
        return rearrange(self.encoder(x), "(b v) c h w -> b v c h w", b=B)

    def decode(self, latents_BVChw: torch.Tensor) -> torch.Tensor:
        B = latents_BVChw.shape[0]
        # channels-last (NHWC) convolutions: 1.6x faster on a CPU than NCHW (measured at batch 64), and the
        # output is then already in the frames' (h, w, c) order (encode's input is NHWC to begin with)
        x = rearrange(latents_BVChw, "b v c h w -> (b v) c h w").contiguous(memory_format=torch.channels_last)
        return rearrange(self.decoder(x), "(b v) c h w -> b v h w c", b=B)  # floats, ~[-1, 1]

    def loss(self, frames_BVHWC: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        z = self.encode(frames_BVHWC)
        recon = self.decode(z)
        target = frames_BVHWC.float() / 127.5 - 1.0
        mse = F.mse_loss(recon, target)
        # L1 keeps edges sharp; the small latent penalty keeps the latent scale from drifting.
        loss = mse + 0.5 * F.l1_loss(recon, target) + 1e-4 * z.pow(2).mean()
        return loss, {"mse": mse.item(), "psnr": psnr_from_mse(mse.item() / 4.0)}


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Decoder output in [-1, 1] -> uint8 pixels."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def psnr_from_mse(mse_unit: float) -> float:
    """PSNR in dB for an MSE measured on pixels scaled to [0, 1]."""
    import math

    return 10 * math.log10(1.0 / max(mse_unit, 1e-10))
