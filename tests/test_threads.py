"""How the JIT twin's parallel loops use threads (kernels/config.py, kernels/jit/_sched.py):
numba's TBB layer when it is installed, an explicit choice winning, and every ``prange``
loop scheduled in pieces that TBB hands to threads as they come free."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numba
import numpy as np
import pytest
from numba import njit, prange

from kernels.config import DYNAMIC_DIVISIONS, INLINE_OPTIONS, PARALLEL_OPTIONS
from kernels.jit._sched import dynamic, restore

ROOT = Path(__file__).resolve().parent.parent
_LAYER = """
import numba
import kernels.jit as J
from bench import data
s = data.chain(300)
J.hash_headers(s.headers)
print(numba.threading_layer())
"""


def _layer(env: dict) -> str:
    base = {k: v for k, v in os.environ.items() if k != "NUMBA_THREADING_LAYER"}
    out = subprocess.run([sys.executable, "-c", _LAYER], cwd=ROOT, capture_output=True,
                         text=True, timeout=300, env={**base, "PYTHONPATH": str(ROOT), **env})
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()[-1]


def test_kernels_run_on_tbb_where_it_is_a_dependency_and_an_explicit_layer_wins():
    """``tbb`` is a dependency on Linux x86_64 (pyproject.toml): there, never a skip; a
    failed install fails here instead of leaving the kernels on OpenMP unnoticed."""
    import platform
    if not (sys.platform.startswith("linux") and platform.machine() == "x86_64"):
        pytest.skip("tbb is a dependency on Linux x86_64 only")  # pragma: no cover
    assert _layer({}) == "tbb"
    assert _layer({"NUMBA_THREADING_LAYER": "omp"}) == "omp"
    # named explicitly, TBB is found only because kernels/config.py loads its library
    assert _layer({"NUMBA_THREADING_LAYER": "tbb"}) == "tbb"


@njit(**{**PARALLEL_OPTIONS, "cache": False})
def _loop(out):
    """A parallel kernel shaped like the twin's: returns the piece size its loop saw and
    the setting after it."""
    previous = dynamic(out.shape[0])
    seen = _peek()
    for i in prange(out.shape[0]):
        out[i] = i * 3
    restore(previous)
    return seen, _peek()


@njit(**{**INLINE_OPTIONS, "cache": False})
def _peek():
    previous = dynamic(0)  # sets 1, returns what was there
    restore(previous)
    return previous


@pytest.mark.parametrize("n", [0, 1, DYNAMIC_DIVISIONS - 1, DYNAMIC_DIVISIONS,
                               10 * DYNAMIC_DIVISIONS + 7])
def test_a_loop_runs_in_pieces_and_leaves_the_setting_as_it_found_it(n):
    out = np.zeros(n, dtype=np.int64)
    with numba.parallel_chunksize(5):  # a caller's own setting
        seen, after = _loop(out)
        assert numba.get_parallel_chunksize() == 5
    assert seen == max(1, n // DYNAMIC_DIVISIONS)
    assert after == 5
    assert np.array_equal(out, np.arange(n) * 3)  # every iteration ran, once


def test_every_parallel_loop_of_the_jit_twin_is_cut_into_pieces():
    """A ``prange`` loop without ``dynamic`` before it and ``restore`` after it would go
    back to one fixed half per thread (a loop waiting for a thread a neighbour slows)."""
    loops = 0
    for path in sorted((ROOT / "kernels" / "jit").glob("*.py")):
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            m = re.match(r"^(\s*)for \w+ in prange\((.*)\):$", line)
            if not m:
                continue
            loops += 1
            indent, iterations = m.groups()
            assert lines[i - 1] == f"{indent}previous = dynamic({iterations})", \
                f"{path.name}:{i + 1}"
            end = next(j for j in range(i + 1, len(lines))
                       if lines[j].strip() and not lines[j].startswith(indent + " "))
            assert lines[end] == f"{indent}restore(previous)", f"{path.name}:{i + 1}"
    assert loops == 11
