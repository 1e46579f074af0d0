"""A zoo: a small declarative file naming the policies to run on a suite.

    [zoo]
    name = "my-zoo"
    suite = "metaworld"

    [[policy]]
    name = "expert-noisy"            # letters, digits, '.', '_', '-'
    base = "expert"                  # what acts: see BASES
    degrade = [{ kind = "noise", std = 0.5 }, { kind = "latency", steps = 4 }]
    tasks = ["push"]                 # optional: only these tasks (default: all)

    [[policy]]
    name = "bc-cnn-step2000"
    base = "checkpoint"              # a learned policy; relative paths are relative to the zoo file
    checkpoint = "runs/bc/push-cnn/step_002000"   # runs on its training task unless `tasks` says otherwise

    [[policy]]
    name = "mine"
    base = "python"                  # any callable: see wmeval.policies.external for the contract
    entry = "policies/reach.py:make" # or "package.module:factory"; a file is relative to the zoo file
    kwargs = { gain = 2.0 }          # passed to the factory

    [[policy]]
    name = "act-20k"
    base = "lerobot"                 # a LeRobot pretrained policy directory (needs the lerobot package)
    path = "outputs/act/checkpoints/020000/pretrained_model"
    cameras = { "observation.images.top" = "corner" }   # LeRobot camera key -> this layout's view

TOML or JSON (same structure). Every error names the file, the policy and the key.
"""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from wmeval.policies.base import Policy
from wmeval.policies.degrade import DEGRADATIONS, ActionGroups, Degradation, parse_degradation
from wmeval.reality import SUITES, Layout, action_groups, make_expert

BASES = {
    "expert": "the suite's scripted expert (reads privileged simulator state; reality only)",
    "checkpoint": "a learned policy from `wmeval policy train` (reads images + proprio); needs `checkpoint`",
    "python": "any Python callable obs -> actions, built by `entry` = 'module:factory' or 'file.py:factory' "
    "(+ `kwargs`)",
    "lerobot": "a LeRobot pretrained policy directory (`path`, optional `cameras` map); needs the lerobot package",
}
# the keys each base needs (first) and allows
BASE_KEYS = {"checkpoint": ("checkpoint",), "python": ("entry", "kwargs"), "lerobot": ("path", "cameras", "device")}
TABLE_KEYS = ("kwargs", "cameras")
IMAGINABLE = ("checkpoint", "python", "lerobot")  # bases that read only images and proprio
BUILTIN_ZOOS = {"default": "metaworld_default.toml", "tiny": "metaworld_tiny.toml", "humanoid": "humanoid_default.toml"}


def matches_any(name: str, patterns: list[str] | tuple[str, ...]) -> bool:
    """Whether `name` equals or glob-matches one of `patterns`."""
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


@dataclass(frozen=True)
class PolicySpec:
    name: str
    base: str
    degrade: tuple[Degradation, ...] = ()
    tasks: tuple[str, ...] | None = None
    checkpoint: str | None = None
    # the base's own keys (entry, kwargs, path, cameras, device); tables kept as JSON text, so a spec hashes
    options: tuple[tuple[str, str], ...] = ()

    def option(self, key: str, default: Any = None) -> Any:
        value = dict(self.options).get(key)
        return default if value is None else json.loads(value) if key in TABLE_KEYS else value

    def build(self, task: str, layout: Layout) -> Policy:
        policy: Policy
        if self.base == "checkpoint":
            from wmeval.policies.learned import for_layout

            policy = for_layout(self.checkpoint, task, layout)
        elif self.base == "python":
            from wmeval.policies.external import build_python

            policy = build_python(self.option("entry"), dict(self.option("kwargs", {})), task, layout)
        elif self.base == "lerobot":
            from wmeval.policies.external import build_lerobot

            policy = build_lerobot(self.option("path"), task, layout, dict(self.option("cameras", {})),
                                   self.option("device", "cpu"))  # fmt: skip
        else:
            policy = make_expert(layout.suite, task, chunk_len=layout.frame_skip)
        groups = ActionGroups(*action_groups(layout.suite, layout.action_dim))
        for i, d in enumerate(self.degrade):
            policy = d.wrap(policy, salt=i + 1, groups=groups)
        return policy

    def check(self, task: str, layout: Layout) -> None:
        """Fail early (before any episode runs) if this policy cannot act on `task` with `layout`."""
        if self.base == "checkpoint":
            from wmeval.policies.learned import LearnedPolicy

            LearnedPolicy.check_config(self.checkpoint, task, layout)
        elif self.base in ("python", "lerobot"):
            try:
                self.build(task, layout)
            except ValueError as e:
                raise ValueError(f"policy {self.name!r}: {e}") from None

    def runs_on(self, task: str) -> bool:
        return self.tasks is None or task in self.tasks

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "base": self.base, "degrade": [x.to_json() for x in self.degrade]}
        if self.tasks is not None:
            d["tasks"] = list(self.tasks)
        d |= {k: self.option(k) for k, _ in self.options}
        if self.checkpoint is not None:
            from wmeval.policies.learned import LearnedPolicy

            d["checkpoint"] = self.checkpoint
            d["tags"] = LearnedPolicy.read_tags(self.checkpoint)
        return d


@dataclass(frozen=True)
class Zoo:
    name: str
    suite: str
    policies: tuple[PolicySpec, ...]
    source: str = "<memory>"

    def policy(self, name: str) -> PolicySpec:
        for p in self.policies:
            if p.name == name:
                return p
        raise ValueError(f"{self.source}: no policy {name!r}; policies: {', '.join(p.name for p in self.policies)}")

    def select(self, names: list[str] | None) -> Zoo:
        """The named policies, in zoo order; a name may be a glob pattern (`bc-*-n40-*`)."""
        if not names:
            return self
        for n in names:
            if not any(fnmatch.fnmatchcase(p.name, n) for p in self.policies):
                self.policy(n)  # raises, listing the zoo's policies
        chosen = tuple(p for p in self.policies if matches_any(p.name, names))
        return Zoo(self.name, self.suite, chosen, self.source)


def parse_policy(d: Any, where: str, root: Path | None = None) -> PolicySpec:
    if not isinstance(d, dict):
        raise ValueError(f"{where}: a policy is a table, got {d!r}")
    allowed = {"name", "base", "degrade", "tasks"} | {k for keys in BASE_KEYS.values() for k in keys}
    unknown = sorted(set(d) - allowed)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
    name = d.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ValueError(f"{where}: 'name' must be 1-64 letters, digits, '.', '_' or '-', got {name!r}")
    where = f"{where} ({name})"
    base = d.get("base")
    if base not in BASES:
        raise ValueError(f"{where}: unknown base {base!r}; valid bases: {', '.join(BASES)}")
    degrade = d.get("degrade", [])
    if not isinstance(degrade, list):
        raise ValueError(f"{where}: 'degrade' must be a list of tables, got {degrade!r}")
    tasks = d.get("tasks")
    if tasks is not None and (not isinstance(tasks, list) or not all(isinstance(t, str) for t in tasks)):
        raise ValueError(f"{where}: 'tasks' must be a list of task names, got {tasks!r}")
    for b, keys in BASE_KEYS.items():
        if b != base and any(k in d for k in keys if k not in BASE_KEYS.get(base, ())):
            raise ValueError(f"{where}: {', '.join(repr(k) for k in keys if k in d)} belong(s) to base = \"{b}\"")
    if base in BASE_KEYS and BASE_KEYS[base][0] not in d:
        raise ValueError(f"{where}: base = \"{base}\" needs '{BASE_KEYS[base][0]}'")
    checkpoint = d.get("checkpoint")
    options = _options(base, d, root, where)
    if checkpoint is not None:
        checkpoint, ckpt_task = _resolve_checkpoint(str(checkpoint), root, where)
        tasks = tasks if tasks is not None else [ckpt_task]
    return PolicySpec(
        name=name,
        base=base,
        degrade=tuple(parse_degradation(x, f"{where}.degrade[{i}]") for i, x in enumerate(degrade)),
        tasks=tuple(tasks) if tasks is not None else None,
        checkpoint=checkpoint,
        options=options,
    )


def _options(base: str, d: dict, root: Path | None, where: str) -> tuple[tuple[str, str], ...]:
    """The python / lerobot keys, checked; paths made absolute (relative ones are relative to the zoo file)."""
    out: dict[str, Any] = {}
    if base == "python":
        from wmeval.policies.external import resolve_entry

        if not isinstance(d["entry"], str):
            raise ValueError(f"{where}: 'entry' must be a string 'module:factory', got {d['entry']!r}")
        out["entry"] = resolve_entry(d["entry"], root, where)
        if "kwargs" in d:
            if not isinstance(d["kwargs"], dict):
                raise ValueError(f"{where}: 'kwargs' must be a table of keyword arguments, got {d['kwargs']!r}")
            out["kwargs"] = d["kwargs"]
    elif base == "lerobot":
        p = Path(str(d["path"]))
        p = p if p.is_absolute() or root is None else root / p
        if not (p / "config.json").is_file():
            raise ValueError(f"{where}: path {str(p)!r} is not a LeRobot pretrained policy directory (no config.json)")
        out["path"] = str(p)
        cams = d.get("cameras", {})
        if not isinstance(cams, dict) or not all(isinstance(v, str) for v in cams.values()):
            raise ValueError(f"{where}: 'cameras' maps LeRobot camera keys to view names, got {cams!r}")
        if cams:
            out["cameras"] = cams
        if "device" in d:
            out["device"] = str(d["device"])
    return tuple((k, json.dumps(v, sort_keys=True) if k in TABLE_KEYS else v) for k, v in out.items())


def _resolve_checkpoint(path: str, root: Path | None, where: str) -> tuple[str, str]:
    """The checkpoint's path (relative ones are relative to the zoo file) and the task it was trained on."""
    from wmeval.checkpoint import CheckpointError, read_config

    p = Path(path)
    if not p.is_absolute() and root is not None:
        p = root / p
    try:
        cfg = read_config(p)
    except CheckpointError as e:
        raise ValueError(f"{where}: checkpoint {path!r}: {e}") from None
    return str(p), cfg.get("task", "")


def parse_zoo(data: Any, source: str, root: Path | None = None) -> Zoo:
    if not isinstance(data, dict):
        raise ValueError(f"{source}: a zoo is a table with [zoo] and [[policy]] entries")
    unknown = sorted(set(data) - {"zoo", "policy"})
    if unknown:
        raise ValueError(f"{source}: unknown top-level key(s) {', '.join(unknown)}; allowed: zoo, policy")
    head = data.get("zoo", {})
    suite = head.get("suite", "metaworld")
    if not isinstance(suite, str) or not NAME_RE.match(suite):
        raise ValueError(f"{source}: [zoo] suite must be a name like 'metaworld', got {suite!r}")
    policies = data.get("policy")
    if not isinstance(policies, list) or not policies:
        raise ValueError(f"{source}: no policies; add at least one [[policy]] table with 'name' and 'base'")
    specs = tuple(parse_policy(p, f"{source}: policy[{i}]", root) for i, p in enumerate(policies))
    seen: set[str] = set()
    for s in specs:
        if s.name in seen:
            raise ValueError(f"{source}: policy name {s.name!r} is used twice; names must be unique")
        seen.add(s.name)
    if suite not in SUITES and any(s.base == "expert" for s in specs):  # e.g. a real robot's imported data
        raise ValueError(f"{source}: [zoo] suite {suite!r} is unknown; valid suites: {', '.join(SUITES)} (a zoo of "
                         "another robot may hold checkpoint, python or lerobot policies, but no 'expert')")  # fmt: skip
    return Zoo(name=str(head.get("name", Path(source).stem)), suite=suite, policies=specs, source=source)


def load_zoo(path_or_name: str | Path) -> Zoo:
    """Load a zoo file (.toml or .json), or a built-in zoo by name (see BUILTIN_ZOOS)."""
    key = str(path_or_name)
    if key in BUILTIN_ZOOS:
        text = resources.files("wmeval.zoos").joinpath(BUILTIN_ZOOS[key]).read_text()
        return parse_zoo(tomllib.loads(text), f"<built-in zoo {key}>")
    path = Path(key)
    if not path.is_file():
        raise ValueError(f"zoo {key!r} is neither a file nor a built-in zoo ({', '.join(BUILTIN_ZOOS)})")
    try:
        data = json.loads(path.read_text()) if path.suffix == ".json" else tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'TOML'}: {e}") from None
    return parse_zoo(data, str(path), root=path.parent)


def describe_degradations() -> str:
    return "\n".join(f"  {k:14s} {cls.doc}" for k, cls in DEGRADATIONS.items())
