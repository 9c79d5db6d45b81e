"""The first run's compile on both cores: two child processes each compile one group of
kernels into numba's on-disk cache, then the caller loads every kernel from there.

The groups split the work where it is independent: ``hashes`` compiles the BLAKE3 core,
header hashes and merkle roots; ``blocks`` first what needs no BLAKE3 (the rules, the
replay table, subset sums, encodings), then the reveal hashes, whose BLAKE3 callees the
other process has usually cached by then (numba loads a callee from the cache when it
is there, and compiles it otherwise).

Concurrent writers: numba keeps one index file per function (``*.nbi``: read it, add
the entry, replace the file) and names each data file by the first number free in the
index it read. Two processes adding *different* signatures of one function at once
could both take the same name; the same signature is the same entry in both. So every
kernel compiles with exactly one signature (the public wrappers pass one kind of each
argument); ``tests/test_precompile.py`` checks that on a fresh cache.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from kernels import config
from kernels.constants import HASH_SIZE, HEADER_SIZE

_ROOT = Path(__file__).resolve().parents[2]  # the directory holding the kernels package


def _hashes() -> Iterator[str]:
    """BLAKE3 and what the public header and merkle functions compile, with the argument
    kinds those functions pass."""
    from kernels.jit._blake3 import hash_rows_into
    from kernels.jit.header import _hash_one
    from kernels.jit.merkle import _merkle_roots
    rows = np.zeros((2, HEADER_SIZE), dtype=np.uint8)
    hash_rows_into(rows, np.empty((2, HASH_SIZE), dtype=np.uint8), True)
    yield "header hashes"
    ids = np.zeros((3, HASH_SIZE), dtype=np.uint8)
    _merkle_roots(ids, np.array([0, 3], dtype=np.int64), np.empty((1, HASH_SIZE), np.uint8), True)
    yield "merkle roots"
    _hash_one(bytes(HEADER_SIZE))
    yield "header hash"


def _blocks() -> Iterator[str]:
    """The rules, the replay table, subset sums and encodings, then the reveal hashes."""
    from kernels.jit import reveal, validate
    from kernels.jit._selftest import _replay_selftest
    n = 2
    h32 = np.zeros((n, HASH_SIZE), dtype=np.uint8)
    validate._rules(np.zeros((n, HEADER_SIZE), dtype=np.uint8), h32, h32, h32, h32,
                    np.zeros(n, dtype=np.bool_), np.zeros(n + 1, dtype=np.int64), 0,
                    bytes(HASH_SIZE), (False, 0, np.zeros((1, HASH_SIZE), np.uint8), 0), None)
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
    reveal._reveal_hashes_into(*reveal.read_only(*reveals, h32), h32.copy(), h32.copy(),
                               h32.copy(), True)
    yield "reveal hashes"


GROUPS: dict[str, Callable[[], Iterator[str]]] = {"hashes": _hashes, "blocks": _blocks}
#: steps reported by all groups together (the progress count)
STEPS = 8


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
    its internals; if they change, answers False (the caller then compiles in-process,
    as without this module)."""
    if not config.CACHE or os.environ.get("NUMBA_DISABLE_JIT", "0") != "0":
        return False
    try:
        return any(not k._cache._cache_file._load_index() for k in _entry_kernels())
    except (AttributeError, TypeError):
        return False


def precompile(advance: Callable[[], None] = lambda: None) -> bool:
    """On a cold cache, compile every kernel in two child processes at once (one group
    each) and wait for both; ``advance`` is called after each finished step (``STEPS``
    in all). Returns whether it ran. A failed child only costs time: what it did not
    cache, the caller compiles when it first calls the kernel."""
    if not cold():
        return False
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_ROOT), env.get("PYTHONPATH")) if p)
    children = [subprocess.Popen([sys.executable, "-m", "kernels.jit._precompile", name],
                                 env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                 text=True) for name in GROUPS]

    def follow(child: subprocess.Popen) -> None:
        assert child.stdout is not None
        for _ in child.stdout:
            advance()
        child.wait()

    readers = [threading.Thread(target=follow, args=(c,), daemon=True) for c in children]
    for r in readers:
        r.start()
    for r in readers:
        r.join()
    return True


def main(argv: list[str]) -> int:
    """``python -m kernels.jit._precompile GROUP``: compile one group, a line per step."""
    for step in GROUPS[argv[0]]():
        print(step, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
