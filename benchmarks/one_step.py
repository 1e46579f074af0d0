"""One-step prediction error of world models against baselines that ignore the actions, per sampler setting.

From `window - 1` real (clean) frames, each model predicts the next frame of the judged policies' recorded
episodes (never trained on) with 1, 2, 4 or 8 Euler steps; the error is compared with the previous frame
repeated ("still") and, for proprio, constant velocity. A model worse than "still" cannot hold a scene
over a rollout. One Euler step from pure noise is the flow's estimate of the mean next frame. Example
(the models of a bench run and of its ablations):

    python benchmarks/one_step.py \
        --models runs/bench-cpu/wm-heldout/model,runs/bench-cpu/ablations/teacher-forcing/wm-s0/model \
        --policies 'bc-*-n40-*' --episodes 48 --out docs/results/one_step.json
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import torch

from wmeval.data.store import EpisodeStore, atomic_write_text
from wmeval.eval.quality import one_step_report, select_keys
from wmeval.model.world_model import load_world_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", required=True, help="comma-separated world-model checkpoints (RUN/model)")
    ap.add_argument("--store", help="episodes to predict (default: each model's training store)")
    ap.add_argument("--policies", default="bc-*-n40-*", help="whose episodes (glob patterns, comma-separated)")
    ap.add_argument("--episodes", type=int, default=48)
    ap.add_argument("--euler-steps", default="1,2,4,8")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", help="write the rows as JSON here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    print("| model | Euler steps | latent MSE (still) | proprio MAE (still / constant velocity) |")
    print("|---|---|---|---|")
    for path in args.models.split(","):
        model, meta = load_world_model(path)
        store = EpisodeStore(args.store or meta["data"]["store"])
        keys = select_keys(meta, store, tuple(args.policies.split(",")), args.episodes)
        for steps in (int(s) for s in args.euler_steps.split(",")):
            model.cfg = replace(model.cfg, sample_steps=steps)
            r = one_step_report(model, store, keys, 16, 0)
            rows.append({"model": path, "euler_steps": steps, "episodes": len(keys), **r})
            print(f"| {path} | {steps} | {r['latent_mse']:.4f} ({r['latent_mse_still']:.4f}) | "
                  f"{r['proprio_mae']:.4f} ({r['proprio_mae_still']:.4f} / {r['proprio_mae_constant_velocity']:.4f}) |",
                  flush=True)  # fmt: skip
    if args.out:
        atomic_write_text(Path(args.out), json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
