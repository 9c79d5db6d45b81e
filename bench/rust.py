"""The Rust twin (twins/rust, ``make rust-twin``) against the legacy and JIT twins: header
hashes and merkle roots over one shard, and what the process boundary costs.

    python -m bench.rust [--blocks 100000] [--ids-per-block 16] [--rounds 7] [--json PATH]

Per function, on one thread: legacy (``--legacy-rounds``, default 1: it is slow), JIT
(after a warm-up) and the Rust twin through the harness's own client
(:class:`parity.proctwin.ProcessTwin`, as ``--refactored exec:...`` runs it), one process
for all rounds (the first request is a warm-up). For the Rust twin two times are taken per
round: the call's wall time at the client (argument checks, copying into shared memory or
writing the pipe, the twin, the reply, its checks) and the twin's own time as it reports
it with ``PARITY_TWIN_TIMING=1`` (argument checks and compute, including the hashing it
does while the request still arrives). The boundary is their difference, the overhead
that difference over the twin's own time (target: at most 10% at 100,000-block shards).
Three ways are measured: the shared-memory transport (the default, twins/PROTOCOL.md
"Shared memory"; large header_hash calls are then pipelined in chunks, "Pipelining",
and the twin's own time is the sum over the chunks' requests), the pipe alone
(``PARITY_TWIN_SHM=0``) with the twin hashing after the whole request arrived, and the
pipe with hashing as the headers and ids arrive (``PARITY_TWIN_OVERLAP=1``).
Figures are medians over the rounds; every result is checked against legacy's.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numba
import numpy as np

import kernels.jit as jit
import kernels.legacy as legacy
from bench import data
from parity import twinshm
from parity.proctwin import PIPELINE_ROWS, ProcessTwin
from tests.twin_client import RUST_TWIN

WAYS = {"rust_shm": (False, True), "rust": (False, False), "rust_overlap": (True, False)}


def _median_seconds(fn: Callable[[], np.ndarray], rounds: int, check: np.ndarray) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
        assert np.array_equal(out, check), "result differs from legacy"
    return statistics.median(times)


def _timing(twin: ProcessTwin, op: str, seen: int, requests: int = 1
            ) -> tuple[dict[str, int], int]:
    """The twin's timing lines (``PARITY_TWIN_TIMING=1``: ``ns``, ``read_ns``, ``write_ns``)
    for its last ``requests`` ``op`` requests, summed (a pipelined call is several
    requests), from the stderr file the client keeps, once there are ``seen + requests``
    such lines (the twin writes each just after its reply); and their count."""
    assert twin._stderr is not None
    deadline = time.monotonic() + 10.0
    while True:
        twin._stderr.seek(0)
        text = twin._stderr.read().decode()
        lines = [x for x in text[:text.rfind("\n") + 1].splitlines()
                 if x.startswith(f"parity-twin-timing op={op} ")]
        if len(lines) >= seen + requests:
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"the twin wrote {len(lines) - seen} timing lines for {op}, "
                             f"expected {requests}")
        time.sleep(0.001)
    total: dict[str, int] = {}
    for line in lines[seen:seen + requests]:
        for k, v in (f.split("=", 1) for f in line.split()[1:]):
            if k != "op":
                total[k] = total.get(k, 0) + int(v)
    return total, seen + requests


def _rust(op: str, args: tuple[np.ndarray, ...], check: np.ndarray, rounds: int, overlap: bool,
          shm: bool) -> dict:
    env = {"PARITY_TWIN_TIMING": "1", "PARITY_TWIN_OVERLAP": "1" if overlap else "0",
           twinshm.ENV: "1" if shm else "0"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the twin process and the client read them at the start
    walls, own, reads, writes = [], [], [], []
    try:
        with ProcessTwin(str(RUST_TWIN), timeout=600.0) as twin:
            call = twin.hash_headers if op == "header_hash" else twin.merkle_roots
            # requests a call makes: large header_hash calls are pipelined in chunks
            # when shared memory carries them (twins/PROTOCOL.md, "Pipelining")
            n = len(args[0])
            requests = (-(-n // PIPELINE_ROWS) if op == "header_hash" and shm
                        and n >= 2 * PIPELINE_ROWS else 1)
            call(*args)  # warm-up: page faults, buffers, the segment attached
            seen = _timing(twin, op, 0, requests)[1]
            for _ in range(rounds):
                t0 = time.perf_counter_ns()
                out = call(*args)
                walls.append(time.perf_counter_ns() - t0)
                t, seen = _timing(twin, op, seen, requests)
                own.append(t["ns"])
                reads.append(t["read_ns"])
                writes.append(t["write_ns"])
                assert np.array_equal(out, check), f"Rust {op} differs from legacy"
            assert (twin._segment is not None) == shm, "shared memory not used as asked"
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    boundary = [w - o for w, o in zip(walls, own)]
    return {"wall_seconds": statistics.median(walls) / 1e9,
            "own_seconds": statistics.median(own) / 1e9,
            "boundary_seconds": statistics.median(boundary) / 1e9,
            "overhead": statistics.median(b / o for b, o in zip(boundary, own)),
            "overhead_per_round": [b / o for b, o in zip(boundary, own)],
            "twin_read_seconds": statistics.median(reads) / 1e9,
            "twin_write_seconds": statistics.median(writes) / 1e9}


def run(blocks: int = 100_000, ids_per_block: int = 16, rounds: int = 7, legacy_rounds: int = 1
        ) -> dict:
    if not RUST_TWIN.exists():
        raise SystemExit(f"{RUST_TWIN} is missing: run `make rust-twin`")
    numba.set_num_threads(1)
    headers = data.headers(blocks)
    ids, offsets = data.id_lists(blocks, ids_per_block)
    work = {"header_hash": ((headers,), legacy.hash_headers, jit.hash_headers),
            "merkle_root": ((ids, offsets), legacy.merkle_roots, jit.merkle_roots)}
    out: dict = {"blocks": blocks, "ids_per_block": ids_per_block, "rounds": rounds,
                 "functions": {}}
    for op, (args, lg, jt) in work.items():
        t0 = time.perf_counter()
        check = lg(*args)  # the reference every other result is checked against
        legacy_times = [time.perf_counter() - t0]
        if legacy_rounds > 1:
            legacy_times.append(_median_seconds(lambda lg=lg, args=args: lg(*args),
                                                legacy_rounds - 1, check))
        legacy_s = statistics.median(legacy_times)
        jt(*args)  # compilation or cache load
        jit_s = _median_seconds(lambda jt=jt, args=args: jt(*args), rounds, check)
        out["functions"][op] = {"legacy_seconds": legacy_s, "jit_seconds": jit_s}
        for way, (overlap, shm) in WAYS.items():
            out["functions"][op][way] = _rust(op, args, check, rounds, overlap, shm)
    return out


def markdown(r: dict) -> str:
    lines = [f"Rust twin, {r['blocks']:,} blocks ({r['ids_per_block']} ids a block for merkle "
             f"roots), medians of {r['rounds']} rounds, one thread:", "",
             "| function | legacy s | JIT s | Rust wall s | Rust own s | boundary s | "
             "boundary / own | pipe: wall s, own s, boundary / own | pipe, overlapped: "
             "wall s, own s, boundary / own |",
             "|---|---:|---:|---:|---:|---:|---:|---|---|"]
    for op, f in r["functions"].items():
        a, b, c = f["rust_shm"], f["rust"], f["rust_overlap"]
        lines.append(f"| {op} | {f['legacy_seconds']:.3f} | {f['jit_seconds']:.4f} | "
                     f"{a['wall_seconds']:.4f} | {a['own_seconds']:.4f} | "
                     f"{a['boundary_seconds']:.4f} | {a['overhead']:.1%} | "
                     f"{b['wall_seconds']:.4f}, {b['own_seconds']:.4f}, {b['overhead']:.1%} | "
                     f"{c['wall_seconds']:.4f}, {c['own_seconds']:.4f}, {c['overhead']:.1%} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--blocks", type=int, default=100_000)
    ap.add_argument("--ids-per-block", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--legacy-rounds", type=int, default=1)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    r = run(args.blocks, args.ids_per_block, args.rounds, args.legacy_rounds)
    if args.json:
        args.json.write_text(json.dumps(r, indent=2))
    print(markdown(r))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
