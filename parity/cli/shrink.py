"""``parity shrink``: one mismatching block -> a minimal, permanent regression case."""
from __future__ import annotations

import argparse
import json

from parity.cli.args import add_parser
from parity.errors import ParityError
from parity.functions import FUNCTIONS
from parity.twins import DEFAULT_LEGACY, DEFAULT_REFACTORED


def _shrink(args: argparse.Namespace) -> int:
    import tempfile

    from parity.modes import Mode
    from parity.shadow import ShadowOptions, ShadowRun
    from parity.shrink import Shrinker, from_corpus, write_case
    functions = (args.function,) if args.function else FUNCTIONS
    with tempfile.TemporaryDirectory() as tmp:
        run = ShadowRun(ShadowOptions(corpus=args.corpus, mode=Mode.SHADOW, functions=functions,
                                      legacy=args.legacy, refactored=args.refactored,
                                      run_dir=tmp, quiet=True))
        chosen = None
        for name in functions:  # the first function the twins disagree on
            shrinker = Shrinker(name, run.legacy.twin, run.refactored.twin)
            start = from_corpus(run, args.block, name)
            if shrinker.disagree(start):
                chosen = shrinker
                break
        if chosen is None:
            raise ParityError(f"the twins agree on block {args.block} for "
                              f"{', '.join(functions)}: nothing to shrink")
        result = chosen.shrink(start)
    path = write_case(result.case, args.out)
    print(json.dumps({"case": result.case.name, "function": result.case.function,
                      "file": str(path), "block": args.block, "tests": result.tests,
                      "seconds": round(result.seconds, 3), "outputs": result.case.outputs},
                     indent=2))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from parity.cli.runs import TWIN_HELP
    from parity.shrink import DEFAULT_OUT
    s = add_parser(sub, "shrink", help="shrink a mismatching block to a minimal regression case")
    s.add_argument("corpus", help="the corpus directory")
    s.add_argument("--block", type=int, required=True,
                   help="the block's position in the corpus (0-based)")
    s.add_argument("--function", choices=FUNCTIONS,
                   help="the function the twins disagree on (default: the first that does)")
    s.add_argument("--legacy", default=DEFAULT_LEGACY,
                   help=TWIN_HELP.format("legacy", DEFAULT_LEGACY))
    s.add_argument("--refactored", default=DEFAULT_REFACTORED,
                   help=TWIN_HELP.format("refactored", DEFAULT_REFACTORED))
    s.add_argument("--out", default=DEFAULT_OUT,
                   help=f"directory for the case file (default {DEFAULT_OUT}/)")
    s.set_defaults(func=_shrink)
