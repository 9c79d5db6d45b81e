"""``parity`` command line: corpora, shadow runs, replays, shrinking, codec mode, metrics server.

Each command family registers its parser here; errors are one line on stderr with
exit code 2 (bad input or usage) or 1 (a change that could not be made durable).
"""
from __future__ import annotations

import argparse
import atexit
import os
import sys
import threading
from collections.abc import Sequence

from parity.cli import corpus, fuzz, live, report, runs, serving, shrink
from parity.errors import ParityError, StateError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="parity",
                                     description=__doc__.split("\n")[0].replace("``", ""))
    sub = parser.add_subparsers(dest="cmd", required=True, metavar="COMMAND",
                                help="parity COMMAND --help describes each one")
    for family in (corpus, runs, shrink, fuzz, report, serving, live):
        family.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # name the subcommand's usage, not the top level's
        getattr(args, "parser", parser).error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return int(args.func(args))
    except ParityError as exc:
        print(f"parity: error: {exc}", file=sys.stderr)
        return 2
    except StateError as exc:  # not bad input: the change could not be made durable
        print(f"parity: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"parity: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("parity: interrupted", file=sys.stderr)
        return 130


def run() -> None:
    """The ``parity`` command: :func:`main`, then exit with its code. When only daemon
    threads are left, the exit runs the atexit handlers and flushes the standard
    streams, then skips the interpreter's teardown (freeing every object and numba's
    compiled code one by one: about 0.2 s at the end of a run, measured). Every file
    parity writes is closed and fsynced before :func:`main` returns."""
    code = main()
    if any(t.is_alive() and not t.daemon for t in threading.enumerate()
           if t is not threading.main_thread()):
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        if stream is None:  # started with it closed (``>&-``): nothing to flush
            continue
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can reach it
            code = code or 1
    os._exit(code)
