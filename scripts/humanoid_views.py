"""The picture of the humanoid suite in the README: for each default task, what the 64 px head camera sees
at the start, midway and at the end of an expert episode, beside the third-person `front` view at the end.

    python scripts/humanoid_views.py [--out docs/results/humanoid_views.png]
"""

from __future__ import annotations

import argparse

import numpy as np

from wmeval.reality import default_tasks, make_config, make_expert, make_reality


def strip(task: str, seed: int = 0) -> np.ndarray:
    env = make_reality("humanoid", task, make_config("humanoid", views=("head", "front")))
    expert = make_expert("humanoid", task, env.layout.frame_skip)
    obs = env.reset(env.start(seed))
    frames, done = [obs], False
    while not done:
        obs, done, _ = env.step(expert.act(obs))
        frames.append(obs)
    env.close()
    picks = [frames[0], frames[len(frames) // 3], frames[-1]]
    tiles = [f.images[0] for f in picks] + [frames[-1].images[1]]
    return np.concatenate([np.pad(t, ((2, 2), (2, 2), (0, 0)), constant_values=255) for t in tiles], axis=1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="docs/results/humanoid_views.png")
    args = ap.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [strip(t) for t in default_tasks("humanoid")]
    big = np.repeat(np.repeat(np.concatenate(rows, axis=0), 3, axis=0), 3, axis=1)  # 64 px shown at 3x, unsmoothed
    plt.imsave(args.out, big)
    print(f"wrote {args.out}: rows {', '.join(default_tasks('humanoid'))}; columns: head camera at the start, "
          "a third of the way, the end; front camera at the end")


if __name__ == "__main__":
    main()
