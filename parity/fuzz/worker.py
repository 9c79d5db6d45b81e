"""The fuzzing child: ``python -m parity.fuzz.worker --dir D [options] [libFuzzer flags]``.

It imports the legacy twin under atheris's coverage instrumentation, then lets libFuzzer
drive :func:`check` over decoded inputs. A disagreement is appended to
``D/findings.jsonl`` at once (the first of each kind) and fuzzing goes on; the rule bits
seen set and clear and the executions are written to ``D/stats.json`` every second. A
deadly signal or a timeout in either twin ends this process: libFuzzer leaves the input
in ``D/artifacts/`` and the parent reports it and starts a new child. ``--probe FILE
--side S`` runs one side on one saved input (the parent uses it to say which side
crashed), ``--probe-case FILE`` on a case file (to shrink a crash).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from parity.fuzz.inputs import MAX_OPS, OP_SIZE, PRELUDE

MAX_LEN = PRELUDE + MAX_OPS * OP_SIZE


def finding_key(function: str, a: Any, b: Any) -> str:
    """What makes two disagreements the same kind: the function and, for two statuses,
    the rule bits that differ; else the two outcome kinds."""
    if a[0] == b[0] == "uint32" and isinstance(a[2], int) and isinstance(b[2], int):
        return f"{function}:rules:{a[2] ^ b[2]:x}"
    kinds = [o[0] if o[0] in ("exception", "shape") else "value" for o in (a, b)]
    return f"{function}:{kinds[0]}/{kinds[1]}"


class Checker:
    """Runs both twins on decoded inputs; records findings and statistics in ``dir``."""

    def __init__(self, directory: Path, legacy: Any, refactored: Any, functions: list[Any],
                 pool: list[Any]) -> None:
        from parity.fuzz.decode import decode
        from parity.shrink.case import outcome
        self.dir, self.legacy, self.refactored = directory, legacy, refactored
        self.functions, self.pool = functions, pool
        self.decode, self.outcome = decode, outcome
        self.seen_set = self.seen_clear = 0
        self.execs = 0
        self.t0 = self.last = time.monotonic()
        self.keys: set[str] = set()
        self.findings = directory / "findings.jsonl"
        if self.findings.exists():
            for line in self.findings.read_text().splitlines():
                self.keys.add(json.loads(line)["key"])
        stats = directory / "stats.json"
        if stats.exists():  # the rule bits of earlier children carry on
            old = json.loads(stats.read_text())
            self.seen_set, self.seen_clear = old["set"], old["clear"]
        self.prior, self.prior_seconds = 0, 0.0
        self.max_findings = 0

    def check(self, data: bytes) -> None:
        case = self.decode(self.pool, data)
        changed = False
        for fn in self.functions:
            c = replace(case, function=fn.name)
            a = self.outcome(fn, self.legacy, c)
            b = self.outcome(fn, self.refactored, c)
            if fn.name == "validate" and a[0] == "uint32":
                changed = (self.seen_set | a[2], self.seen_clear | ~a[2]) != \
                    (self.seen_set, self.seen_clear)
                self.seen_set |= a[2]
                self.seen_clear |= ~a[2]
            if a != b:
                self.found(fn.name, data, a, b)
        self.execs += 1
        if changed or time.monotonic() - self.last >= 1.0:
            self.write_stats()

    def found(self, function: str, data: bytes, a: Any, b: Any) -> None:
        from parity.shrink.case import rendered
        key = finding_key(function, a, b)
        if key in self.keys:
            return
        self.keys.add(key)
        line = {"key": key, "function": function, "input": data.hex(),
                "legacy": rendered(a), "refactored": rendered(b),
                "execs": self.prior + self.execs,
                "seconds": round(self.prior_seconds + time.monotonic() - self.t0, 3)}
        with open(self.findings, "a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.write_stats()
        if self.max_findings and len(self.keys) >= self.max_findings:
            os._exit(0)  # libFuzzer has no clean stop from inside a run

    def write_stats(self) -> None:
        from kernels.constants import ALL_RULES
        from parity.outputs import atomic_write_text
        self.last = time.monotonic()
        atomic_write_text(self.dir / "stats.json", json.dumps({
            "execs": self.execs, "seconds": round(self.last - self.t0, 3),
            "set": self.seen_set & ALL_RULES, "clear": self.seen_clear & ALL_RULES}))


def _instrument(legacy: str) -> None:
    """Import the legacy twin under coverage instrumentation (the rules' branches);
    this must come before anything else imports them. A twin given as a file path is
    loaded later, uninstrumented (kernels.legacy still is)."""
    import importlib

    import atheris
    names = ["kernels.legacy"]
    if not legacy.endswith(".py") and not Path(legacy).is_file():
        names.append(legacy)
    with atheris.instrument_imports(include=names):
        for name in names:
            try:
                importlib.import_module(name)
            except ImportError:
                pass  # load_twin reports it as a usage error


def _twins(args: argparse.Namespace, functions: list[Any]) -> tuple[Any, Any]:
    from parity.twins import load_twin
    return (load_twin(args.legacy, "legacy", functions),
            load_twin(args.refactored, "refactored", functions))


def _parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    p = argparse.ArgumentParser(prog="python -m parity.fuzz.worker")
    p.add_argument("--dir", required=True, type=Path)
    p.add_argument("--legacy", default="kernels.legacy")
    p.add_argument("--refactored", default="kernels.jit")
    p.add_argument("--functions", default="validate,header_hash,merkle_root,commitment")
    p.add_argument("--probe", type=Path, help="run one saved input through --side and exit")
    p.add_argument("--probe-case", type=Path, help="run one case file through --side and exit")
    p.add_argument("--side", choices=("legacy", "refactored"), default="refactored")
    p.add_argument("--max-findings", type=int, default=0)
    p.add_argument("--offset", default="0,0",
                   help="executions and seconds of earlier children (for time to find)")
    return p.parse_known_args(argv)


def main(argv: list[str]) -> int:
    args, libfuzzer = _parse(argv[1:])
    probing = args.probe is not None or args.probe_case is not None
    if not probing:
        _instrument(args.legacy)
    from parity.functions import resolve
    from parity.fuzz.pool import POOL_FILE, load_pool
    functions = list(resolve(args.functions.split(",")))
    pool = load_pool(args.dir / POOL_FILE)
    legacy, refactored = _twins(args, functions)
    if probing:  # one input through one side (a crash shows as a signal)
        from parity.fuzz.decode import decode
        from parity.shrink.case import load_case, outcome
        case = decode(pool, args.probe.read_bytes()) if args.probe else load_case(args.probe_case)
        twin = legacy if args.side == "legacy" else refactored
        for fn in functions:
            print(fn.name, flush=True)
            outcome(fn, twin, replace(case, function=fn.name))
        return 0
    import atheris

    from parity.fuzz.mutate import mutate
    checker = Checker(args.dir, legacy, refactored, functions, pool)
    execs, seconds = args.offset.split(",")
    checker.prior, checker.prior_seconds = int(execs), float(seconds)
    checker.max_findings = args.max_findings

    def custom(data: bytes, max_size: int, seed: int) -> bytes:
        return mutate(data, max_size, seed, len(pool), atheris.Mutate)

    atheris.Setup([argv[0], f"-max_len={MAX_LEN}", *libfuzzer], checker.check,
                  custom_mutator=custom)
    try:
        atheris.Fuzz()
    finally:
        checker.write_stats()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
