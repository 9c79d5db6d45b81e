"""How a kernel's ``prange`` loop is shared between threads: in pieces of ``n //
DYNAMIC_DIVISIONS`` iterations that TBB hands out as threads come free, not one fixed
half per thread (see kernels/config.py).

numba reads the piece size (its "parallel chunksize", a per-thread setting) when a loop
starts. ``numba.set_parallel_chunksize`` calls the runtime through a ctypes pointer, which
numba cannot cache; these call the same C functions by symbol name, declared as numba's
own loop code declares them, and are inlined into the parallel kernel, whose cached code
starts numba's threading layer (and so finds those symbols) when a process loads it.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from kernels.config import DYNAMIC_DIVISIONS, INLINE_OPTIONS


@intrinsic
def _get_chunksize(typingctx):
    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.IntType(64), [])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "get_parallel_chunksize")
        return builder.call(fn, [])
    return types.uint64(), codegen


@intrinsic
def _set_chunksize(typingctx, size):
    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.VoidType(), [ir.IntType(64)])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "set_parallel_chunksize")
        builder.call(fn, args)
        return context.get_dummy_value()
    return types.none(types.uint64), codegen


@njit(**INLINE_OPTIONS)
def dynamic(iterations):
    """Before a ``prange`` loop of ``iterations``: pieces of ``iterations //
    DYNAMIC_DIVISIONS`` (at least 1) for the calling thread's next loops. Returns the
    setting to :func:`restore` after it."""
    previous = _get_chunksize()
    _set_chunksize(np.uint64(max(np.int64(1), np.int64(iterations) // DYNAMIC_DIVISIONS)))
    return previous


@njit(**INLINE_OPTIONS)
def restore(previous):
    _set_chunksize(previous)
