"""The one place numba compiler flags come from (never fastmath: consensus code)."""
from __future__ import annotations

import os

CACHE = os.environ.get("PARITY_NUMBA_CACHE", "1") != "0"

#: flags for every serial kernel
JIT_OPTIONS: dict[str, bool] = {"cache": CACHE, "nogil": True, "fastmath": False, "error_model": "numpy"}
#: flags for kernels that split work across threads with ``prange``
PARALLEL_OPTIONS: dict[str, bool] = {**JIT_OPTIONS, "parallel": True}
#: flags for small helpers that must be inlined into a lane loop
INLINE_OPTIONS: dict[str, object] = {**JIT_OPTIONS, "inline": "always"}

#: inputs hashed side by side, one per lane (16 x uint32 = one AVX-512 register)
LANES = 16
