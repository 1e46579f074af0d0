"""A catalogue of bad inputs across every command: each gives exactly one `error:` line that names what is
wrong, where, and how to fix it, exits with code 2, and leaves every store and run directory byte-identical.

Each case is (id, setup, argv, pattern): `setup(w, tmp)` writes whatever broken file the case needs under
`tmp` and returns a dict of names for the argv template; `w` is the shared fake world (conftest.world:
store, zoo of learned policies, world model); `pattern` must be found in the error line.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest

from wmeval.cli import main


def digest(*roots: Path) -> str:
    """One digest over every file under `roots` (relative path + bytes), to prove nothing was touched."""
    h = hashlib.sha256()
    for root in roots:
        for p in sorted(Path(root).rglob("*")):
            if p.is_file():
                h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _copy_model(w, tmp: Path) -> Path:
    dst = tmp / "model"
    shutil.copytree(w["model"], dst)
    return dst


def _truncated_weights(w, tmp):
    m = _copy_model(w, tmp)
    data = (m / "model.safetensors").read_bytes()
    (m / "model.safetensors").write_bytes(data[: len(data) // 2])
    return {"model": m}


def _bad_model_json(w, tmp):
    m = _copy_model(w, tmp)
    (m / "config.json").write_text("{not json")
    return {"model": m}


def _model_missing_key(w, tmp):
    m = _copy_model(w, tmp)
    cfg = json.loads((m / "config.json").read_text())
    del cfg["model"]
    (m / "config.json").write_text(json.dumps(cfg))
    return {"model": m}


def _policy_as_model(w, tmp):
    from wmeval.zoo import load_zoo

    return {"model": load_zoo(w["zoo"]).policies[0].checkpoint}


def _bad_store_json(w, tmp):
    s = tmp / "store"
    shutil.copytree(w["store"].root, s)
    (s / "store.json").write_text("{oops")
    return {"store": s}


def _store_missing_layout_key(w, tmp):
    s = tmp / "store"
    shutil.copytree(w["store"].root, s)
    meta = json.loads((s / "store.json").read_text())
    meta["layout"].pop("image_size")
    (s / "store.json").write_text(json.dumps(meta))
    return {"store": s}


def _zoo(text):
    return lambda w, tmp: {"zoo": _write(tmp / "zoo.toml", text)}


def _eval_dir(text):
    def setup(w, tmp):
        _write(tmp / "ev" / "evaluation.json", text)
        return {"ev": tmp / "ev"}

    return setup


def _nothing(w, tmp):
    return {}


STORE, MODEL, ZOO = "{store}", "{model}", "{zoo}"
CASES = [
    # collect
    ("collect-missing-zoo", _nothing, ["collect", "--zoo", "{tmp}/none.toml", "--out", "{tmp}/s"], r"none\.toml"),
    ("collect-bad-toml", _zoo("[[policy]\nname = 'x'"), ["collect", "--zoo", ZOO, "--out", "{tmp}/s"], r"zoo\.toml"),
    ("collect-unknown-degradation", _zoo("[[policy]]\nname = 'x'\nbase = 'expert'\ndegrade = [{kind = 'wobble'}]\n"),
     ["collect", "--zoo", ZOO, "--out", "{tmp}/s"], r"wobble"),
    ("collect-unknown-base", _zoo("[[policy]]\nname = 'x'\nbase = 'oracle'\n"),
     ["collect", "--zoo", ZOO, "--out", "{tmp}/s"], r"oracle"),
    ("collect-zero-episodes", _nothing, ["collect", "--zoo", "tiny", "--episodes", "0", "--out", "{tmp}/s"],
     r"episodes"),
    ("collect-unknown-task", _nothing, ["collect", "--zoo", "tiny", "--tasks", "fly-to-moon", "--out", "{tmp}/s"],
     r"fly-to-moon"),
    ("collect-into-other-layout", _nothing, ["collect", "--zoo", "tiny", "--out", STORE, "--episodes", "1"],
     r"'fake' episodes.*new --out"),
    # check / table
    ("check-no-store", _nothing, ["check", "{tmp}/nowhere"], r"nowhere"),
    ("check-bad-store-json", _bad_store_json, ["check", STORE], r"store\.json"),
    ("table-layout-missing-key", _store_missing_layout_key, ["table", STORE], r"image_size"),
    # policy
    ("policy-train-no-store", _nothing, ["policy", "train", "--store", "{tmp}/nowhere", "--task", "reach", "--out",
                                         "{tmp}/p"], r"nowhere"),
    ("policy-train-no-demos", _nothing, ["policy", "train", "--store", STORE, "--task", "reach", "--source", "nobody",
                                         "--out", "{tmp}/p", "--device", "cpu"], r"nobody"),
    ("policy-grid-bad-sizes", _nothing, ["policy", "grid", "--store", STORE, "--tasks", "reach", "--sizes", "ten",
                                         "--out", "{tmp}/g"], r"ten"),
    # train
    ("train-no-store", _nothing, ["train", "--store", "{tmp}/nowhere", "--out", "{tmp}/wm"], r"nowhere"),
    ("train-unknown-task", _nothing, ["train", "--store", STORE, "--out", "{tmp}/wm", "--tasks", "swim"], r"swim"),
    ("train-zero-steps", _nothing, ["train", "--store", STORE, "--out", "{tmp}/wm", "--steps", "0"], r"steps"),
    ("train-bad-val-fraction", _nothing, ["train", "--store", STORE, "--out", "{tmp}/wm", "--val-fraction", "1.5"],
     r"val_fraction"),
    ("train-window-too-long", _nothing, ["train", "--store", STORE, "--out", "{tmp}/wm", "--window", "99",
                                         "--codec-steps", "1", "--device", "cpu"], r"99 frames"),
    ("train-everything-excluded", _nothing, ["train", "--store", STORE, "--out", "{tmp}/wm", "--exclude-policies", "*"],
     r"--exclude-policies \*"),
    ("train-codec-from-nothing", _nothing, ["train", "--store", STORE, "--out", "{tmp}/wm", "--codec-from",
                                            "{tmp}/nowhere", "--window", "4", "--device", "cpu"], r"nowhere"),
    # quality
    ("quality-no-model", _nothing, ["quality", "--model", "{tmp}/nowhere"], r"nowhere"),
    ("quality-truncated-weights", _truncated_weights, ["quality", "--model", MODEL], r"model\.safetensors"),
    ("quality-bad-config-json", _bad_model_json, ["quality", "--model", MODEL], r"config\.json"),
    ("quality-config-missing-key", _model_missing_key, ["quality", "--model", MODEL], r"config\.json"),
    ("quality-policy-checkpoint-as-model", _policy_as_model, ["quality", "--model", MODEL], r"world-model"),
    ("quality-unknown-policies", _nothing, ["quality", "--model", "{wm}", "--policies", "nobody-*"], r"nobody"),
    # evaluate
    ("evaluate-no-zoo", _nothing, ["evaluate", "--model", "{wm}", "--zoo", "{tmp}/none.toml", "--out", "{tmp}/ev"],
     r"none\.toml"),
    ("evaluate-zero-episodes", _nothing, ["evaluate", "--model", "{wm}", "--zoo", "{wzoo}", "--out", "{tmp}/ev",
                                          "--episodes", "0"], r"episodes"),
    ("evaluate-unknown-policy", _nothing, ["evaluate", "--model", "{wm}", "--zoo", "{wzoo}", "--out", "{tmp}/ev",
                                           "--policies", "nobody"], r"nobody"),
    ("evaluate-bad-context-tau", _nothing, ["evaluate", "--model", "{wm}", "--zoo", "{wzoo}", "--out", "{tmp}/ev",
                                            "--context-tau", "2"], r"context_tau"),
    ("evaluate-scripted-policy", _zoo("[[policy]]\nname = 'x'\nbase = 'expert'\n"),
     ["evaluate", "--model", "{wm}", "--zoo", ZOO, "--out", "{tmp}/ev", "--device", "cpu"], r"'x'"),
    ("evaluate-unknown-task", _nothing, ["evaluate", "--model", "{wm}", "--zoo", "{wzoo}", "--out", "{tmp}/ev",
                                         "--tasks", "swim"], r"swim"),
    ("evaluate-out-under-a-file", lambda w, tmp: {"f": _write(tmp / "afile", "x")},
     ["evaluate", "--model", "{wm}", "--zoo", "{wzoo}", "--out", "{f}/ev", "--device", "cpu"], r"afile"),
    ("table-json-to-a-directory", _nothing, ["table", STORE, "--json", "{tmp}"], r"Is a directory"),
    # align / report
    ("align-no-evaluation", _nothing, ["align", "{tmp}/nowhere"], r"nowhere"),
    ("align-bad-json", _eval_dir("{oops"), ["align", "{ev}"], r"evaluation\.json"),
    ("align-json-missing-key", _eval_dir('{"kind": "evaluation"}'), ["align", "{ev}"], r"evaluation\.json"),
    ("report-no-alignment", _nothing, ["report", "{tmp}/none.json", "--out", "{tmp}/r.html"], r"none\.json"),
    ("report-bad-json", lambda w, tmp: {"al": _write(tmp / "al.json", "[1, 2")},
     ["report", "{al}", "--out", "{tmp}/r.html"], r"al\.json"),
    # bench / zoo
    ("bench-unknown-ablation", _nothing, ["bench", "--preset", "cpu", "--out", "{tmp}/b", "--ablation", "magic"],
     r"magic"),
    ("zoo-missing-file", _nothing, ["zoo", "{tmp}/none.toml"], r"none\.toml"),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_one_clear_error_and_touches_nothing(case, world, tmp_path, capsys):
    _, setup, argv, pattern = case
    names = {"tmp": tmp_path, "store": world["store"].root, "wm": world["model"], "wzoo": world["zoo"]}
    names |= setup(world, tmp_path)
    args = [a.format(**{k: str(v) for k, v in names.items()}) for a in argv]
    kept = [world["store"].root, world["model"].parent.parent, Path(world["zoo"]).parent, tmp_path]
    before = digest(*kept)
    try:
        rc = main(args)
    except SystemExit as e:  # argparse: usage + one error line
        rc = e.code
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert rc == 2, err
    assert len(errors) == 1 and "Traceback" not in err, err
    assert re.search(pattern, errors[0]), errors[0]
    assert digest(*kept) == before, "a failed command changed files"
