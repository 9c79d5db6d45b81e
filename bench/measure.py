"""Measurements beyond the per-function suite: threads, the blake3 package, start-up,
per-call cost, and the harness's overhead and memory on large corpora."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import blake3
import numba
import numpy as np

import kernels.jit as jit
import kernels.legacy as legacy
from bench import data

ROOT = Path(__file__).resolve().parent.parent


def best(fn, repeat: int = 3) -> tuple[float, object]:
    fn()  # warm-up outside the timing
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def thread_scaling(n_headers: int = 1_000_000, merkle_blocks: int = 10_000,
                   chain_blocks: int = 100_000, rounds: int = 5) -> dict:
    """Each kernel on 1 and 2 numba threads, the two timed alternately in ``rounds``
    rounds (best of 3 each): the scaling is the median of the rounds' ratios, so a change
    of the host's speed between two timings moves one round, not the figure (a single
    pair once gave merkle roots 1.34x, where alternating rounds right after gave
    1.75-2.02x). Every result is checked against the one-thread result."""
    h = data.headers(n_headers)
    ids, off = data.id_lists(merkle_blocks, 100)
    shard = data.chain(chain_blocks)
    work = {"header_hash": lambda: jit.hash_headers(h),
            "merkle_root": lambda: jit.merkle_roots(ids, off),
            "validate": lambda: data.validate(jit, shard, chain_blocks)}
    out = {}
    for name, fn in work.items():
        timings: dict[int, list[float]] = {1: [], 2: []}
        expected = None
        for _ in range(rounds):
            for threads in (1, 2):
                numba.set_num_threads(threads)
                seconds, r = best(fn)
                timings[threads].append(seconds)
                if expected is None:
                    expected = np.asarray(r)
                assert np.array_equal(np.asarray(r), expected), name
        ratios = [a / b for a, b in zip(timings[1], timings[2], strict=True)]
        out[name] = {"seconds_1": float(np.median(timings[1])),
                     "seconds_2": float(np.median(timings[2])),
                     "scaling": float(np.median(ratios)), "scalings": ratios}
    numba.set_num_threads(1)
    return out


def batch_speedups(small: int = 100_000, large: int = 1_000_000, rounds: int = 3) -> dict:
    """Validation of one batch of ``small`` and of ``large`` blocks, legacy and JIT (one
    thread), timed back to back in ``rounds`` rounds: each round's two speedups share the
    host's speed of those minutes. The figure is the median of the rounds' ratios
    (large over small). The suite's single legacy samples once ran 18,576 blocks/s at
    100k and 25,072 at 1M, 35% apart (the host changing speed), while the JIT ran 981k
    and 999k: that sank the ratio to 75%. Every result is checked against legacy's."""
    numba.set_num_threads(1)
    speedups: dict[int, list[float]] = {small: [], large: []}
    for _ in range(rounds):
        for n in (small, large):
            shard = data.chain(n)
            t0 = time.perf_counter()
            expected = data.validate(legacy, shard, n)
            t_legacy = time.perf_counter() - t0
            t_jit, out = best(partial(data.validate, jit, shard, n))
            assert np.array_equal(np.asarray(out), np.asarray(expected)), n
            speedups[n].append(t_legacy / t_jit)
    ratios = [b / a for a, b in zip(speedups[small], speedups[large], strict=True)]
    return {"small": small, "large": large, "rounds": rounds,
            "speedup_small": float(np.median(speedups[small])),
            "speedup_large": float(np.median(speedups[large])),
            "speedups_small": speedups[small], "speedups_large": speedups[large],
            "ratio": float(np.median(ratios)), "ratios": ratios}


def package_ratio(n_headers: int = 1_000_000) -> dict:
    numba.set_num_threads(1)
    h = data.headers(n_headers)
    t_jit, out = best(lambda: jit.hash_headers(h))
    assert out[0].tobytes() == blake3.blake3(h[0].tobytes()).digest()
    buf = np.random.default_rng(1).bytes(256 << 20)
    t_pkg, _ = best(lambda: blake3.blake3(buf, max_threads=1).digest())
    jit_cps = 5 * n_headers / t_jit
    pkg_cps = len(buf) / 64 / t_pkg
    return {"jit_compressions_per_s": jit_cps, "package_compressions_per_s": pkg_cps,
            "ratio": jit_cps / pkg_cps}


_STARTUP = """
import time, json
t0 = time.perf_counter()
import numpy as np
import kernels.jit as J
from kernels.jit._precompile import precompile
precompile()  # what parity's warm-up does first: on a cold cache, compile on two processes
h = np.zeros((100, 276), np.uint8)
J.hash_headers(h); J.merkle_roots(np.zeros((3, 32), np.uint8), np.array([0, 3], np.int64))
J.validate_chain([], 0, bytes(32))
from parity.corpus import open_corpus
c = open_corpus("corpora/sample-valid"); m = c.manifest
for s in c.shards():
    J.validate_blocks(*s.arrays(), now=m.now, difficulty_target=m.difficulty_target, parent=m.anchor)
print(json.dumps({"seconds": time.perf_counter() - t0}))
"""


def startup(cold_runs: int = 3) -> dict:
    """Cold (empty numba cache) and warm (cache filled) time to load every kernel and
    run each once, in fresh processes, as a first run gets them: on a cold cache parity's
    warm-up compiles on two processes first (kernels/jit/_precompile.py). The cold figure
    is the median of ``cold_runs`` fresh caches (each followed by two warm runs)."""
    colds, warms = [], []
    for _ in range(cold_runs):
        with tempfile.TemporaryDirectory() as cache:
            env = dict(os.environ, NUMBA_CACHE_DIR=cache)
            runs = []
            for _ in range(3):
                out = subprocess.run([sys.executable, "-c", _STARTUP], env=env, cwd=ROOT,
                                     capture_output=True, text=True, check=True)
                runs.append(json.loads(out.stdout)["seconds"])
        colds.append(runs[0])
        warms.extend(runs[1:])
    import_only = subprocess.run([sys.executable, "-c", "import time;t=time.perf_counter();"
                                  "import numpy, numba;print(time.perf_counter()-t)"],
                                 capture_output=True, text=True, check=True)
    return {"cold_seconds": float(np.median(colds)), "cold_runs": colds,
            "warm_seconds": min(warms),
            "python_numba_import_seconds": float(import_only.stdout)}


def per_call(calls: int = 20_000) -> dict:
    from parity import experiment
    from parity.modes import Mode
    from parity.percall import Controller
    from parity.state import ModeState
    header = data.headers(1)[0].tobytes()
    out = {}
    for mode in Mode:
        c = Controller(ModeState(None, initial=mode))
        f = experiment("header_hash", legacy=legacy.hash_header, refactored=jit.hash_header,
                       controller=c)
        assert f(header) == legacy.hash_header(header)
        t, _ = best(lambda f=f: [f(header) for _ in range(calls)])
        out[mode.label] = t / calls
    raw = {"legacy": legacy.hash_header, "jit": jit.hash_header}
    for name, fn in raw.items():
        t, _ = best(lambda fn=fn: [fn(header) for _ in range(calls)])
        out[f"raw_{name}"] = t / calls
    out["jit_vs_legacy_mode3_vs_mode0"] = out["legacy_only"] / out["refactored_only"]
    # overhead beyond the raw calls a mode makes (targets: 0.5 us for 0 and 3, 2 us for 1, 2)
    out["overhead_us"] = {
        "legacy_only": (out["legacy_only"] - out["raw_legacy"]) * 1e6,
        "shadow": (out["shadow"] - out["raw_legacy"] - out["raw_jit"]) * 1e6,
        "refactored_primary": (out["refactored_primary"] - out["raw_legacy"]
                               - out["raw_jit"]) * 1e6,
        "refactored_only": (out["refactored_only"] - out["raw_jit"]) * 1e6}
    return out


_RSS = """
import resource, subprocess, sys, json
r = subprocess.run(sys.argv[1:], capture_output=True, text=True)
print(json.dumps({"rc": r.returncode, "maxrss_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
                  "stderr": r.stderr[-2000:]}))
"""


def shadow_run(blocks: int) -> dict:
    """``parity shadow`` over an honest corpus: harness overhead and peak RSS."""
    corpus = data.corpus(blocks)
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "r.json"
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", _RSS, sys.executable, "-m", "parity", "shadow",
                              str(corpus), "--quiet", "--run-dir", f"{tmp}/run", "--report",
                              str(report), "--results", f"{tmp}/results.parquet"],
                             capture_output=True, text=True, cwd=ROOT, check=True)
        wall = time.perf_counter() - t0
        info = json.loads(out.stdout)
        if info["rc"] != 0:
            raise RuntimeError(f"parity shadow failed: {info['stderr']}")
        r = json.loads(report.read_text())
    legacy_s = sum(f["legacy_seconds"] for f in r["functions"].values())
    jit_s = sum(f["refactored_seconds"] for f in r["functions"].values())
    t = r["timing"]
    return {"blocks": blocks, "wall_seconds": t["wall_seconds"], "process_seconds": wall,
            "legacy_seconds": legacy_s, "jit_seconds": jit_s,
            "harness_seconds": t["harness_seconds"], "warmup_seconds": t["warmup_seconds"],
            "overhead_vs_legacy": t["harness_seconds"] / legacy_s,
            "peak_rss_mib": info["maxrss_kib"] / 1024,
            "mismatches": sum(f["mismatches"] for f in r["functions"].values())}
