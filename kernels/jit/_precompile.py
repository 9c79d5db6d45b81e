"""The first run's compile on both cores: two child processes each compile one group of
kernels into numba's on-disk cache, then the caller loads every kernel from there.

The groups split the work where it is independent: ``hashes`` compiles the BLAKE3 core
(with header hashes), then merkle roots; ``blocks`` first what needs no BLAKE3 (the
rules, the replay table, subset sums, encodings, the grouping of inputs by length), then
waits until the BLAKE3 core is cached and compiles the reveal hashes and the per-call
header hash, which load it from there (numba loads a callee from the cache when it is
there). Merkle roots wait for the grouping by length the same way (in practice it is
long cached by then). Cold compile on 2 cores, measured in one sitting: 46 s when
``hashes`` also grouped by length and hashed one header, its merkle roots starting at
21 s while ``blocks`` idled from 31 s.

Concurrent writers: numba keeps one index file per function (``*.nbi``: read it, add
the entry, replace the file) and names each data file by the first number free in the
index it read, so two processes adding different signatures of one function at once
could take the same name. The wait keeps the groups' functions disjoint (each child
reports what it compiled; ``tests/test_precompile.py`` checks it on a fresh cache), and
a lock file keeps a second caller (another Dask worker) from compiling at the same time.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import pickle
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from kernels import config
from kernels.constants import HASH_SIZE, HEADER_SIZE

_ROOT = Path(__file__).resolve().parents[2]  # the directory holding the kernels package


def _hashes() -> Iterator[str]:
    """The BLAKE3 core (as batch header hashing calls it), then merkle roots, with the
    argument kinds the public functions pass."""
    from kernels.jit._blake3 import hash_rows_into
    from kernels.jit.merkle import _merkle_roots
    rows = np.zeros((2, HEADER_SIZE), dtype=np.uint8)
    hash_rows_into(rows, np.empty((2, HASH_SIZE), dtype=np.uint8), True)
    yield CORE_STEP
    yield WAIT  # until the grouping by length is cached (or its process is gone)
    ids = np.zeros((3, HASH_SIZE), dtype=np.uint8)
    _merkle_roots(ids, np.array([0, 3], dtype=np.int64), np.empty((1, HASH_SIZE), np.uint8), True)
    yield "merkle roots"


def _blocks() -> Iterator[str]:
    """The rules, the replay table, subset sums, encodings and the grouping by length,
    then the reveal hashes and the per-call header hash."""
    from kernels.jit import reveal, validate
    from kernels.jit._blake3 import _group_by_length
    from kernels.jit._selftest import _replay_selftest
    from kernels.jit.header import _hash_one
    n = 2
    h32 = np.zeros((n, HASH_SIZE), dtype=np.uint8)
    headers = np.zeros((n, HEADER_SIZE), dtype=np.uint8)
    statuses = validate._rules(headers, h32, h32, h32, h32, np.zeros(n, dtype=np.bool_),
                               np.zeros(n + 1, dtype=np.int64), 0, bytes(HASH_SIZE),
                               (False, 0, np.zeros((1, HASH_SIZE), np.uint8), 0))
    validate._mark_replays(headers, statuses, None)
    yield "rules"
    _replay_selftest()
    yield "replay table"
    zeros = np.zeros(n + 1, dtype=np.int64)
    reveals = (np.zeros(0, np.int64), zeros, zeros[:n], np.zeros(0, np.uint64), zeros)
    reveal.check_solutions(*reveals)
    yield "subset sums"
    reveal.problem_bytes([1], 1)
    reveal.solution_bytes([0])
    yield "encodings"
    _group_by_length(np.zeros(2, dtype=np.int64))  # merkle and the reveal hashes both call it
    yield SORT_STEP
    yield WAIT  # until the BLAKE3 core is cached (or its process is gone)
    reveal._reveal_hashes_into(*reveal._read_only(*reveals, h32), h32.copy(), h32.copy(),
                               h32.copy(), True)
    yield "reveal hashes"
    _hash_one(bytes(HEADER_SIZE))
    yield "header hash"


#: the step of ``hashes`` after which the BLAKE3 core is in the cache
CORE_STEP = "blake3 and header hashes"
#: the step of ``blocks`` after which the grouping by length is in the cache
SORT_STEP = "grouping by length"
#: yielded where a child waits for the other's step (not a step)
WAIT = "wait for the other group"
GROUPS: dict[str, Callable[[], Iterator[str]]] = {"hashes": _hashes, "blocks": _blocks}
#: which group each of those steps lets go on
RELEASES = {CORE_STEP: "blocks", SORT_STEP: "hashes"}
#: steps reported by all groups together (the progress count)
STEPS = 9


def _entry_kernels() -> list:
    """The kernels a run loads itself (the callees are linked into them)."""
    from kernels.jit import _blake3, _replay, header, merkle, reveal, validate
    return [_blake3.hash_rows_into, merkle._merkle_roots, header._hash_one,
            reveal._reveal_hashes_into, reveal._check_solutions_into, reveal._encode,
            validate._statuses, validate._commit_keys, _replay._plan, _replay._mark,
            _replay._rehash]


def cold() -> bool:
    """True when numba's cache is on and holds nothing yet for some kernel a run uses
    (a fresh clone, or a kernel's source changed). Reads numba's cache index through
    its internals; if they change, or an index is unreadable (garbage in a ``.nbi``),
    answers False (the caller then compiles in-process, as without this module, or its
    first call meets the error and reports it)."""
    if not config.CACHE or os.environ.get("NUMBA_DISABLE_JIT", "0") != "0":
        return False
    try:
        return any(not k._cache._cache_file._load_index() for k in _entry_kernels())
    except (AttributeError, TypeError, OSError, EOFError, ValueError, pickle.UnpicklingError):
        return False


def _lock_path() -> Path:
    """The lock file: in numba's cache directory of these kernels (it goes with the
    cache), or in the temporary directory when that is unknown."""
    from kernels.jit._blake3 import hash_rows_into
    try:
        where = Path(hash_rows_into._cache._cache_path)
        where.mkdir(parents=True, exist_ok=True)
        return where / "parity-precompile.lock"
    except (AttributeError, OSError):
        name = hashlib.sha256(str(_ROOT).encode()).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"parity-precompile-{name}.lock"


def precompile(advance: Callable[[], None] = lambda: None) -> dict[str, list[str]] | None:
    """On a cold cache, compile every kernel in two child processes at once (one group
    each) and wait for both; ``advance`` is called after each finished step (``STEPS``
    in all). Returns what each group compiled, or None when the cache was warm. A failed
    child only costs time: what it did not cache, the caller compiles when it first
    calls the kernel."""
    if not cold():
        return None
    with _lock_path().open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        return _run(advance) if cold() else None


def _run(advance: Callable[[], None]) -> dict[str, list[str]]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_ROOT), env.get("PYTHONPATH")) if p)
    children = {name: subprocess.Popen([sys.executable, "-m", "kernels.jit._precompile", name],
                                       env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       stderr=subprocess.DEVNULL, text=True)
                for name in GROUPS}
    with children["hashes"], children["blocks"]:  # closes every pipe and waits for both
        return _follow(children, advance)


def _follow(children: dict[str, subprocess.Popen],
            advance: Callable[[], None]) -> dict[str, list[str]]:
    """Count both children's steps, let each go on once the step it waits for is cached
    (:data:`RELEASES`) or the other child is gone, and collect what each compiled. Each
    child's stdin is written by the one thread following the other child."""
    compiled: dict[str, list[str]] = {}

    def go(name: str) -> None:
        """Let child ``name`` go on past its wait."""
        stdin = children[name].stdin
        assert stdin is not None
        try:
            stdin.write("go\n")
            stdin.close()
        except (BrokenPipeError, ValueError):  # gone, or already let go
            pass

    def follow(name: str, child: subprocess.Popen) -> None:
        other = next(n for n in children if n != name)
        assert child.stdout is not None
        for line in child.stdout:
            kind, _, what = line.rstrip("\n").partition(" ")
            if kind == "compiled":
                compiled[name] = what.split()
                continue
            advance()
            if RELEASES.get(what) == other:
                go(other)
        child.wait()
        go(other)  # gone (perhaps before its step): nothing more to wait for

    readers = [threading.Thread(target=follow, args=item, daemon=True)
               for item in children.items()]
    for r in readers:
        r.start()
    for r in readers:
        r.join()
    return compiled


def _compiled() -> list[str]:
    """The kernels this process compiled (rather than loaded from the cache)."""
    from numba.core.registry import CPUDispatcher

    from kernels.jit import _blake3, _replay, header, merkle, reveal, validate
    return sorted(f"{mod.__name__}.{name}" for mod in (_blake3, _replay, header, merkle, reveal,
                                                       validate)
                  for name, obj in vars(mod).items()
                  if isinstance(obj, CPUDispatcher) and obj.stats.cache_misses)


def load() -> None:
    """On a warm cache, load every kernel a run calls into this process (the calls and
    argument kinds of the compile, so the same specializations) and run the self-test:
    what a run's first calls would do, done ahead (``parity.step.preload``, on a thread)."""
    from kernels.jit._selftest import ensure_ready
    for group in GROUPS.values():
        for _ in group():
            pass
    ensure_ready()


def main(argv: list[str]) -> int:
    """``python -m kernels.jit._precompile GROUP``: compile one group, a line per step,
    then the kernels it compiled."""
    for step in GROUPS[argv[0]]():
        if step == WAIT:
            sys.stdin.readline()
            continue
        print("step", step, flush=True)
    print("compiled", *_compiled(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
