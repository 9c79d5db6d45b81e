"""``parity`` command line: corpora, shadow runs, replays, shrinking, codec mode, metrics server.

Each command family registers its parser here; errors are one line on stderr with
exit code 2 (bad input or usage) or 1 (a change that could not be made durable).
"""
from __future__ import annotations

import argparse
import atexit
import gc
import os
import sys
import threading
from collections.abc import Sequence

#: numpy's OpenBLAS starts a thread per core when numpy loads, and each spins for about
#: 2^28 cycles before it sleeps: 0.07-0.12 s of CPU at every start, taken from the
#: checksums and the kernels' load on a 2-core machine. parity does no linear algebra;
#: a twin that does keeps its BLAS threads, which sleep sooner. Set when this module is
#: imported (before numpy loads), so child processes inherit it; an explicit setting wins.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

from parity.cli import corpus, fuzz, live, report, runs, serving, shrink
from parity.errors import ParityError, StateError

#: the command's garbage collector: numba's import and the kernels' load allocate objects
#: by the hundred thousand, and at Python's default thresholds (700, 10, 10) the second
#: full collection of a start held the GIL for 63 ms on the thread loading the kernels
#: (gc callbacks, one ``parity shadow --mode 3``). A young generation of 10,000 objects
#: leaves no full collection in the start: gc time 0.09 -> 0.04 s. Set by :func:`run`
#: for the whole process (a long ``parity live`` too: fewer, larger young collections).
GC_THRESHOLDS = (10_000, 10, 10)


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
    gc.set_threshold(*GC_THRESHOLDS)
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
