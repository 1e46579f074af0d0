"""The `wmeval` command. Each subcommand is a plain function of parsed arguments, callable from tests; each
module of this package holds a group of commands and the parsers for them."""

from __future__ import annotations

import argparse
import errno
import shlex
import sys

from wmeval.cli import data, judge, learn, run


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="wmeval", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    for group in (data, learn, judge, run):
        group.add_parsers(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.command_line = "wmeval " + shlex.join(argv)
    try:
        return args.func(args)
    except (ValueError, RuntimeError) as e:  # user-facing errors: one clear line, no traceback
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a full disk, a read-only or missing directory, a permission: say which file
        where = f": {e.filename}" if e.filename else ""
        fix = "free some space and run the same command again: it resumes" if e.errno == errno.ENOSPC else (
            "check the path and its permissions")  # fmt: skip
        print(f"error: {e.strerror or e}{where}; {fix}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: committed episodes are kept; run the same command again to resume", file=sys.stderr)
        return 130
