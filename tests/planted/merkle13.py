"""The JIT twin, but the merkle root of a block with exactly 13 ids has its last bit
flipped."""
import numpy as np

from kernels.jit import *  # noqa: F403  (the rest of the twin)
from kernels.jit import merkle_roots as _merkle_roots


def merkle_roots(ids, offsets):
    out = _merkle_roots(ids, offsets)
    out[np.diff(np.asarray(offsets)) == 13, 31] ^= 1
    return out
