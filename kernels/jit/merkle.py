"""Transaction merkle roots (SPEC section 2) of many blocks at once.

Each level of every block in the batch is hashed in one lane-parallel call:
first all pairs ``H(a || b)`` (64-byte inputs read in place from the level
array), then all odd nodes ``H(last)`` (32-byte inputs).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numba import njit, prange

from kernels import checks, config
from kernels.config import JIT_OPTIONS, PARALLEL_OPTIONS
from kernels.constants import HASH_SIZE
from kernels.jit._blake3 import hash_rows_into, hash_words_into
from kernels.jit._selftest import ensure_ready

__all__ = ["merkle_root", "merkle_roots", "merkle_tree"]


@njit(**JIT_OPTIONS)
def _plan_block(b, first, c, prow, orow, pair_starts, pair_dest, odd_starts, odd_dest):
    row = prow + orow  # the block's nodes of the next level start here
    for i in range(c // 2):
        pair_starts[prow + i] = (first + 2 * i) * 8  # word offset of node 2i; 2i+1 follows
        pair_dest[prow + i] = row + i
    if c & 1:
        odd_starts[orow] = (first + c - 1) * 8
        odd_dest[orow] = row + c // 2


@njit(**PARALLEL_OPTIONS)
def _next_level(level, start, count, parallel):
    """Hash one level of every block whose node count is above 1."""
    nblocks = count.shape[0]
    prow = np.zeros(nblocks + 1, dtype=np.int64)  # pairs before block b
    orow = np.zeros(nblocks + 1, dtype=np.int64)  # odd nodes before block b
    for b in range(nblocks):
        c = count[b] if count[b] > 1 else 0
        prow[b + 1] = prow[b] + c // 2
        orow[b + 1] = orow[b] + (c & 1)
    pairs, odd = prow[nblocks], orow[nblocks]
    nxt = np.empty((pairs + odd, 32), dtype=np.uint8)
    pair_starts = np.empty(pairs, dtype=np.int64)
    pair_dest = np.empty(pairs, dtype=np.int64)
    odd_starts = np.empty(odd, dtype=np.int64)
    odd_dest = np.empty(odd, dtype=np.int64)
    for b in prange(nblocks):
        c = count[b]
        if c > 1:
            _plan_block(np.int64(b), start[b], c, prow[b], orow[b], pair_starts, pair_dest,
                        odd_starts, odd_dest)
            start[b] = prow[b] + orow[b]
            count[b] = c // 2 + (c & 1)
    words = level.reshape(level.shape[0] * 32).view(np.uint32)
    out_words = nxt.reshape(nxt.shape[0] * 32).view(np.uint32)
    hash_words_into(words, pair_starts, np.int64(64), pair_dest, out_words, parallel)
    hash_words_into(words, odd_starts, np.int64(32), odd_dest, out_words, parallel)
    return nxt


@njit(**JIT_OPTIONS)
def _merkle_roots(ids, offsets, out, parallel):
    level = np.empty((ids.shape[0], 32), dtype=np.uint8)
    hash_rows_into(ids, level, parallel)  # leaves: every id hashed once more
    start = offsets[:-1].copy()
    count = offsets[1:] - offsets[:-1]
    out[:, :] = 0  # an empty block's root is 32 zero bytes
    active = _take_roots(level, start, count, out)
    while active > 0:
        level = _next_level(level, start, count, parallel)
        active = _take_roots(level, start, count, out)


@njit(**JIT_OPTIONS)
def _take_roots(level, start, count, out):
    """Copy the root of every block that just reached one node; retire it. Returns
    how many blocks still have more than one node."""
    active = 0
    for b in range(count.shape[0]):
        if count[b] == 1:
            for k in range(32):
                out[b, k] = level[start[b], k]
            count[b] = 0
        elif count[b] > 1:
            active += 1
    return active


def merkle_roots(ids: np.ndarray, offsets: np.ndarray, parallel: bool = True) -> np.ndarray:
    """CSR ids ``uint8[T, 32]`` with ``offsets[N+1]`` -> roots ``uint8[N, 32]``."""
    ids, offsets = checks.ids(ids, offsets)
    ensure_ready()
    n = offsets.shape[0] - 1
    out = np.empty((n, HASH_SIZE), dtype=np.uint8)
    step = config.CHUNK_BLOCKS
    if n <= step:
        _merkle_roots(ids, offsets, out, parallel)
        return out
    for lo in range(0, n, step):  # chunk by chunk: each chunk's levels stay small
        hi = min(n, lo + step)
        a, b = int(offsets[lo]), int(offsets[hi])
        _merkle_roots(ids[a:b], offsets[lo:hi + 1] - a, out[lo:hi], parallel)
    return out


def _as_ids(txids: Sequence[bytes]) -> np.ndarray:
    raw = b"".join(checks.fixed_items(txids, "txids", HASH_SIZE))
    return np.frombuffer(bytearray(raw), dtype=np.uint8).reshape(-1, HASH_SIZE)


def merkle_root(txids: Sequence[bytes]) -> bytes:
    """The root of one list of 32-byte ids."""
    ids = _as_ids(txids)
    offsets = np.array([0, ids.shape[0]], dtype=np.int64)
    return merkle_roots(ids, offsets, parallel=False)[0].tobytes()


def merkle_tree(txids: Sequence[bytes]) -> list[list[bytes]]:
    """Every level of one tree, leaves first (for locating where two trees diverge)."""
    ids = _as_ids(txids)
    if ids.shape[0] == 0:
        return []
    ensure_ready()
    level = np.empty_like(ids)
    hash_rows_into(ids, level, False)
    levels = [level]
    start = np.zeros(1, dtype=np.int64)
    count = np.array([ids.shape[0]], dtype=np.int64)
    while count[0] > 1:
        level = _next_level(level, start, count, False)
        levels.append(level)
    return [[row.tobytes() for row in lv] for lv in levels]
