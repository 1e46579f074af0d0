"""A still of real-vs-imagined GIFs (as `wmeval evaluate` and `wmeval quality` write them): one row per GIF,
one column per chosen frame, each cell the GIF's real | imagined pair, with a thin gap between cells.

    python scripts/gif_strip.py runs/bench-humanoid/eval-heldout/videos/*.gif --frames 0,8,16,24,32,48 \
        --out docs/results/humanoid_real_vs_imagined.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import imageio.v2 as imageio
import numpy as np


def strip(gifs: list[Path], frames: list[int], gap: int = 4) -> np.ndarray:
    rows = []
    for path in gifs:
        video = np.stack([f[..., :3] for f in imageio.mimread(path)])
        picks = [video[min(i, len(video) - 1)] for i in frames]
        h = picks[0].shape[0]
        cells = [c for p in picks for c in (p, np.full((h, gap, 3), 255, np.uint8))][:-1]
        rows += [np.concatenate(cells, axis=1), np.full((gap, sum(c.shape[1] for c in cells), 3), 255, np.uint8)]
    return np.concatenate(rows[:-1], axis=0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("gifs", nargs="+", type=Path)
    ap.add_argument("--frames", default="0,8,16,24,32,48", help="frame indices (clipped to each GIF's length)")
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args()
    image = strip(args.gifs, [int(i) for i in args.frames.split(",")])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(f".{args.out.name}.tmp.png")
    imageio.imwrite(tmp, image)
    tmp.replace(args.out)
    print(f"{args.out}: {len(args.gifs)} episodes x {args.frames}")


if __name__ == "__main__":
    main()
