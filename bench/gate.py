"""``make bench-ci``: fail when any function's JIT-vs-legacy speedup (one thread, a
mid-size batch, results checked) falls below the alerting threshold."""
from __future__ import annotations

import argparse
import sys

import numba
import numpy as np

import kernels.jit as jit
import kernels.legacy as legacy
from bench import data
from bench.measure import best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--min-speedup", type=float, default=2.0)
    args = ap.parse_args()
    numba.set_num_threads(1)
    h = data.headers(20_000)
    ids, off = data.id_lists(500, 100)
    shard = data.chain(5_000)
    work = {
        "header_hash": (lambda: legacy.hash_headers(h), lambda: jit.hash_headers(h)),
        "merkle_root": (lambda: legacy.merkle_roots(ids, off), lambda: jit.merkle_roots(ids, off)),
        "validate": (lambda: data.validate(legacy, shard, 5_000),
                     lambda: data.validate(jit, shard, 5_000)),
        "commitment": (lambda: data.commitments(legacy, shard),
                       lambda: data.commitments(jit, shard)),
    }
    failed = False
    for name, (slow, fast) in work.items():
        t_l, r_l = best(slow, repeat=2)
        t_j, r_j = best(fast, repeat=3)
        if not np.array_equal(np.asarray(r_l), np.asarray(r_j)):
            print(f"bench-ci: {name}: JIT result differs from legacy", file=sys.stderr)
            failed = True
            continue
        speedup = t_l / t_j
        ok = speedup >= args.min_speedup
        failed |= not ok
        print(f"bench-ci: {name:<12} legacy {t_l * 1e3:9.2f} ms  jit {t_j * 1e3:8.2f} ms  "
              f"speedup {speedup:6.1f}x  {'ok' if ok else 'BELOW ' + str(args.min_speedup) + 'x'}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
