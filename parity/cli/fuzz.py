"""``parity fuzz``: coverage-guided differential fuzzing of the two twins."""
from __future__ import annotations

import argparse
import json

from parity.cli.args import add_parser, csv_list
from parity.functions import FUNCTIONS
from parity.twins import DEFAULT_LEGACY, DEFAULT_REFACTORED


def _fuzz(args: argparse.Namespace) -> int:
    from parity.fuzz.engine import FuzzOptions, run_fuzz
    functions: list[str] = []
    for group in args.function or [list(FUNCTIONS)]:
        functions += group
    summary = run_fuzz(FuzzOptions(
        out=args.out, functions=tuple(functions), legacy=args.legacy,
        refactored=args.refactored, seconds=args.seconds, runs=args.runs,
        corpora=tuple(args.corpus or ()), seed=args.seed, force=args.force, quiet=args.quiet,
        max_findings=args.max_findings, timeout=args.timeout))
    found = summary["findings"]
    print(json.dumps({k: summary[k] for k in ("out", "execs", "seconds", "children",
                                               "rules_never_set", "rules_never_clear")}
                     | {"findings": [{k: f.get(k) for k in ("key", "case", "file", "corpus",
                                                            "reproduces", "seconds", "error")
                                      if k in f} for f in found],
                        "coverage_corpora": [c["corpus"] for c in summary["coverage_corpora"]]},
                     indent=2))
    return 1 if found else 0


def register(sub: argparse._SubParsersAction) -> None:
    from parity.cli.runs import TWIN_HELP
    from parity.fuzz import DEFAULT_TIMEOUT
    f = add_parser(sub, "fuzz", help="fuzz the refactored twin against legacy (atheris, "
                                     "coverage-guided); exit 1 when they disagree")
    f.add_argument("--function", action="append", type=csv_list, metavar="F",
                   help=f"a function to compare (repeatable or comma-separated; default all: "
                        f"{', '.join(FUNCTIONS)})")
    f.add_argument("--legacy", default=DEFAULT_LEGACY,
                   help=TWIN_HELP.format("legacy", DEFAULT_LEGACY))
    f.add_argument("--refactored", default=DEFAULT_REFACTORED,
                   help=TWIN_HELP.format("refactored", DEFAULT_REFACTORED))
    budget = f.add_mutually_exclusive_group(required=True)
    budget.add_argument("--seconds", type=float, help="fuzz for this long (wall clock)")
    budget.add_argument("--runs", type=int, help="fuzz this many inputs")
    f.add_argument("--out", default=".parity-fuzz",
                   help="the fuzz directory: findings, regression and coverage corpora "
                        "(default .parity-fuzz)")
    f.add_argument("--corpus", action="append", metavar="DIR",
                   help="a seed corpus (repeatable; default the shipped sample corpora)")
    f.add_argument("--seed", type=int, default=1, help="libFuzzer's random seed (default 1)")
    f.add_argument("--max-findings", type=int, default=0, metavar="N",
                   help="stop once N distinct disagreements were found (default 0: run out "
                        "the budget)")
    f.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT, metavar="S",
                   help=f"seconds one input may take in both twins before it is a finding "
                        f"(default {DEFAULT_TIMEOUT})")
    f.add_argument("--force", action="store_true",
                   help="replace an earlier fuzz directory parity wrote (never anything else)")
    f.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    f.set_defaults(func=_fuzz)
