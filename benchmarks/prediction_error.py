"""Prediction error of world models on the judged policies' recorded episodes (never trained on), per
number of Euler steps per frame:

- one step: from `window - 1` real (clean) frames, the next frame, against the previous frame repeated
  ("still") and, for proprio, constant velocity: a model worse than "still" cannot hold a scene;
- open loop: from an episode's first frame with its logged actions, the distance between the imagined and
  the real hand position (the first three proprio dimensions: metres in MetaWorld) after 1, 8, 24 and 47
  frames, the drift a policy acting in imagination steers against.

One Euler step from pure noise is the flow's estimate of the mean next frame. `--proprio-nets` measures each
model again with each proprio net (`wmeval train-proprio`) predicting its proprio. Example (the models of a
bench run and of its ablations):

    python benchmarks/prediction_error.py \
        --models runs/bench-cpu/wm-heldout/model,runs/bench-cpu/ablations/teacher-forcing/wm-s0/model \
        --policies 'bc-*-n40-*' --episodes 48 --out docs/results/prediction_error.json
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from wmeval.data.store import EpisodeStore, atomic_write_text
from wmeval.eval.quality import one_step_report, select_keys
from wmeval.model.proprio import load_proprio_net
from wmeval.model.rollout import predict
from wmeval.model.world_model import WorldModel, load_world_model

HORIZONS = (1, 4, 8, 24, 47)


@torch.no_grad()
def open_loop_hand_error(model: WorldModel, store: EpisodeStore, keys: list[str], batch: int = 16) -> dict:
    """Mean distance between imagined and real hand position (proprio[:3]) after each horizon, open loop
    from the first frame (episodes shorter than the longest horizon + 1 are skipped)."""
    H = max(HORIZONS)
    keys = [k for k in keys if store.meta(k).length > H]
    errs = []
    for i in range(0, len(keys), batch):
        eps = [store.load(k, verify=False) for k in keys[i : i + batch]]
        frames, proprio = (torch.from_numpy(np.stack([np.array(x[:1]) for x in xs]))
                           for xs in ([e.frames for e in eps], [e.proprio for e in eps]))  # fmt: skip
        actions = torch.from_numpy(np.stack([np.array(e.actions[:H]) for e in eps]))
        pred = predict(model, frames, proprio, actions, torch.Generator().manual_seed(0))
        real = np.stack([np.array(e.proprio[1 : H + 1]) for e in eps])
        errs.append(np.linalg.norm(pred.proprio.numpy()[..., :3] - real[..., :3], axis=-1))
    e = np.concatenate(errs) if errs else np.full((0, H), np.nan)
    return {"episodes": len(keys), **{f"hand_error_{h}": float(e[:, h - 1].mean()) for h in HORIZONS}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", required=True, help="comma-separated world-model checkpoints (RUN/model)")
    ap.add_argument("--store", help="episodes to predict (default: each model's training store)")
    ap.add_argument("--policies", default="bc-*-n40-*", help="whose episodes (glob patterns, comma-separated)")
    ap.add_argument("--episodes", type=int, default=48)
    ap.add_argument("--euler-steps", default="1,2,4,8")
    ap.add_argument("--proprio-nets", default="", help="comma-separated proprio nets: each model is measured "
                    "without and with each (the nets must fit every model)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", help="write the rows as JSON here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    print("| model | Euler steps | one step: latent MSE (still) | proprio MAE (still / constant velocity) | "
          f"open loop: hand error at {' / '.join(map(str, HORIZONS))} frames |")
    print("|---|---|---|---|---|")
    for path in args.models.split(","):
        model, meta = load_world_model(path)
        store = EpisodeStore(args.store or meta["data"]["store"])
        keys = select_keys(meta, store, tuple(args.policies.split(",")), args.episodes)
        for net, steps in ((n, int(s)) for n in ["", *filter(None, args.proprio_nets.split(","))]
                           for s in args.euler_steps.split(",")):  # fmt: skip
            model.proprio_with(load_proprio_net(net)[0] if net else None)
            model.cfg = replace(model.cfg, sample_steps=steps)
            r = one_step_report(model, store, keys, 16, 0) | open_loop_hand_error(model, store, keys)
            rows.append({"model": path, "proprio_net": net or None, "euler_steps": steps, **r})
            hand = " / ".join(f"{r[f'hand_error_{h}']:.3f}" for h in HORIZONS)
            name = f"{path} + {net}" if net else path
            print(f"| {name} | {steps} | {r['latent_mse']:.4f} ({r['latent_mse_still']:.4f}) | "
                  f"{r['proprio_mae']:.4f} ({r['proprio_mae_still']:.4f} / {r['proprio_mae_constant_velocity']:.4f}) | "
                  f"{hand} |", flush=True)  # fmt: skip
    if args.out:
        atomic_write_text(Path(args.out), json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
