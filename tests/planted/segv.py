"""The JIT twin, but hashing a header whose version is 0xFFFFFFFF dies of SIGSEGV (as
an out-of-bounds read in a numba kernel would)."""
import os
import signal

import numpy as np

from kernels.jit import *  # noqa: F403  (the rest of the twin)
from kernels.jit import hash_headers as _hash_headers


def hash_headers(headers):
    versions = np.ascontiguousarray(np.asarray(headers)[:, 0:4]).view("<u4")
    if (versions == 0xFFFFFFFF).any():
        os.kill(os.getpid(), signal.SIGSEGV)
    return _hash_headers(headers)
