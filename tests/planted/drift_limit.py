"""The JIT twin, but TIMESTAMP_FUTURE is also set at exactly the drift limit
(``timestamp == now + 120``; SPEC: only beyond it)."""
import numpy as np

from kernels import constants as C
from kernels.jit import *  # noqa: F403  (the rest of the twin)
from kernels.jit import validate_blocks as _validate_blocks


def validate_blocks(headers, *arrays, now, **kw):
    out = _validate_blocks(headers, *arrays, now=now, **kw)
    ts = np.ascontiguousarray(np.asarray(headers)[:, C.OFF_TIMESTAMP:C.OFF_TIMESTAMP + 8]).view("<i8")
    at_limit = ts.ravel() == int(now) + C.FUTURE_DRIFT_SECONDS if abs(int(now)) < 1 << 62 else False
    out[at_limit] |= C.TIMESTAMP_FUTURE
    return out
