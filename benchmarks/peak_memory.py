"""Peak memory of `wmeval train` and `wmeval evaluate` at two data sizes (a small and a 4x larger one).

Each run is a fresh process; its peak resident set size (and peak anonymous memory) is sampled from
/proc while it runs. What should not grow with the number of episodes: evaluate streams episodes in batches (its
working set is the batch), train holds the latent cache of its episodes (a few KB per frame: 64 px at the
`tiny` preset is 256 floats per frame) plus a fixed model and optimiser. Needs a store with several
policies per task, e.g. the bench's:

    python benchmarks/peak_memory.py --store runs/bench-cpu/store --zoo runs/bench-cpu/policies/zoo.toml \
        --model runs/bench-cpu/wm-heldout/model --out runs/peak-memory
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

WMEVAL = [sys.executable, "-m", "wmeval.cli"]


def _status(pid: int) -> dict[str, float]:
    """VmHWM (peak resident set), RssAnon and RssFile of a running process, in MB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmHWM", "RssAnon", "RssFile"):
                out[key] = int(rest.split()[0]) / 1024
    return out


def peak_mb(args: list[str]) -> tuple[float, float, float]:
    """(peak resident set, peak anonymous memory, in MB; wall seconds) of one wmeval command in a child
    process, sampled from /proc every 20 ms. Anonymous memory is what the process itself allocated; the
    rest of the resident set is file pages it has mapped (episodes, the latent cache), which the kernel can
    drop and re-read under memory pressure."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([*WMEVAL, *args], stdout=subprocess.DEVNULL)
    hwm = anon = 0.0
    while proc.poll() is None:
        try:
            s = _status(proc.pid)
        except (FileNotFoundError, ProcessLookupError):
            break
        hwm, anon = max(hwm, s.get("VmHWM", 0.0)), max(anon, s.get("RssAnon", 0.0))
        time.sleep(0.02)
    if proc.wait() != 0:
        raise SystemExit(f"wmeval {' '.join(args)} failed with exit code {proc.returncode}")
    return hwm, anon, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", required=True)
    ap.add_argument("--zoo", required=True, help="zoo with learned policies to judge")
    ap.add_argument("--model", required=True, help="a world model trained on --store")
    ap.add_argument("--policies", default="bc-*-n40-s1000", help="judged policies (glob)")
    ap.add_argument("--tasks", default="drawer-open,button-press-topdown,window-open",
                    help="train: the small size uses the first task, the large one all of them")
    ap.add_argument("--episodes", default="10,40", help="evaluate: episodes per policy, small and large")
    ap.add_argument("--out", default="runs/peak-memory")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in map(int, args.episodes.split(",")):
        run = out / f"eval-{n}"
        shutil.rmtree(run, ignore_errors=True)  # a fresh run each time, never a resumed (finished) one
        mb, anon, s = peak_mb(["evaluate", "--model", args.model, "--zoo", args.zoo, "--policies", args.policies,
                               "--out", str(run), "--episodes", str(n), "--videos", "0", "--no-replay",
                               "--no-progress"])  # fmt: skip
        rows.append({"command": "evaluate", "size": f"{n} episodes per policy", "peak_mb": round(mb),
                     "peak_anon_mb": round(anon), "wall_s": round(s)})  # fmt: skip
        print(rows[-1], flush=True)
    tasks = args.tasks.split(",")
    for sel in (tasks[:1], tasks):
        run = out / f"train-{len(sel)}"
        shutil.rmtree(run, ignore_errors=True)
        mb, anon, s = peak_mb(["train", "--store", args.store, "--out", str(run), "--tasks", ",".join(sel),
                         "--codec-steps", "20", "--steps", "20", "--eval-every", "20", "--save-every", "20",
                         "--no-progress"])  # fmt: skip
        cfg = json.loads((run / "model" / "config.json").read_text())
        rows.append({"command": "train", "size": f"{cfg['data']['episodes']} episodes ({len(sel)} tasks)",
                     "peak_mb": round(mb), "peak_anon_mb": round(anon), "wall_s": round(s)})  # fmt: skip
        print(rows[-1], flush=True)
    doc = {"date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count(), "rows": rows}
    (out / "peak_memory.json").write_text(json.dumps(doc, indent=1) + "\n")
    print("| command | size | peak RSS (MB) | peak anonymous (MB) | wall (s) |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['command']} | {r['size']} | {r['peak_mb']} | {r['peak_anon_mb']} | {r['wall_s']} |")


if __name__ == "__main__":
    main()
