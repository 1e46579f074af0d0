"""World-model speed: training throughput (and MFU on a GPU) and imagination frames/s, with and without
the KV cache, next to the FLOPs-per-frame bound.

    python benchmarks/world_model_speed.py --preset tiny                      # CPU
    python benchmarks/world_model_speed.py --preset tiny --latent-channels 8 --codec-width 32   # the cpu preset
    python benchmarks/world_model_speed.py --preset small --device cuda --peak-tflops 780 --batches 1,64,256

FLOPs are counted analytically: 2 * (multiply-adds) for every matmul of the dynamics transformer
(projections, MLP, attention scores and mixing) and the codec decoder's convolutions; training counts
forward + backward = 3x the dynamics forward (the codec is frozen).
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace

import torch

from wmeval.model.world_model import Window, WorldModel, preset, sized


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, dev: torch.device, min_s: float) -> float:
    """Seconds per call, after one warm-up call."""
    fn()
    sync(dev)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < min_s or n < 2:
        fn()
        n += 1
    sync(dev)
    return (time.perf_counter() - t0) / n


def matmul_gflops(dev: torch.device, n: int = 2048, seconds: float = 2.0) -> float:
    """The machine's measured dense matmul rate (fp32 on a CPU, bf16 on a GPU): the yardstick for every
    GFLOP/s below."""
    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    a, b = torch.randn(n, n, device=dev, dtype=dtype), torch.randn(n, n, device=dev, dtype=dtype)
    return 2 * n**3 / timed(lambda: a @ b, dev, seconds) / 1e9


def dynamics_flops(wm: WorldModel, q_tokens: int, kv_tokens: int) -> float:
    """Forward FLOPs of the dynamics for q_tokens queries attending to kv_tokens keys."""
    c = wm.cfg.dynamics
    d, L = c.d_model, c.depth
    per_layer = 2 * q_tokens * (3 * d * d + d * d + 2 * d * int(d * c.mlp_ratio))  # qkv, out, MLP
    per_layer += 2 * 2 * q_tokens * kv_tokens * d  # scores and mixing
    return L * per_layer


def decoder_flops(wm: WorldModel) -> float:
    total, size = 0.0, wm.cfg.codec.grid
    for m in wm.codec.decoder.modules():
        if isinstance(m, torch.nn.Upsample):
            size *= 2
        if isinstance(m, torch.nn.Conv2d):
            k = m.kernel_size[0] * m.kernel_size[1]
            total += 2 * m.in_channels * m.out_channels * k * size * size
    return total * wm.cfg.dynamics.views


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--d-model", type=int, help="override the preset's width (with --depth, --heads: size sweeps)")
    ap.add_argument("--depth", type=int)
    ap.add_argument("--heads", type=int)
    ap.add_argument("--patch", type=int, help="latent cells per token side (the presets' 2)")
    ap.add_argument("--latent-channels", type=int, help="override the codec's latent channels (with --codec-width)")
    ap.add_argument("--codec-width", type=int, help="the codec's channels at H/2 (doubled at H/4 and H/8)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16, help="training batch")
    ap.add_argument("--batches", default="1,64,256", help="imagination batch sizes")
    ap.add_argument("--peak-tflops", type=float, default=0.0, help="for MFU (H100 bf16 measured: 780)")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--bf16", action="store_true", default=None)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--read-metrics", action="store_true",
                    help="read the loss metrics on the host every step (a device sync each), as the training loop "
                         "did before it read them every 10 steps")
    ap.add_argument("--teacher-forcing", action="store_true", help="train with context copies (2x the tokens)")
    args = ap.parse_args()
    dev = torch.device(args.device)
    bf16 = dev.type == "cuda" if args.bf16 is None else args.bf16
    torch.manual_seed(0)
    cfg = preset(args.preset, args.image_size, 1, 4, 4, 4)
    cfg = sized(cfg, args.latent_channels, args.codec_width, d_model=args.d_model, depth=args.depth, heads=args.heads,
                patch=args.patch)  # fmt: skip
    cfg = replace(cfg, teacher_forcing=args.teacher_forcing)
    wm = WorldModel(cfg).to(dev)
    c = cfg.dynamics
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    n_params = sum(p.numel() for p in wm.dynamics.parameters())
    print(f"device: {name}; torch {torch.__version__}; {os.cpu_count()} cores; preset {args.preset} "
          f"(dynamics {n_params / 1e6:.2f} M params, d={c.d_model}, depth {c.depth}, "
          f"{c.tokens_per_frame} tokens/frame, window {cfg.window}); bf16={bf16}")  # fmt: skip
    peak = matmul_gflops(dev, seconds=args.seconds)
    print(f"measured matmul rate (2048 x 2048, {'bf16' if dev.type == 'cuda' else 'fp32'}): {peak:,.0f} GFLOP/s")

    # ---- training ----
    B, T, N = args.batch_size, cfg.window, c.tokens_per_frame
    w = Window(torch.randn(B, T, 1, c.latent_channels, c.grid, c.grid), torch.randn(B, T, c.state_dim),
               torch.randn(B, T, c.chunk_len, c.action_dim), torch.ones(B, T, dtype=torch.bool),
               torch.rand(B, T)).to(dev)  # fmt: skip
    opt = torch.optim.AdamW(wm.dynamics.parameters(), lr=1e-4)
    loss_fn = torch.compile(wm.loss) if args.compile else wm.loss

    def train_step():
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
            loss, m = loss_fn(w)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if args.read_metrics:
            _ = [v.item() for v in m.values()]

    s = timed(train_step, dev, args.seconds)
    L = T * N * (2 if cfg.teacher_forcing else 1)  # teacher forcing: the window and its context copies
    flops = 3 * B * dynamics_flops(wm, L, L) / 2  # block-causal: ~half the attention pairs (rough)
    mfu = f", MFU {100 * flops / s / (args.peak_tflops * 1e12):.1f}%" if args.peak_tflops else ""
    print(f"train: {1 / s:.2f} steps/s, {B * T / s:,.0f} frames/s, {flops / s / 1e9:.1f} GFLOP/s "
          f"({100 * flops / s / 1e9 / peak:.0f}% of the measured matmul rate){mfu}")  # fmt: skip

    # ---- imagination ----
    wm.eval()
    steps = cfg.sample_steps
    print(f"imagination ({steps} Euler steps + 1 commit pass per frame, context {cfg.window} frames):")
    print("| batch | KV cache frames/s | GFLOP/s (% of matmul) | no-cache frames/s | cache speed-up | bound frames/s "
          "(FLOPs) |")
    print("|---|---|---|---|---|---|")
    for b in map(int, args.batches.split(",")):
        s_cached, s_full = imagination_seconds(wm, b, dev, bf16, args.seconds)
        per_frame = (steps + 1) * dynamics_flops(wm, N, cfg.window * N) + decoder_flops(wm)
        bound = (
            f"{args.peak_tflops * 1e12 / per_frame:,.0f}" if args.peak_tflops else f"{per_frame / 1e6:.1f} MFLOP/frame"
        )
        rate = b * per_frame / s_cached / 1e9
        print(f"| {b} | {b / s_cached:,.0f} | {rate:.1f} ({100 * rate / peak:.0f}%) | {b / s_full:,.0f} | "
              f"{s_full / s_cached:.1f}x | {bound} |", flush=True)


@torch.no_grad()
def imagination_seconds(wm: WorldModel, b: int, dev: torch.device, bf16: bool, seconds: float) -> tuple[float, float]:
    """Seconds per generated frame batch with the KV cache (prefill excluded: it is paid once per rollout)
    and without it (every denoising pass recomputes the whole context window)."""
    cfg, c = wm.cfg, wm.cfg.dynamics
    W, steps = cfg.window, cfg.sample_steps
    ctx = torch.randn(b, W - 1, 1, c.latent_channels, c.grid, c.grid, device=dev)
    pctx = torch.randn(b, W - 1, c.state_dim, device=dev)
    a_in = torch.randn(b, W - 1, c.chunk_len, c.action_dim, device=dev)
    has = torch.ones(b, W - 1, dtype=torch.bool, device=dev)
    chunk = torch.randn(b, c.chunk_len, c.action_dim, device=dev)

    def cached() -> float:
        cache, _ = wm.start(ctx, pctx, a_in, has)
        sync(dev)
        t0 = time.perf_counter()
        z, _, _ = wm.next_frame(cache, chunk)
        wm.decode(z)
        sync(dev)
        return time.perf_counter() - t0

    def uncached() -> None:
        z = torch.randn(b, 1, 1, c.latent_channels, c.grid, c.grid, device=dev)
        p = torch.randn(b, 1, c.state_dim, device=dev)
        for k in range(steps + 1):
            tau = torch.cat([torch.ones(b, W - 1, device=dev), torch.full((b, 1), k / steps, device=dev)], 1)
            acts = torch.cat([a_in, chunk[:, None]], 1)
            wm.dynamics(torch.cat([ctx, z], 1), torch.cat([pctx, p], 1), acts, torch.cat([has, has[:, :1]], 1), tau)
        wm.decode(z[:, 0])

    with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
        cached()
        reps, total, t_end = 0, 0.0, time.perf_counter() + seconds
        while time.perf_counter() < t_end or reps < 2:
            total += cached()
            reps += 1
        return total / reps, timed(uncached, dev, seconds)


if __name__ == "__main__":
    main()
