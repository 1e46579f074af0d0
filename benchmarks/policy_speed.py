"""Behaviour-cloning policy speed: training steps/s and inference (queries/s, actions/s) per variant.

    python benchmarks/policy_speed.py [--device cpu|cuda] [--image-size 64] [--seconds 5]

Synthetic inputs of the default MetaWorld layout (one view, 4-d proprio, chunks of 4 actions of dim 4);
the numbers are pure network cost (no simulator, no data loading).
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from wmeval.policies.bc import BCModelConfig, BCPolicyNet, random_shift


def rate(fn, seconds: float) -> float:
    fn()  # warm-up
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return n / (time.perf_counter() - t0)


def bench(cfg: BCModelConfig, dev: torch.device, batch: int, seconds: float) -> dict[str, float]:
    net = BCPolicyNet(cfg).to(dev)
    opt = torch.optim.AdamW(net.parameters(), lr=3e-4)
    S = cfg.image_size
    imgs = torch.randint(0, 255, (batch, 1, S, S, 3), dtype=torch.uint8)
    state = torch.randn(batch, cfg.state_dim, device=dev) if cfg.use_proprio else None
    target = torch.rand(batch, cfg.chunk_len, cfg.action_dim, device=dev) * 2 - 1

    def train_step():
        loss = torch.nn.functional.mse_loss(net(random_shift(imgs, 4).to(dev), state), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    out = {"params": sum(p.numel() for p in net.parameters()) / 1e6, "train": rate(train_step, seconds)}
    net.eval()
    for b in (1, 64):
        x, s = imgs[:b].to(dev), None if state is None else state[:b]
        with torch.inference_mode():
            out[f"infer{b}"] = rate(lambda x=x, s=s: net(x, s), seconds)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=5.0)
    args = ap.parse_args()
    dev = torch.device(args.device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    B = args.batch_size
    print(f"device: {name}, torch {torch.__version__}, {os.cpu_count()} cores")
    print(
        f"| variant | params | train steps/s (batch {B}) | train frames/s | infer queries/s (batch 1) "
        "| infer actions/s (batch 1) | infer actions/s (batch 64) |"
    )
    print("|---|---|---|---|---|---|---|")
    for encoder in ("cnn", "vit"):
        for proprio in (True, False):
            cfg = BCModelConfig(encoder=encoder, use_proprio=proprio, image_size=args.image_size)
            r = bench(cfg, dev, B, args.seconds)
            K = cfg.chunk_len
            print(
                f"| {cfg.variant} | {r['params']:.2f} M | {r['train']:.1f} | {r['train'] * B:,.0f} "
                f"| {r['infer1']:,.0f} | {r['infer1'] * K:,.0f} | {r['infer64'] * 64 * K:,.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
