"""Metrics with hand-checkable definitions: AUROC, image PSNR and SSIM."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve = P(score of a random positive > score of a random negative), ties
    counting one half (the Mann-Whitney U statistic). NaN when one class is absent."""
    scores, labels = np.asarray(scores, float), np.asarray(labels, bool)
    pos, neg = scores[labels], scores[~labels]
    if not len(pos) or not len(neg):
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


def psnr(a_u8: torch.Tensor, b_u8: torch.Tensor) -> torch.Tensor:
    """PSNR in dB per leading index: images uint8 (N, ..., H, W, 3) -> (N,)."""
    mse = ((a_u8.float() - b_u8.float()) / 255).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1 / mse.clamp_min(1e-10))


def sharpness(img_u8: torch.Tensor, where: torch.Tensor | None = None) -> torch.Tensor:
    """Mean absolute difference between neighbouring pixels, across and down, on [0, 1] images: uint8
    (N, H, W, 3) -> (N,); `where` bool (N, H, W) restricts the mean to those pixels (0 where it holds none).
    Blur lowers it, so imagined over real sharpness where reality moves says how much detail of the arm and
    what it pushes (a gripper's fingers, a window's bars) a world model keeps: 1 is as sharp as reality."""
    x = img_u8.float() / 255
    corner = x[:, :-1, :-1]
    g = ((x[:, :-1, 1:] - corner).abs() + (x[:, 1:, :-1] - corner).abs()).mean(-1) / 2  # (N, H - 1, W - 1)
    if where is None:
        return g.flatten(1).mean(1)
    w = where[:, :-1, :-1].float()
    return (g * w).flatten(1).sum(1) / w.flatten(1).sum(1).clamp_min(1)


def _gaussian(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size).float() - size // 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim(a_u8: torch.Tensor, b_u8: torch.Tensor) -> torch.Tensor:
    """Structural similarity (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03) on
    [0, 1] images, averaged over pixels and channels: uint8 (N, H, W, 3) -> (N,)."""
    x = a_u8.float().permute(0, 3, 1, 2) / 255
    y = b_u8.float().permute(0, 3, 1, 2) / 255
    C = x.shape[1]
    w = _gaussian().to(x)[None, None].expand(C, 1, -1, -1)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, w, groups=C)

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1)
