"""Transaction merkle roots (SPEC section 2) of many blocks at once.

Blocks with the same id count share one tree shape: up to ``LANES`` of them are hashed
side by side, one per lane, leaves left to right with each node combined as soon as its
pair is complete, so the levels stay in the lanes' registers and scratch instead of
being written out and gathered back (2.5x the level-by-level path on 100k generated
blocks, one thread). Blocks too few to fill lanes that way are hashed level by level:
each level of all of them in one lane-parallel call, first all pairs ``H(a || b)``
(64-byte inputs read in place from the level array), then all odd nodes ``H(last)``
(32-byte inputs); :func:`merkle_tree` keeps every level that way.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numba import njit, prange

from kernels import checks, config
from kernels.config import JIT_OPTIONS, LANES, PARALLEL_OPTIONS
from kernels.constants import HASH_SIZE
from kernels.jit._blake3 import (
    CHUNK_END,
    CHUNK_START,
    ROOT,
    _compress_lanes,
    _group_by_length,
    _parent_into,
    _set_iv,
    hash_rows_into,
    hash_words_into,
)
from kernels.jit._sched import dynamic, restore
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
    previous = dynamic(nblocks)
    for b in prange(nblocks):
        c = count[b]
        if c > 1:
            _plan_block(np.int64(b), start[b], c, prow[b], orow[b], pair_starts, pair_dest,
                        odd_starts, odd_dest)
            start[b] = prow[b] + orow[b]
            count[b] = c // 2 + (c & 1)
    restore(previous)
    words = level.reshape(level.shape[0] * 32).view(np.uint32)
    out_words = nxt.reshape(nxt.shape[0] * 32).view(np.uint32)
    hash_words_into(words, pair_starts, np.int64(64), pair_dest, out_words, parallel)
    hash_words_into(words, odd_starts, np.int64(32), odd_dest, out_words, parallel)
    return nxt


#: a hash of one 32- or 64-byte input is one compression of a one-block, one-chunk root
_ONE_BLOCK = CHUNK_START | CHUNK_END | ROOT
#: blocks with the same id count (one tree shape) are hashed one per lane, the whole tree
#: at once, when at least this many share it; the others level by level
MIN_SHARED = LANES // 2
#: leaves per parallel task of the lane path (tasks cost alike whatever their id count)
TASK_LEAVES = 4096


@njit(**JIT_OPTIONS)
def _leaf_into(words, offsets, order, g0, nl, i, st):
    """Chaining values of lanes ``0..nl`` <- H(id ``i`` of block ``order[g0 + l]``)."""
    if nl == LANES:  # unsigned indices, constant lane count: see _blake3._load_block
        for w in range(8):
            bw, uw = np.uint64((8 + w) * LANES), np.uint64(i * 8 + w)
            for l in range(LANES):
                st[bw + np.uint64(l)] = words[np.uint64(offsets[order[g0 + l]]) * np.uint64(8)
                                              + uw]
    else:
        for w in range(8):
            base = (8 + w) * LANES
            for l in range(nl):
                st[base + l] = words[(offsets[order[g0 + l]] + i) * 8 + w]
    for x in range(16 * LANES, 24 * LANES):
        st[x] = np.uint32(0)
    _set_iv(st, nl)
    _compress_lanes(st, nl, np.int64(0), np.int64(HASH_SIZE), np.int64(_ONE_BLOCK))


@njit(**JIT_OPTIONS)
def _alone_into(st, nl):
    """Chaining values <- H(chaining value): the odd node of a level, re-hashed alone."""
    for x in range(8 * LANES):
        st[8 * LANES + x] = st[x]
        st[16 * LANES + x] = np.uint32(0)
    _set_iv(st, nl)
    _compress_lanes(st, nl, np.int64(0), np.int64(HASH_SIZE), np.int64(_ONE_BLOCK))


@njit(**JIT_OPTIONS)
def _tree_group(words, offsets, order, g0, nl, k, counts, pending, st, out_words):
    """Roots of blocks ``order[g0:g0 + nl]`` (``k >= 1`` ids each), one per lane. Leaves
    come left to right and each node is combined as soon as its pair is complete, so a
    level is never stored: ``counts[L]`` nodes at level L (known from k), ``pending[L]``
    a left node waiting for its right one. The last leaf completes every level's last
    node (hashed alone when its level is odd), up to the root."""
    for i in range(k):
        _leaf_into(words, offsets, order, g0, nl, i, st)
        level = 0
        j = i
        while counts[level] > 1:
            if j % 2 == 1:
                _parent_into(st, pending[level], nl, np.int64(_ONE_BLOCK))
            elif j == counts[level] - 1:
                _alone_into(st, nl)
            else:
                for x in range(8 * LANES):
                    pending[level, x] = st[x]
                break
            j //= 2
            level += 1
    for l in range(nl):
        o = order[g0 + l] * 8
        for w in range(8):
            out_words[o + w] = st[w * LANES + l]


@njit(**JIT_OPTIONS)
def _lane_task(words, offsets, order, tasks, t, out_words):
    lo, hi, k = tasks[t, 0], tasks[t, 1], tasks[t, 2]
    depth = 1
    while (1 << (depth - 1)) < k:
        depth += 1
    counts = np.empty(depth, dtype=np.int64)
    counts[0] = k
    for d in range(1, depth):
        counts[d] = (counts[d - 1] + 1) // 2
    st = np.empty(24 * LANES, dtype=np.uint32)
    pending = np.empty((depth, 8 * LANES), dtype=np.uint32)
    for g0 in range(lo, hi, LANES):
        _tree_group(words, offsets, order, g0, min(LANES, hi - g0), k, counts, pending, st,
                    out_words)


@njit(**PARALLEL_OPTIONS)
def _lane_parallel(words, offsets, order, tasks, out_words):
    previous = dynamic(tasks.shape[0])
    for t in prange(tasks.shape[0]):
        _lane_task(words, offsets, order, tasks, np.int64(t), out_words)
    restore(previous)


@njit(**JIT_OPTIONS)
def _plan_lanes(count, order, runs):
    """Tasks ``(first, end, k)`` over ``order`` for runs (``_group_by_length``) of at
    least ``MIN_SHARED`` blocks with the same ``k >= 1``, and the blocks left for the
    level path."""
    n = count.shape[0]
    tasks = np.empty((n, 3), dtype=np.int64)
    rest = np.empty(n, dtype=np.int64)
    ntasks = nrest = 0
    for r in range(runs.shape[0] - 1):
        i, j = runs[r], runs[r + 1]
        k = count[order[i]]
        if k > 0 and j - i >= MIN_SHARED:
            step = max(LANES, (TASK_LEAVES // k + LANES - 1) // LANES * LANES)
            for s in range(i, j, step):
                tasks[ntasks, 0] = s
                tasks[ntasks, 1] = min(j, s + step)
                tasks[ntasks, 2] = k
                ntasks += 1
        elif k > 0:
            for s in range(i, j):
                rest[nrest] = order[s]
                nrest += 1
    return tasks[:ntasks], rest[:nrest]


@njit(**JIT_OPTIONS)
def _levels_into(words, offsets, blocks, out, parallel):
    """Roots of ``blocks`` level by level: each level of all of them in one lane-parallel
    call (for trees too few to fill lanes one block each)."""
    n = blocks.shape[0]
    start = np.empty(n, dtype=np.int64)
    count = np.empty(n, dtype=np.int64)
    total = 0
    for j in range(n):
        start[j] = total
        count[j] = offsets[blocks[j] + 1] - offsets[blocks[j]]
        total += count[j]
    starts = np.empty(total, dtype=np.int64)
    for j in range(n):
        for i in range(count[j]):
            starts[start[j] + i] = (offsets[blocks[j]] + i) * 8
    level = np.empty((total, 32), dtype=np.uint8)
    hash_words_into(words, starts, np.int64(HASH_SIZE), np.arange(total),
                    level.reshape(total * 32).view(np.uint32), parallel)
    roots = np.zeros((n, 32), dtype=np.uint8)
    active = _take_roots(level, start, count, roots)
    while active > 0:
        level = _next_level(level, start, count, parallel)
        active = _take_roots(level, start, count, roots)
    for j in range(n):
        out[blocks[j], :] = roots[j, :]


@njit(**JIT_OPTIONS)
def _merkle_roots(ids, offsets, out, parallel):
    n = offsets.shape[0] - 1
    words = ids.reshape(ids.shape[0] * 32).view(np.uint32)
    count = offsets[1:] - offsets[:-1]
    order, runs = _group_by_length(count)
    tasks, rest = _plan_lanes(count, order, runs)
    out[:, :] = 0  # an empty block's root is 32 zero bytes
    out_words = out.reshape(n * 32).view(np.uint32)
    if parallel and tasks.shape[0] > 1:
        _lane_parallel(words, offsets, order, tasks, out_words)
    else:
        for t in range(tasks.shape[0]):
            _lane_task(words, offsets, order, tasks, t, out_words)
    if rest.shape[0]:
        _levels_into(words, offsets, rest, out, parallel)


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
