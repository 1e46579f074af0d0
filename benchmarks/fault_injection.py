"""Fault-injection campaign: kill -9 at random moments, and a disk that fills up, for every long command.

For each command (collect with 2 workers, policy train, train, evaluate) an uninterrupted reference run is
made first. Then, per trial, the same command is started in a fresh directory, killed with SIGKILL (its whole
process group, workers included) after a random share of the reference's wall time, and run again to the
end. Checked after every trial:
- collect: the store passes `check`, no temporary file is visible, and every episode is byte-identical
  (sha256 over its tensors) to the reference's: episodes lost or corrupt = 0;
- policy train / train: the final weights are bit-identical to the reference's, and the steps lost (steps
  logged before the kill minus the checkpoint the rerun resumed from) are at most one save interval;
  train trials record which phase was killed (codec, latent cache, dynamics);
- evaluate: the final evaluation.json (verdicts, rule, replay) equals the reference's.
With --disk-full (root, Linux): each command writes to a tmpfs too small to finish; it must stop with one
`error:` line and exit code 2, leave what it had stored intact, and finish identically to the reference once
the filesystem is enlarged.

    python benchmarks/fault_injection.py --trials 20 --out runs/faults --disk-full   # ~15 min on 2 cores

Prints a table and writes OUT/fault_injection.json. Micro sizes: this measures the fault handling, not the
models. Run on demand, not in CI.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

WMEVAL = [sys.executable, "-m", "wmeval.cli"]
TASK = "button-press-topdown"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"), "LP_NUM_THREADS": "1"}


def commands(base: Path) -> dict[str, callable]:
    """Each command as a function of its output directory (the store and zoo come from the setup)."""
    store, zoo, model = base / "store", base / "grid" / "zoo.toml", base / "ref-train" / "model"
    return {
        "collect": lambda out: ["collect", "--zoo", "tiny", "--tasks", TASK, "--episodes", "4", "--image-size", "32",
                                "--max-steps", "80", "--workers", "2", "--out", str(out), "--no-progress"],
        "policy-train": lambda out: ["policy", "train", "--store", str(store), "--task", TASK, "--out", str(out),
                                     "--episodes", "3", "--val-episodes", "1", "--steps", "120", "--save-every", "20",
                                     "--eval-every", "1", "--batch-size", "8", "--device", "cpu", "--no-progress"],
        "train": lambda out: ["train", "--store", str(store), "--out", str(out), "--window", "4", "--codec-steps", "40",
                              "--codec-batch", "8", "--steps", "80", "--batch-size", "4", "--save-every", "20",
                              "--eval-every", "1", "--val-fraction", "0.3", "--device", "cpu", "--no-progress"],
        "evaluate": lambda out: ["evaluate", "--model", str(model), "--zoo", str(zoo), "--out", str(out),
                                 "--episodes", "4", "--seed", "0", "--batch-size", "4", "--calibration-episodes",
                                 "32", "--videos", "0", "--device", "cpu", "--no-progress"],
    }  # fmt: skip


def run(args: list[str], log: Path) -> tuple[int, float, str]:
    t0 = time.perf_counter()
    with open(log, "a") as f:
        p = subprocess.run([*WMEVAL, *args], stdout=f, stderr=subprocess.PIPE, text=True, env=ENV)
        f.write(p.stderr)
    return p.returncode, time.perf_counter() - t0, p.stderr


def run_killed(args: list[str], after_s: float, log: Path) -> tuple[bool, float]:
    """Start, SIGKILL the whole process group after `after_s`: (whether it was still running, seconds run)."""
    t0 = time.perf_counter()
    with open(log, "a") as f:
        p = subprocess.Popen([*WMEVAL, *args], stdout=f, stderr=f, env=ENV, start_new_session=True)
        try:
            p.wait(timeout=after_s)
            return False, time.perf_counter() - t0
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            return True, after_s


def setup(base: Path) -> dict[str, float]:
    """The shared inputs (a store, a zoo of learned policies, a world model) and the reference runs."""
    base.mkdir(parents=True, exist_ok=True)
    log = base / "setup.log"
    c = commands(base)
    steps = [
        ("store", ["collect", "--zoo", "tiny", "--tasks", TASK, "--episodes", "10", "--image-size", "32",
                   "--max-steps", "80", "--workers", "2", "--out", str(base / "store"), "--no-progress"]),
        ("grid", ["policy", "grid", "--store", str(base / "store"), "--out", str(base / "grid"), "--tasks", TASK,
                  "--sizes", "3", "--variants", "cnn-proprio", "--checkpoints", "10,30", "--batch-size", "8",
                  "--device", "cpu", "--no-progress"]),
    ]  # fmt: skip
    ref_s = {}
    for name, args in steps:
        if not (base / name / ".done").is_file():
            shutil.rmtree(base / name, ignore_errors=True)
            rc, _, err = run(args, log)
            if rc:
                raise SystemExit(f"setup step {name} failed:\n{err}")
            (base / name / ".done").touch()
    for name in ("collect", "policy-train", "train", "evaluate"):  # train before evaluate: evaluate judges with it
        out = base / f"ref-{name}"
        shutil.rmtree(out, ignore_errors=True)
        rc, secs, err = run(c[name](out), log)
        if rc:
            raise SystemExit(f"reference run of {name} failed:\n{err}")
        ref_s[name] = secs
    return ref_s


def digest_store(root: Path) -> dict[str, str]:
    from wmeval.data.store import EpisodeStore

    s = EpisodeStore(root)
    return {m.key: m.digest for m in s.index()}


def file_digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else ""


def final_weights(name: str, out: Path) -> str:
    if name == "train":
        return file_digest(out / "model" / "model.safetensors")
    steps = sorted(out.glob("step_*"))
    return file_digest(steps[-1] / "model.safetensors") if steps else ""


def verdicts(out: Path) -> str:
    p = out / "evaluation.json"
    if not p.is_file():
        return ""
    d = json.loads(p.read_text())
    return json.dumps({k: d.get(k) for k in ("policies", "rule", "replay", "calibration")}, sort_keys=True)


def _max_step(log: Path) -> int:
    if not log.is_file():
        return 0
    steps = [json.loads(line).get("step", 0) for line in log.read_text().splitlines() if line.strip().startswith("{")]
    return max(steps, default=0)


def _ckpt_step(d: Path) -> int:
    steps = [int(p.name.split("_")[1]) for p in d.glob("step_*") if p.is_dir() and p.name.split("_")[1].isdigit()]
    return max(steps, default=0)


def progress_at_kill(name: str, out: Path) -> dict:
    """Which phase was interrupted and how many logged steps the last checkpoint does not hold."""
    if name == "policy-train":
        return {"phase": "bc", "lost": _max_step(out / "train_log.jsonl") - _ckpt_step(out)}
    if name == "train":
        dyn = out / "dynamics"
        if (dyn / "log.jsonl").is_file():
            return {"phase": "dynamics", "lost": _max_step(dyn / "log.jsonl") - _ckpt_step(dyn)}
        if (out / "latents.safetensors").is_file() or _ckpt_step(out / "codec") >= 40:
            return {"phase": "latent cache", "lost": 0}
        return {"phase": "codec", "lost": _max_step(out / "codec" / "log.jsonl") - _ckpt_step(out / "codec")}
    return {"phase": name, "lost": 0}


def outcome(name: str, base: Path, out: Path) -> dict:
    """Compare a finished run with the reference."""
    ref = base / f"ref-{name}"
    if name == "collect":
        from wmeval.data.check import check_store
        from wmeval.data.store import EpisodeStore

        got, want = digest_store(out), digest_store(ref)
        lost = sum(1 for k in want if got.get(k) != want[k])
        temps = EpisodeStore(out).temp_files()
        return {"identical": lost == 0 and check_store(out, progress=False).ok and not temps, "episodes_lost": lost}
    if name == "evaluate":
        return {"identical": verdicts(out) == verdicts(ref) != ""}
    return {"identical": final_weights(name, out) == final_weights(name, ref) != ""}


def resume_args(name: str, args: list[str]) -> list[str]:
    return [*args, "--resume"] if name == "policy-train" else args


def kill_trials(base: Path, ref_s: dict[str, float], trials: int, rng: random.Random, only: set[str]) -> list[dict]:
    rows, c = [], commands(base)
    for name, make in c.items():
        if name not in only:
            continue
        for i in range(trials):
            out = base / "trials" / f"{name}-{i:02d}"
            shutil.rmtree(out, ignore_errors=True)
            after = rng.uniform(0.05, 0.95) * ref_s[name]
            log = base / "trials" / f"{name}-{i:02d}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            killed, ran = run_killed(make(out), after, log)
            if not killed:  # it finished sooner than the reference did (a busier machine then): aim earlier
                ref_s[name] = min(ref_s[name], ran)
            at_kill = progress_at_kill(name, out) if killed else {"phase": "finished", "lost": 0}
            rc, _, err = run(resume_args(name, make(out)), log)
            result = outcome(name, base, out) if rc == 0 else {"identical": False, "error": err[-300:]}
            row = {"command": name, "trial": i, "kill_after_s": round(after, 2), "killed": killed, **at_kill,
                   "resume_rc": rc, **result}  # fmt: skip
            rows.append(row)
            print(json.dumps(row), flush=True)
            shutil.rmtree(out, ignore_errors=True)
    return rows


def disk_full_trials(base: Path, only: set[str]) -> list[dict]:
    """Each command on a tmpfs too small to finish, then enlarged: one error, nothing damaged, resumable."""
    rows, c = [], commands(base)
    for name, make in c.items():
        if name not in only:
            continue
        ref = base / f"ref-{name}"
        need = sum(p.stat().st_size for p in ref.rglob("*") if p.is_file())
        mnt = base / "small-fs" / name
        mnt.mkdir(parents=True, exist_ok=True)
        size_kb = max(8, need // 2048)  # half of what the run needs
        if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(mnt)]).returncode:
            rows.append({"command": name, "disk_full": "skipped: cannot mount a tmpfs (needs root on Linux)"})
            continue
        try:
            out = mnt / "out"
            log = base / "small-fs" / f"{name}.log"
            rc, _, err = run(make(out), log)
            lines = [x for x in err.splitlines() if "error:" in x]
            intact = True
            if name == "collect" and (out / "store.json").is_file():
                from wmeval.data.check import check_store

                intact = check_store(out, progress=False).ok
            subprocess.run(["mount", "-o", f"remount,size={max(64, need // 256)}k", str(mnt)], check=True)
            rc2, _, err2 = run(resume_args(name, make(out)), log)
            result = outcome(name, base, out) if rc2 == 0 else {"identical": False, "resume_error": err2[-300:]}
            row = {"command": name, "fs_kb": size_kb, "rc": rc, "one_error_line": len(lines) == 1,
                   "says_no_space": bool(lines) and "space" in lines[0].lower(),
                   "error": lines[0][:160] if lines else err[-200:], "stored_intact": intact, "resume_rc": rc2,
                   **result}  # fmt: skip
        finally:
            subprocess.run(["umount", str(mnt)])
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def table(rows: list[dict]) -> str:
    out = ["| command | trials | killed | phases killed | max steps lost | resumed OK | identical to uninterrupted |",
           "|---|---|---|---|---|---|---|"]  # fmt: skip
    for name in dict.fromkeys(r["command"] for r in rows if "trial" in r):
        rs = [r for r in rows if r.get("command") == name and "trial" in r]
        phases = sorted({r["phase"] for r in rs if r["killed"]})
        out.append(f"| {name} | {len(rs)} | {sum(r['killed'] for r in rs)} | {', '.join(phases)} | "
                   f"{max(r['lost'] for r in rs)} | {sum(r['resume_rc'] == 0 for r in rs)} | "
                   f"{sum(r['identical'] for r in rs)} |")  # fmt: skip
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=20, help="kills per command")
    ap.add_argument("--out", default="runs/faults")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--disk-full", action="store_true", help="also fill a small tmpfs (root, Linux)")
    ap.add_argument("--commands", default="collect,policy-train,train,evaluate",
                    help="which commands to put through the trials (comma-separated; references are made for all)")
    args = ap.parse_args()
    only = set(args.commands.split(","))
    base = Path(args.out)
    t0 = time.perf_counter()
    ref_s = setup(base)
    print("reference wall time (s):", {k: round(v, 1) for k, v in ref_s.items()}, flush=True)
    window = dict(ref_s)  # kills land in 5-95% of this; shrunk when a run finishes sooner than its reference
    rows = kill_trials(base, window, args.trials, random.Random(args.seed), only)
    if args.disk_full:
        rows += disk_full_trials(base, only)
    doc = {"date": time.strftime("%Y-%m-%d"), "trials": args.trials, "seed": args.seed, "kill_window_s": window,
           "wall_s": time.perf_counter() - t0, "rows": rows}  # fmt: skip
    (base / "fault_injection.json").write_text(json.dumps(doc, indent=1) + "\n")
    print(table(rows))
    for r in rows:
        if "fs_kb" in r or "disk_full" in r:
            print(json.dumps(r))


if __name__ == "__main__":
    main()
