"""How much of a policy's success survives seeing the world through the world model's frame codec?

In imagination a policy never sees a rendered frame: it sees frames decoded from latents. Even perfect
latent dynamics could not make a policy behave there as it does in reality if the codec's round trip
(encode, then decode) already changes what the policy does. This diagnostic runs the judged policies in
reality with every observed frame replaced by its codec round trip, and compares their true success with
the store's plain episodes on the same starts: the within-task ranking of the two is a ceiling on what any
dynamics trained on this codec can reach. Example (the bench's judged policies, 20 starts each):

    python benchmarks/codec_in_loop.py --store runs/bench-cpu/store --zoo runs/bench-cpu/policies/zoo.toml \
        --model runs/bench-cpu/wm-heldout/model --policies 'bc-*-n40-*' --episodes 20 \
        --out docs/results/codec_in_loop.json
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from wmeval.align.metrics import mae, spearman
from wmeval.data.store import EpisodeStore, atomic_write_text
from wmeval.model.world_model import WorldModel, load_world_model
from wmeval.reality import make_reality
from wmeval.reality.base import Reality
from wmeval.reality.metaworld import MetaWorldConfig
from wmeval.rollout import rollout
from wmeval.types import Observation
from wmeval.zoo import load_zoo


class ThroughCodec:
    """A reality whose observed frames are the codec's reconstruction of the rendered ones."""

    def __init__(self, env: Reality, model: WorldModel) -> None:
        self.env, self.model = env, model
        self.layout, self.task = env.layout, env.task

    def _see(self, obs: Observation) -> Observation:
        with torch.inference_mode():
            frames = self.model.decode(self.model.encode(torch.from_numpy(obs.images)[None]))[0].numpy()
        return Observation(frames, obs.state, obs.privileged)

    def start(self, seed: int):
        return self.env.start(seed)

    def reset(self, start):
        return self._see(self.env.reset(start))

    def step(self, chunk):
        obs, done, info = self.env.step(chunk)
        return self._see(obs), done, info

    def close(self) -> None:
        self.env.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", required=True, help="store holding the judged policies' plain episodes")
    ap.add_argument("--zoo", required=True)
    ap.add_argument("--model", required=True, help="world model whose codec the policies see through")
    ap.add_argument("--policies", default="bc-*-n40-*", help="judged policies (glob)")
    ap.add_argument("--episodes", type=int, default=20, help="starts per policy (store seeds from --seed)")
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--out", required=True, help="JSON file to write")
    args = ap.parse_args()
    torch.set_num_threads(1)

    store = EpisodeStore(args.store)
    L = store.layout
    config = MetaWorldConfig(views=L.views, image_size=L.image_size, frame_skip=L.frame_skip,
                             max_steps=L.horizon * L.frame_skip)  # fmt: skip
    zoo = load_zoo(args.zoo).select([args.policies])
    model, _ = load_world_model(args.model)
    seeds = range(args.seed, args.seed + args.episodes)
    plain = {(m.task, m.policy, m.seed): m.outcome for m in store.index()}
    rows, t0 = [], time.perf_counter()
    tasks = sorted({t for p in zoo.policies for t in (p.tasks or ())})
    for task in tasks:
        env = ThroughCodec(make_reality(L.suite, task, config), model)
        for spec in tqdm([p for p in zoo.policies if p.runs_on(task)], desc=task, unit="policy"):
            policy = spec.build(task, L)
            seen = [rollout(env, policy, env.start(s), spec.name, {}).success.any() for s in seeds]
            real = [plain[(task, spec.name, s)] for s in seeds]
            rows.append({"task": task, "policy": spec.name, "real": float(np.mean(real)),
                         "through_codec": float(np.mean(seen)),
                         "episodes_agree": float(np.mean(np.array(real) == np.array(seen)))})  # fmt: skip
        env.close()
    by_task = defaultdict(list)
    for r in rows:
        by_task[r["task"]].append(r)
    summary = {
        task: {"spearman": spearman(np.array([r["real"] for r in rs]), np.array([r["through_codec"] for r in rs])),
               "mae_points": 100 * mae(np.array([r["real"] for r in rs]), np.array([r["through_codec"] for r in rs])),
               "episodes_agree": float(np.mean([r["episodes_agree"] for r in rs]))}
        for task, rs in by_task.items()
    }  # fmt: skip
    summary["mean"] = {k: float(np.mean([s[k] for s in summary.values()])) for k in ("spearman", "mae_points",
                                                                                     "episodes_agree")}  # fmt: skip
    result = {"command": "python benchmarks/codec_in_loop.py " + " ".join(
        f"--{k} {v}" for k, v in vars(args).items()), "episodes_per_policy": args.episodes,
        "seconds": round(time.perf_counter() - t0, 1), "summary": summary, "policies": rows}  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(args.out), json.dumps(result, indent=2))
    for r in rows:
        print(f"{r['task']:22s} {r['policy']:50s} real {r['real']:.2f}  through codec {r['through_codec']:.2f}")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
