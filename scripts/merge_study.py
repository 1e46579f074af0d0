"""Merge the finished data-study points of a bench run into a study JSON kept elsewhere (docs/results), and
redraw its figures: for a study whose points were run in different sessions, each on a fresh copy of the
same seeded bench data. A point of the run replaces the JSON's point of the same name.

    python scripts/merge_study.py runs/bench-cpu docs/results/metaworld_data_study.json --figures docs/results \
        --prefix metaworld_study_
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from wmeval.data.store import atomic_write_text
from wmeval.pipeline import make_config
from wmeval.study import ADVICE_BUDGET, PARTS, _point, headline_counts, plot_study, points


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", help="a `wmeval bench --preset PRESET` run directory holding study points")
    ap.add_argument("study", help="the study JSON to update (written atomically)")
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--figures", help="redraw the figures into this folder")
    ap.add_argument("--prefix", default="study-", help="figure file names: PREFIX{axis}.png")
    args = ap.parse_args()
    cfg = make_config(args.preset, args.run)
    study = json.loads(Path(args.study).read_text())
    if study.get("kind") != "wmeval-data-study":
        raise SystemExit(f"error: {args.study} is not a wmeval data study (its 'kind' is {study.get('kind')!r})")
    counts = headline_counts(cfg)
    rows = {r["name"]: r for r in study["points"]}
    for name, (axis, x, ab, where) in points(cfg, PARTS).items():
        path = Path(args.run) / where / "alignment.json"
        if path.is_file():
            n = ab.train.get("train_episodes", counts["train"]) + (ADVICE_BUDGET if axis == "advice" and x != "none"
                                                                    else 0)  # fmt: skip
            rows[name] = _point(name, axis, x, ab.what, json.loads(path.read_text()), n)
            print(f"merged {name} ({where})")
    study["points"] = list(rows.values())
    if args.figures:
        tmp = Path(args.figures) / ".merge-study"
        tmp.mkdir(parents=True, exist_ok=True)
        figures = []
        for f in plot_study(study["points"], tmp):
            dest = Path(args.figures) / f"{args.prefix}{Path(f).stem.removeprefix('study-')}.png"
            Path(f).replace(dest)
            figures.append(str(dest))
        tmp.rmdir()
        study["figures"] = figures
    atomic_write_text(Path(args.study), json.dumps(study, indent=1, default=float) + "\n")
    print(f"{len(rows)} points in {args.study}")


if __name__ == "__main__":
    main()
