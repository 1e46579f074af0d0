"""`wmeval collect` end to end on a small MetaWorld run: store, resume, table, degradation ordering."""

import json
import os

import pytest

from wmeval.cli import main
from wmeval.collect import collect
from wmeval.data.check import check_store
from wmeval.data.store import EpisodeStore
from wmeval.reality.metaworld import MetaWorldConfig
from wmeval.zoo import load_zoo, parse_zoo

CFG = MetaWorldConfig(image_size=32, max_steps=120)


def test_collect_resume_and_table(tmp_path):
    zoo = load_zoo("tiny")
    root = tmp_path / "store"
    first = collect(root, zoo, ("button-press-topdown",), 2, CFG, workers=1, progress=False)
    assert first.new == 6 and first.skipped == 0 and not first.errors
    store = EpisodeStore(root)
    keys = store.keys()
    victim = store.path(keys[0])
    original = store.load(keys[0])
    original_frames = original.frames.copy()
    victim.unlink()  # as if that episode had never been committed
    second = collect(root, zoo, ("button-press-topdown",), 2, CFG, workers=1, progress=False)
    assert second.new == 1 and second.skipped == 5  # only the missing episode is re-run
    redone = store.load(keys[0])
    assert (redone.frames == original_frames).all()  # and it is identical: seeds make runs repeatable
    tagged = {m.policy for m in store.index()}
    assert tagged == {"expert", "noise-1.0", "freeze-0"}
    assert check_store(root, progress=False).ok
    doc = json.loads((root / "true_success.json").read_text())
    rates = {r["policy"]: r for r in doc["rows"]}
    assert rates["expert"]["rate"] == 1.0 and rates["freeze-0"]["rate"] == 0.0
    assert rates["expert"]["episodes"] == 2 and 0 <= rates["expert"]["low"] < 1
    assert doc["store_fingerprint"] == store.fingerprint()


def test_degradation_strength_orders_success(tmp_path):
    zoo = parse_zoo(
        {
            "policy": [
                {"name": f"noise-{s}", "base": "expert", "degrade": [{"kind": "noise", "std": s}]}
                for s in (0.0, 1.5, 4.0)
            ]
            + [{"name": "frozen", "base": "expert", "degrade": [{"kind": "freeze", "after": 0}]}]
        },
        "strength.toml",
    )
    res = collect(tmp_path / "s", zoo, ("drawer-open",), 6, CFG, workers=2, progress=False)
    rate = {r.policy: r.rate for r in res.rows}
    assert rate["noise-0.0"] >= rate["noise-1.5"] >= rate["noise-4.0"] >= rate["frozen"]
    assert rate["noise-0.0"] == 1.0 and rate["frozen"] == 0.0


def test_cli_errors_are_one_line_and_exit_2(tmp_path, capsys):
    assert main(["collect", "--out", str(tmp_path / "x"), "--zoo", "tiny", "--tasks", "pick", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown MetaWorld task 'pick'") and "pick-place" in err
    assert main(["check", str(tmp_path / "missing")]) == 2
    assert "not an episode store" in capsys.readouterr().err


def test_store_with_other_layout_is_refused(tmp_path, capsys):
    root = tmp_path / "s"
    base = f"collect --out {root} --zoo tiny --tasks reach --policies freeze-0 --episodes 1 --no-progress".split()
    assert main([*base, "--image-size", "32", "--max-steps", "8"]) == 0
    assert main([*base, "--image-size", "48", "--max-steps", "8"]) == 2
    assert "image_size: 32 vs 48" in capsys.readouterr().err
    assert main(base) == 0  # left-out options follow the store


@pytest.mark.parametrize("corrupt", [True])
def test_check_cli_reports_bad_episode(tmp_path, capsys, corrupt):
    root = tmp_path / "s"
    main(
        f"collect --out {root} --zoo tiny --tasks reach --episodes 1 --image-size 32 --max-steps 8 --no-progress".split()
    )
    store = EpisodeStore(root)
    path = store.path(store.keys()[0])
    path.write_bytes(path.read_bytes()[:-10])
    assert main(["check", str(root), "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert f"BAD {store.keys()[0]}" in out and "2/3 episodes ok" in out


def test_killed_collect_resumes_without_loss(tmp_path):
    """SIGKILL a running `wmeval collect`, run it again: it finishes the rest and the store checks clean."""
    import signal
    import subprocess
    import sys
    import time

    root = tmp_path / "s"
    args = f"collect --out {root} --zoo tiny --tasks reach --episodes 6 --workers 2 --image-size 32 --max-steps 80"
    cmd = [sys.executable, "-m", "wmeval.cli", *args.split(), "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(root.glob("episodes/*/*/*.safetensors"))) < 3:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the collector and its workers, mid-run
    proc.wait()
    done_before = len(EpisodeStore(root))
    assert 3 <= done_before < 18
    assert check_store(root, progress=False).ok
    assert main(cmd[3:]) == 0
    assert len(EpisodeStore(root)) == 18
    rep = check_store(root, progress=False)
    assert rep.ok and not rep.leftovers


def test_learned_policy_rollouts_land_in_the_store_tagged(tmp_path):
    from wmeval.policies.train_bc import BCTrainConfig, train_bc

    cfg = MetaWorldConfig(image_size=32, max_steps=16)
    root = tmp_path / "store"
    collect(root, load_zoo("tiny").select(["expert"]), ("reach",), 3, cfg, workers=1, progress=False)
    ckpt = train_bc(
        BCTrainConfig(
            store=str(root),
            task="reach",
            out=str(tmp_path / "runs" / "bc"),
            successful_only=False,
            episodes=2,
            val_episodes=1,
            steps=4,
            save_every=4,
            eval_every=4,
            batch_size=8,
            device="cpu",
        ),
        progress=False,
    )
    zoo_file = tmp_path / "runs" / "zoo.toml"
    zoo_file.write_text(
        '[[policy]]\nname = "bc"\nbase = "checkpoint"\ncheckpoint = "bc/step_000004"\n'
        '[[policy]]\nname = "bc-laggy"\nbase = "checkpoint"\ncheckpoint = "bc/step_000004"\n'
        'degrade = [{ kind = "latency", steps = 4 }]\n'
    )
    zoo = load_zoo(zoo_file)
    assert zoo.policy("bc").tasks == ("reach",)  # runs on its training task by default
    res = collect(root, zoo, ("reach", "push"), 2, cfg, seed=100, workers=1, progress=False)
    assert res.new == 4 and not res.errors
    store = EpisodeStore(root)
    meta = store.meta("reach/bc-laggy/000100")
    assert meta.policy == "bc-laggy" and meta.policy_spec["base"] == "checkpoint"
    assert meta.policy_spec["checkpoint"] == str(ckpt)
    assert meta.policy_spec["degrade"] == [{"kind": "latency", "steps": 4}]
    tags = meta.policy_spec["tags"]
    assert tags["variant"] == "cnn-proprio" and tags["step"] == 4 and tags["train_episodes"] == 2
    assert check_store(root, progress=False).ok

    with pytest.raises(ValueError, match=r"image_size: 32 vs 48"):  # refused before any episode runs
        collect(tmp_path / "other", zoo, ("reach",), 1, MetaWorldConfig(image_size=48, max_steps=16), progress=False)
    bad = tmp_path / "runs" / "bad.toml"
    bad.write_text('[[policy]]\nname = "x"\nbase = "checkpoint"\ncheckpoint = "nope/step_1"\n')
    with pytest.raises(ValueError, match=r"policy\[0\] \(x\): checkpoint 'nope/step_1'.*not a checkpoint"):
        load_zoo(bad)
