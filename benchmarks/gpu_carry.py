"""Pack what `benchmarks/gpu_closed_loop.sh` needs on a GPU machine into one small folder (under 64 MiB): the
CPU headline's trained `tiny` world model (weights only), one learned policy per task (the n40 cnn-proprio
runs at step 1000) with a zoo file, and a store of the recorded starts (the first 8 evaluation seeds per task).

    python benchmarks/gpu_carry.py --run runs/bench-cpu --out .devcarry
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from wmeval.data.store import EpisodeStore


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", default="runs/bench-cpu", help="a finished `wmeval bench --preset cpu` run")
    ap.add_argument("--out", default=".devcarry")
    ap.add_argument("--starts", type=int, default=8, help="recorded starts per task, from seed 1000 on")
    args = ap.parse_args()
    run, out = Path(args.run), Path(args.out)
    tasks = EpisodeStore(run / "store").index()
    tasks = sorted({m.task for m in tasks})
    weights = ("config.json", "model.safetensors")  # no optimizer state
    (out / "wm-tiny").mkdir(parents=True, exist_ok=True)
    for f in weights:
        shutil.copy(run / "wm-heldout" / "model" / f, out / "wm-tiny" / f)
    zoo = ['[zoo]\nname = "gpu-closed-loop"\nsuite = "metaworld"\n']
    for task in tasks:
        (out / "policies" / task).mkdir(parents=True, exist_ok=True)
        for f in weights:
            shutil.copy(run / "policies" / task / "cnn-proprio-n40" / "step_001000" / f, out / "policies" / task / f)
        zoo.append(f'[[policy]]\nname = "bc-{task}"\nbase = "checkpoint"\ncheckpoint = "policies/{task}"\n')
    (out / "zoo.toml").write_text("\n".join(zoo))
    src = EpisodeStore(run / "store")
    shutil.rmtree(out / "store", ignore_errors=True)
    dst = EpisodeStore.create(out / "store", src.layout)
    seen = set()
    for m in src.index():
        if 1000 <= m.seed < 1000 + args.starts and (m.task, m.seed) not in seen:
            seen.add((m.task, m.seed))
            dst.append(src.load(m.key))
    print(f"{out}: world model, {len(tasks)} policies, {len(seen)} recorded starts")


if __name__ == "__main__":
    main()
