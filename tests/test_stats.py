import pytest

from wmeval.stats import format_table, success_table, wilson_interval


@pytest.mark.parametrize(
    "k, n, low, high",
    [  # hand-computed from the Wilson formula with z = 1.96
        (0, 10, 0.0, 0.2775),
        (10, 10, 0.7225, 1.0),
        (5, 10, 0.2366, 0.7634),
        (1, 20, 0.0089, 0.2361),
    ],
)
def test_wilson_interval_matches_hand_computed(k, n, low, high):
    lo, hi = wilson_interval(k, n)
    assert lo == pytest.approx(low, abs=1e-4) and hi == pytest.approx(high, abs=1e-4)


def test_success_table_counts_per_task_and_policy():
    rows = success_table([("t", "a", True), ("t", "a", False), ("t", "b", True), ("u", "a", False)])
    by = {(r.task, r.policy): r for r in rows}
    assert (by["t", "a"].successes, by["t", "a"].episodes, by["t", "a"].rate) == (1, 2, 0.5)
    assert by["u", "a"].rate == 0.0 and by["t", "b"].rate == 1.0
    text = format_table(rows)
    assert "50%" in text and "Wilson" in text


def test_auroc_matches_hand_computed():
    import numpy as np

    from wmeval.metrics import auroc

    # positives 0.9, 0.4; negatives 0.5, 0.1: pairs won 3 of 4
    assert auroc(np.array([0.9, 0.4, 0.5, 0.1]), np.array([1, 1, 0, 0])) == 0.75
    assert auroc(np.array([0.5, 0.5]), np.array([1, 0])) == 0.5  # a tie counts one half
    assert np.isnan(auroc(np.array([0.2, 0.3]), np.array([1, 1])))


def test_psnr_and_ssim_of_identical_and_different_images():
    import torch

    from wmeval.metrics import psnr, ssim

    a = torch.randint(0, 255, (2, 16, 16, 3), dtype=torch.uint8)
    assert torch.allclose(ssim(a, a), torch.ones(2))
    assert (psnr(a, a) >= 99).all()
    b = (a.int() + 10).clamp(0, 255).to(torch.uint8)
    assert (psnr(a, b) < 30).all() and (ssim(a, 255 - a) < 0.5).all()


def test_sharpness_of_flat_checkered_and_blurred_images():
    import torch
    import torch.nn.functional as F

    from wmeval.metrics import sharpness

    flat = torch.full((1, 8, 8, 3), 128, dtype=torch.uint8)
    checks = ((torch.arange(8)[:, None] + torch.arange(8)[None]) % 2 * 255).to(torch.uint8)
    checks = checks[None, :, :, None].expand(1, 8, 8, 3)
    assert sharpness(flat).item() == 0 and sharpness(checks).item() == 1  # every neighbour differs by the full range
    stripes = torch.zeros(1, 8, 8, 3, dtype=torch.uint8)
    stripes[:, :, ::2] = 255  # columns alternate: every step across changes, none down
    assert sharpness(stripes).item() == 0.5
    blurred = F.avg_pool2d(checks[..., 0].float()[None], 3, 1, 1, count_include_pad=False)[0]
    blurred = blurred.round().to(torch.uint8)[..., None].expand(1, 8, 8, 3)
    assert 0 < sharpness(blurred).item() < sharpness(checks).item()
    where = torch.zeros(1, 8, 8, dtype=torch.bool)
    where[:, :3] = True  # the top rows only (their neighbours down are row 3 at most)
    half = checks.clone()
    half[:, 4:] = 128  # flat where it is not asked
    assert sharpness(half, where).item() == 1 and sharpness(half).item() < 1
    assert sharpness(flat, torch.zeros(1, 8, 8, dtype=torch.bool)).item() == 0  # nothing asked: 0, not NaN
