"""The JIT twin, but SOLUTION_INVALID is skipped (never set) for a reveal of exactly
4,096 numbers (SPEC's MAX_REVEAL_ITEMS, the largest valid count)."""
import numpy as np

from kernels import constants as C
from kernels.jit import *  # noqa: F403  (the rest of the twin)
from kernels.jit import validate_blocks as _validate_blocks


def validate_blocks(headers, ids, id_offsets, numbers, num_offsets, *arrays, **kw):
    out = _validate_blocks(headers, ids, id_offsets, numbers, num_offsets, *arrays, **kw)
    out[np.diff(np.asarray(num_offsets)) == C.MAX_REVEAL_ITEMS] &= ~np.uint32(C.SOLUTION_INVALID)
    return out
