"""Each JIT function's speedup over legacy on an idle machine and under one competing
CPU-bound process, in the same run (issue 14: busy at least 70% of idle).

    python -m bench.contention [--blocks 5000] [--cycles 3] [--rounds 7] [--json PATH]

The competitor is a child ``python -c 'while True: pass'`` that this module starts and
kills. Phases alternate, idle then busy, ``cycles`` times, so a neighbour's load drifting
during the run hits both sides alike. In every phase each function runs ``rounds`` times,
legacy and JIT back to back, on the blocks of a generated corpus; a function's time is
the median over all its rounds in that condition, and its speedup legacy / JIT. The JIT
twin runs with numba's default thread count, as ``parity shadow`` does. Every output is
checked against legacy's from the idle warm-up.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numba
import numpy as np

import kernels.jit as jit
import kernels.legacy as legacy
from bench import data

TARGET = 0.70  # busy speedup / idle speedup, per function
_SPIN = "while True: pass"


def _work(twin, blocks: int) -> dict[str, Callable[[], np.ndarray]]:
    s = data.chain(blocks)
    return {"header_hash": lambda: twin.hash_headers(s.headers),
            "merkle_root": lambda: twin.merkle_roots(s.ids, s.id_offsets),
            "validate": lambda: data.validate(twin, s, blocks),
            "commitment": lambda: data.commitments(twin, s)}


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, clock ticks


class Competitor:
    """One CPU-bound child process for the life of a ``with`` block."""

    def __enter__(self) -> Competitor:
        self.proc = subprocess.Popen([sys.executable, "-c", _SPIN])
        deadline = time.monotonic() + 10
        while _cpu_seconds(self.proc.pid) < 0.05:  # running, not still starting
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the competing process did not start spinning")
            time.sleep(0.01)
        self.cpu0 = _cpu_seconds(self.proc.pid)
        self.t0 = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        #: the share of a core the competitor got while it ran (it must have competed)
        self.share = (_cpu_seconds(self.proc.pid) - self.cpu0) / (time.monotonic() - self.t0)
        self.proc.kill()
        self.proc.wait()


def _phase(work: dict[str, tuple[Callable, Callable]], expected: dict[str, np.ndarray],
           rounds: int, times: dict[str, dict[str, list[float]]]) -> None:
    for _ in range(rounds):
        for fn, (lg, jt) in work.items():
            for impl, call in (("legacy", lg), ("jit", jt)):
                t0 = time.perf_counter()
                out = call()
                times[fn][impl].append(time.perf_counter() - t0)
                if not np.array_equal(np.asarray(out), expected[fn]):
                    raise RuntimeError(f"contention: {impl} {fn} differs from legacy")


def run(blocks: int = 5000, cycles: int = 3, rounds: int = 7) -> dict:
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)  # the default (others set 1)
    lg, jt = _work(legacy, blocks), _work(jit, blocks)
    work = {fn: (lg[fn], jt[fn]) for fn in lg}
    expected = {fn: np.asarray(f()) for fn, f in lg.items()}
    for f in jt.values():  # warm-up: compilation or cache load, first touch
        f()
    cond = ("idle", "busy")
    times = {c: {fn: {"legacy": [], "jit": []} for fn in work} for c in cond}
    shares = []
    for _ in range(cycles):
        _phase(work, expected, rounds, times["idle"])
        with Competitor() as comp:
            _phase(work, expected, rounds, times["busy"])
        shares.append(comp.share)
    out: dict = {"blocks": blocks, "cycles": cycles, "rounds": rounds,
                 "threads": numba.get_num_threads(), "threading_layer": numba.threading_layer(),
                 "competitor_core_share": statistics.median(shares), "target": TARGET,
                 "functions": {}}
    for fn in work:
        row = {}
        for c in cond:
            t = times[c][fn]
            row[f"{c}_legacy_seconds"] = statistics.median(t["legacy"])
            row[f"{c}_jit_seconds"] = statistics.median(t["jit"])
            row[f"{c}_speedup"] = row[f"{c}_legacy_seconds"] / row[f"{c}_jit_seconds"]
        row["retained"] = row["busy_speedup"] / row["idle_speedup"]
        out["functions"][fn] = row
    out["met"] = all(r["retained"] >= TARGET for r in out["functions"].values())
    return out


def markdown(r: dict) -> str:
    lines = [f"Each JIT function vs legacy on {r['blocks']:,} blocks, idle and under one "
             f"competing CPU-bound process (it got {r['competitor_core_share']:.0%} of a core), "
             f"same run; {r['threads']} numba threads ({r['threading_layer']} layer), medians "
             f"of {r['cycles']} x {r['rounds']} rounds:", "",
             "| function | idle: legacy s | JIT s | speedup | busy: legacy s | JIT s | speedup "
             "| busy / idle |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    if r["competitor_core_share"] < 0.8:  # on 2 cores it gets most of one unless others run
        lines[0] = lines[0][:-1] + ("; it got less than 80% of a core, so other work was "
                                    "running: the idle phases were not idle either:")
    for fn, f in r["functions"].items():
        lines.append(f"| {fn} | {f['idle_legacy_seconds']:.4f} | {f['idle_jit_seconds']:.5f} | "
                     f"{f['idle_speedup']:.1f}x | {f['busy_legacy_seconds']:.4f} | "
                     f"{f['busy_jit_seconds']:.5f} | {f['busy_speedup']:.1f}x | "
                     f"{f['retained']:.0%} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--blocks", type=int, default=5000)
    ap.add_argument("--cycles", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    r = run(args.blocks, args.cycles, args.rounds)
    if args.json:
        args.json.write_text(json.dumps(r, indent=2))
    print(markdown(r))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
