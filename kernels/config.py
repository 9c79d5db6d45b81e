"""The one place numba compiler flags come from (never fastmath: consensus code).

First-run compile time (kernels/jit/_precompile.py compiles a cold cache on two
processes): numba compiles a kernel once per distinct argument type, and the kernels
keep to one type per argument. A callee inside a ``prange`` body gets its index as
``np.int64(i)`` (typed int64 before the parfor pass and uint64 after it: two compiles
otherwise); constants passed to a callee are numpy scalars where one compile matters
(a Python int is a literal type, one compile per value); public wrappers pass read-only
inputs as read-only views (``kernels.jit.reveal._read_only``), as Arrow buffers already are.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import sys
import sysconfig
from pathlib import Path
from typing import Any

#: Shared hosts: numba's default threading layer here is GNU OpenMP, whose idle workers
#: spin; with another CPU-bound process on a 2-core machine every parallel kernel call
#: then costs milliseconds (measured: merkle roots of 1,000 blocks 100x slower than one
#: thread). Passive waiting puts idle workers to sleep instead. It must be set before the
#: OpenMP runtime loads (at the first parallel launch); an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numba

CACHE = os.environ.get("PARITY_NUMBA_CACHE", "1") != "0"

#: flags for every serial kernel
JIT_OPTIONS: dict[str, object] = {"cache": CACHE, "nogil": True, "fastmath": False,
                                  "error_model": "numpy"}
#: flags for kernels that split work across threads with ``prange``
PARALLEL_OPTIONS: dict[str, object] = {**JIT_OPTIONS, "parallel": True}
#: flags for small helpers that must be inlined into a lane loop. (Without numba's
#: inlining of the four BLAKE3 helpers their kernel compiled in ~6 s instead of ~30 s and
#: ran as fast when loaded from the cache, but 4x slower when compiled in-process:
#: measured, cause not found, so they stay inlined.)
INLINE_OPTIONS: dict[str, object] = {**JIT_OPTIONS, "inline": "always"}

#: each ``prange`` loop of n iterations is scheduled in pieces of ``n // DYNAMIC_DIVISIONS``
#: iterations (at least 1: so 256 to 511 pieces once n >= 256; ``kernels.jit._sched``),
#: not one fixed half per thread, which made a loop wait for the thread sharing its core
#: with another process. TBB hands the pieces to threads as ranges and splits a range
#: for a thread that is free (work stealing); a thread the OS sets aside still holds the
#: range it is running (about an eighth of a loop on 2 threads, counted in a review).
#: Needs numba's TBB layer (:func:`_prefer_tbb`); OpenMP deals the pieces out in a
#: fixed order, as before.
DYNAMIC_DIVISIONS = 256

#: inputs hashed side by side, one per lane (16 x uint32 = one AVX-512 register)
LANES = 16

#: blocks the JIT twin's batch functions (merkle roots, commitments, validation) work on
#: at a time: each chunk's temporaries (merkle levels, reveal encodings) stay a few MiB
#: and are reused from chunk to chunk, where one pass over 1M blocks touched ~800 MiB of
#: fresh pages per call (page faults, and lane groups gathered from all over memory).
#: Read at call time (tests set it small to put chunk boundaries everywhere).
CHUNK_BLOCKS = 1 << 13


def _prefer_512_bit_vectors() -> None:
    """On AVX-512 hosts LLVM defaults to 256-bit vectors (``prefer-256-bit``); the lane
    loops run 1.2-1.5x faster in full 512-bit registers. This tunes code generation only
    (same results); numba keys its cache on these features. Opt out with
    ``PARITY_PREFER_512=0``; an explicit ``NUMBA_CPU_FEATURES`` always wins."""
    config: Any = numba.config  # CPU_FEATURES is set from the environment at import
    if os.environ.get("PARITY_PREFER_512", "1") == "0" or config.CPU_FEATURES:
        return
    import llvmlite.binding as llvm
    features = llvm.get_host_cpu_features().flatten()
    if "+avx512f" in features.split(","):
        config.CPU_FEATURES = features + ",-prefer-256-bit"


def _cache_by_source() -> None:
    """numba keys a cached kernel on its own source file's timestamp only, so a kernel
    that inlines code from another file (validation inlines the BLAKE3 core) would load
    stale machine code after that file changed: an edit or an upgrade would run old
    consensus code. So the cache lives in a directory named by a digest of every file
    the kernels are built from; a change to any of them starts a fresh cache (compiled
    once, with its progress count). Inside ``NUMBA_CACHE_DIR`` when that is given."""
    root = Path(__file__).resolve().parent
    digest = hashlib.blake2b(digest_size=8)
    for path in sorted([*root.glob("*.py"), *(root / "jit").glob("*.py")]):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    config: Any = numba.config
    base = config.CACHE_DIR or str(root / "__pycache__" / "numba")
    config.CACHE_DIR = os.path.join(base, f"kernels-{digest.hexdigest()}")


def _prefer_tbb() -> None:
    """numba's TBB threading layer: a thread that is free takes part of another's share of
    a loop (work stealing). Measured, a loop of 64 equal pieces on 2 threads, with a process spinning
    on one of the 2 cores: 147 ms on OpenMP's fixed halves, 102 ms on TBB (75 ms idle);
    and ``parity shadow --mode 3`` over 1M blocks, 6 alternating runs, kernel time 2.2 ->
    1.8 s (median; faster in each pair; why was not measured: TBB keeps its workers awake
    a moment between loops, where passive OpenMP puts them to sleep at once).
    pip's ``tbb`` package puts ``libtbb.so.12`` in the environment's ``lib`` directory,
    which the loader does not search: it is loaded here by path. Without it, OpenMP as
    before. An explicit ``NUMBA_THREADING_LAYER`` wins (the library is loaded for it too:
    ``tbb`` finds it only so)."""
    lib = Path(sysconfig.get_path("data")) / "lib" / "libtbb.so.12"
    if sys.platform.startswith("linux") and lib.is_file():
        try:  # numba's default order tries TBB first, OpenMP next
            ctypes.CDLL(str(lib), mode=ctypes.RTLD_GLOBAL)
        except OSError:  # unusable here: numba then takes the next layer
            pass


_prefer_512_bit_vectors()
_cache_by_source()
_prefer_tbb()
