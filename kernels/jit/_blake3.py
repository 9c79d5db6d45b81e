"""BLAKE3 (hash mode, 32-byte output) in numba, one input per SIMD lane.

Inputs hashed together must have the same length, so they share one tree shape:
a group of up to ``LANES`` rows runs chunk by chunk with the state held as
``[words, lanes]`` uint32 arrays, and the compression loop over lanes has a
straight-line body that LLVM vectorizes. Inputs of different lengths are
grouped by length and hashed run by run (:func:`hash_var_into`).
"""
from __future__ import annotations

import sys

import numpy as np
from numba import njit, prange

from kernels import checks
from kernels.config import INLINE_OPTIONS, JIT_OPTIONS, LANES, PARALLEL_OPTIONS
from kernels.jit._sched import dynamic, restore

IV0 = np.uint32(0x6A09E667)
IV1 = np.uint32(0xBB67AE85)
IV2 = np.uint32(0x3C6EF372)
IV3 = np.uint32(0xA54FF53A)
IV4 = np.uint32(0x510E527F)
IV5 = np.uint32(0x9B05688C)
IV6 = np.uint32(0x1F83D9AB)
IV7 = np.uint32(0x5BE0CD19)

CHUNK_START = 1
CHUNK_END = 2
PARENT = 4
ROOT = 8
BLOCK_LEN = 64
CHUNK_LEN = 1024
if sys.byteorder != "little":  # words are read through uint32 views
    raise ImportError("kernels.jit needs a little-endian machine")

#: below this many rows a call stays on one thread
PARALLEL_MIN_ROWS = 4 * LANES


@njit(**INLINE_OPTIONS)
def _rotr(x, n):
    return np.uint32((x >> n) | (x << (32 - n)))


@njit(**INLINE_OPTIONS)
def _g(a, b, c, d, mx, my):
    a = np.uint32(a + b + mx)
    d = _rotr(np.uint32(d ^ a), 16)
    c = np.uint32(c + d)
    b = _rotr(np.uint32(b ^ c), 12)
    a = np.uint32(a + b + my)
    d = _rotr(np.uint32(d ^ a), 8)
    c = np.uint32(c + d)
    b = _rotr(np.uint32(b ^ c), 7)
    return a, b, c, d


@njit(**INLINE_OPTIONS)
def _round(s, m):
    s0, s4, s8, s12 = _g(s[0], s[4], s[8], s[12], m[0], m[1])
    s1, s5, s9, s13 = _g(s[1], s[5], s[9], s[13], m[2], m[3])
    s2, s6, s10, s14 = _g(s[2], s[6], s[10], s[14], m[4], m[5])
    s3, s7, s11, s15 = _g(s[3], s[7], s[11], s[15], m[6], m[7])
    s0, s5, s10, s15 = _g(s0, s5, s10, s15, m[8], m[9])
    s1, s6, s11, s12 = _g(s1, s6, s11, s12, m[10], m[11])
    s2, s7, s8, s13 = _g(s2, s7, s8, s13, m[12], m[13])
    s3, s4, s9, s14 = _g(s3, s4, s9, s14, m[14], m[15])
    return (s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11, s12, s13, s14, s15)


@njit(**INLINE_OPTIONS)
def _permute(m):
    return (m[2], m[6], m[3], m[10], m[7], m[0], m[4], m[13],
            m[1], m[11], m[12], m[5], m[9], m[14], m[15], m[8])


@njit(**JIT_OPTIONS)
def _compress_lanes(st, nl, counter, block_len, flags):
    """Compress lanes ``0..nl``: ``st`` is flat ``[24, LANES]`` uint32, rows 0-7 the
    chaining value (updated in place), rows 8-23 the message block.

    One flat array with constant row offsets lets LLVM prove the rows never
    overlap, so the lane loop vectorizes without runtime alias checks.
    """
    clo = np.uint32(counter & 0xFFFFFFFF)
    chi = np.uint32(counter >> 32)
    bl = np.uint32(block_len)
    fl = np.uint32(flags)
    for l in range(nl):
        s = (st[0 * LANES + l], st[1 * LANES + l], st[2 * LANES + l], st[3 * LANES + l],
             st[4 * LANES + l], st[5 * LANES + l], st[6 * LANES + l], st[7 * LANES + l],
             IV0, IV1, IV2, IV3, clo, chi, bl, fl)
        w = (st[8 * LANES + l], st[9 * LANES + l], st[10 * LANES + l], st[11 * LANES + l],
             st[12 * LANES + l], st[13 * LANES + l], st[14 * LANES + l], st[15 * LANES + l],
             st[16 * LANES + l], st[17 * LANES + l], st[18 * LANES + l], st[19 * LANES + l],
             st[20 * LANES + l], st[21 * LANES + l], st[22 * LANES + l], st[23 * LANES + l])
        s = _round(s, w)
        w = _permute(w)
        s = _round(s, w)
        w = _permute(w)
        s = _round(s, w)
        w = _permute(w)
        s = _round(s, w)
        w = _permute(w)
        s = _round(s, w)
        w = _permute(w)
        s = _round(s, w)
        w = _permute(w)
        s = _round(s, w)
        st[0 * LANES + l] = np.uint32(s[0] ^ s[8])
        st[1 * LANES + l] = np.uint32(s[1] ^ s[9])
        st[2 * LANES + l] = np.uint32(s[2] ^ s[10])
        st[3 * LANES + l] = np.uint32(s[3] ^ s[11])
        st[4 * LANES + l] = np.uint32(s[4] ^ s[12])
        st[5 * LANES + l] = np.uint32(s[5] ^ s[13])
        st[6 * LANES + l] = np.uint32(s[6] ^ s[14])
        st[7 * LANES + l] = np.uint32(s[7] ^ s[15])


@njit(**JIT_OPTIONS)
def _set_iv(st, nl):
    for l in range(nl):
        st[0 * LANES + l] = IV0
        st[1 * LANES + l] = IV1
        st[2 * LANES + l] = IV2
        st[3 * LANES + l] = IV3
        st[4 * LANES + l] = IV4
        st[5 * LANES + l] = IV5
        st[6 * LANES + l] = IV6
        st[7 * LANES + l] = IV7


@njit(**JIT_OPTIONS)
def _load_block(words, starts, stride, nwords, i0, nl, first, st):
    """Message rows of ``st`` <- words ``first..first+16`` of inputs ``i0..i0+nl``.

    Input i is ``words[s:s + nwords]`` with ``s = i * stride`` when ``stride >= 0``, else
    (``stride == -1``) ``s = starts[i]``; words past ``nwords`` are the zero padding of
    the last block. A full group indexes with unsigned integers over a constant lane
    count, so LLVM unrolls the lanes and writes each message row as one vector (the
    vector loads of the compression then need no store forwarding from 16 scalar
    stores): header hashing 1.4-1.7x as fast as with the loop over ``nl``."""
    m = min(16, max(0, nwords - first))  # words of this block inside the inputs
    if nl == LANES and stride >= 0:
        b0 = np.uint64(i0 * stride + first)
        us = np.uint64(stride)
        for w in range(m):
            bw, uw = np.uint64((8 + w) * LANES), np.uint64(w)
            for l in range(LANES):
                st[bw + np.uint64(l)] = words[b0 + np.uint64(l) * us + uw]
    elif nl == LANES:
        for w in range(m):
            bw, uw = np.uint64((8 + w) * LANES), np.uint64(first + w)
            for l in range(LANES):
                st[bw + np.uint64(l)] = words[np.uint64(starts[i0 + l]) + uw]
    else:
        for w in range(m):
            base = (8 + w) * LANES
            if stride >= 0:
                for l in range(nl):
                    st[base + l] = words[(i0 + l) * stride + first + w]
            else:
                for l in range(nl):
                    st[base + l] = words[starts[i0 + l] + first + w]
    for w in range(m, 16):
        base = (8 + w) * LANES
        for l in range(nl):
            st[base + l] = np.uint32(0)


@njit(**JIT_OPTIONS)
def _parent_into(st, left, nl, flags):
    """Chaining value <- compress(IV, left || chaining value): a parent node."""
    for i in range(8 * LANES):
        st[8 * LANES + i] = left[i]
        st[16 * LANES + i] = st[i]
    _set_iv(st, nl)
    _compress_lanes(st, nl, np.int64(0), np.int64(BLOCK_LEN), flags)


@njit(**JIT_OPTIONS)
def _stack_depth(n):
    """Chaining values the chunk tree of an ``n``-byte input can hold at once."""
    nchunks = max(1, (n + CHUNK_LEN - 1) // CHUNK_LEN)
    depth = 1
    while (1 << depth) < nchunks:
        depth += 1
    return depth + 1


@njit(**JIT_OPTIONS)
def _hash_group(words, starts, stride, n, dest, i0, nl, out_words, st, stack):
    """Hash inputs ``i0..i0+nl`` (each ``n`` bytes at word offset ``starts[i]``, or
    ``i * stride`` when ``stride >= 0``, the bytes past ``n`` in its last word zero) into
    ``out_words[8 * d:][:8]``, ``d = dest[i]`` (or ``i`` when ``stride >= 0``).
    ``st`` (``24 * LANES`` words) and ``stack`` (``[_stack_depth(n), 8 * LANES]``) are
    scratch, allocated once per call rather than once per group."""
    nwords = (n + 3) // 4
    nchunks = max(1, (n + CHUNK_LEN - 1) // CHUNK_LEN)
    depth = 0
    for c in range(nchunks):
        start = c * CHUNK_LEN
        clen = min(CHUNK_LEN, n - start)
        nblocks = max(1, (clen + BLOCK_LEN - 1) // BLOCK_LEN)
        _set_iv(st, nl)
        for b in range(nblocks):
            blen = min(BLOCK_LEN, clen - b * BLOCK_LEN)
            _load_block(words, starts, stride, nwords, i0, nl, (start + b * BLOCK_LEN) // 4, st)
            flags = 0
            if b == 0:
                flags |= CHUNK_START
            if b == nblocks - 1:
                flags |= CHUNK_END
                if nchunks == 1:
                    flags |= ROOT
            _compress_lanes(st, nl, c, blen, flags)
        if c < nchunks - 1:
            total = c + 1
            while total & 1 == 0:
                depth -= 1
                _parent_into(st, stack[depth], nl, np.int64(PARENT))
                total >>= 1
            for i in range(8 * LANES):
                stack[depth, i] = st[i]
            depth += 1
    while depth > 0:
        depth -= 1
        _parent_into(st, stack[depth], nl, np.int64(PARENT | ROOT if depth == 0 else PARENT))
    for l in range(nl):  # lane by lane: 8 consecutive output words each
        o = (i0 + l) * 8 if stride >= 0 else dest[i0 + l] * 8
        for w in range(8):
            out_words[o + w] = st[w * LANES + l]


@njit(**JIT_OPTIONS)
def _hash_serial(words, starts, stride, count, n, dest, out_words):
    st = np.empty(24 * LANES, dtype=np.uint32)
    stack = np.empty((_stack_depth(n), 8 * LANES), dtype=np.uint32)
    for i0 in range(0, count, LANES):
        _hash_group(words, starts, stride, n, dest, i0, min(LANES, count - i0), out_words, st,
                    stack)


#: lane groups per parallel task (one scratch allocation each)
GROUPS_PER_TASK = 16


@njit(**JIT_OPTIONS)
def _hash_task(words, starts, stride, count, n, dest, task, out_words):
    st = np.empty(24 * LANES, dtype=np.uint32)
    stack = np.empty((_stack_depth(n), 8 * LANES), dtype=np.uint32)
    first = task * GROUPS_PER_TASK * LANES
    last = min(count, first + GROUPS_PER_TASK * LANES)
    for i0 in range(first, last, LANES):
        _hash_group(words, starts, stride, n, dest, i0, min(LANES, last - i0), out_words, st,
                    stack)


@njit(**PARALLEL_OPTIONS)
def _hash_parallel(words, starts, stride, count, n, dest, out_words):
    tasks = (count + GROUPS_PER_TASK * LANES - 1) // (GROUPS_PER_TASK * LANES)
    previous = dynamic(tasks)
    for t in prange(tasks):
        _hash_task(words, starts, stride, count, n, dest, np.int64(t), out_words)
    restore(previous)


@njit(**JIT_OPTIONS)
def hash_words_into(words, starts, n, dest, out_words, parallel):
    """BLAKE3 of ``n``-byte inputs at word offsets ``starts`` of ``words``; digest i
    goes to words ``8 * dest[i]..8 * dest[i] + 8`` of ``out_words`` (from numba)."""
    _dispatch(words, starts, np.int64(-1), starts.shape[0], np.int64(n), dest, out_words,
              parallel)


@njit(**JIT_OPTIONS)
def _dispatch(words, starts, stride, count, n, dest, out_words, parallel):
    if parallel and count >= PARALLEL_MIN_ROWS:
        _hash_parallel(words, starts, stride, count, n, dest, out_words)
    else:
        _hash_serial(words, starts, stride, count, n, dest, out_words)


@njit(**JIT_OPTIONS)
def _as_words(data):
    """``data[R, n]`` (C order) as little-endian words, one row after another.

    Rows whose length is a multiple of 4 are read in place; others are copied
    with zero padding to whole words.
    """
    rows, n = data.shape
    if n % 4 == 0:
        return data.reshape(rows * n).view(np.uint32), n // 4
    row_words = (n + 3) // 4
    buf = np.zeros(rows * row_words * 4, dtype=np.uint8)
    for r in range(rows):
        o = r * row_words * 4
        for k in range(n):
            buf[o + k] = data[r, k]
    return buf.view(np.uint32), row_words


@njit(**JIT_OPTIONS)
def hash_rows_into(data, out, parallel):
    """BLAKE3 of each row of C-ordered ``data[R, n]`` into ``out[R, 32]`` (from numba)."""
    words, row_words = _as_words(data)
    rows = data.shape[0]
    none = np.empty(0, dtype=np.int64)  # rows are uniform: offsets are i * row_words
    _dispatch(words, none, row_words, rows, data.shape[1], none,
              out.reshape(rows * 32).view(np.uint32), parallel)


@njit(**JIT_OPTIONS)
def _var_task(words, sorted_starts, lengths, order, tasks, t, out_words):
    lo, hi = tasks[t, 0], tasks[t, 1]
    _hash_serial(words, sorted_starts[lo:hi], np.int64(-1), hi - lo, lengths[order[lo]],
                 order[lo:hi], out_words)


@njit(**PARALLEL_OPTIONS)
def _var_parallel(words, sorted_starts, lengths, order, tasks, out_words):
    previous = dynamic(tasks.shape[0])
    for t in prange(tasks.shape[0]):
        _var_task(words, sorted_starts, lengths, order, tasks, np.int64(t), out_words)
    restore(previous)


@njit(**JIT_OPTIONS)
def _group_by_length(lengths):
    """A permutation that puts equal lengths together (counting sort when the lengths
    span a small range, else a general sort), and where each run of one length starts
    in it: ``order[runs[r]:runs[r + 1]]`` all have one length."""
    count = lengths.shape[0]
    if count == 0:
        return np.empty(0, dtype=np.int64), np.zeros(1, dtype=np.int64)
    lo = lengths.min()
    span = lengths.max() - lo + 1
    if span > 4 * count + 65536:
        order = np.argsort(lengths)
    else:
        first = np.zeros(span + 1, dtype=np.int64)
        for i in range(count):
            first[lengths[i] - lo + 1] += 1
        for v in range(span):
            first[v + 1] += first[v]
        order = np.empty(count, dtype=np.int64)
        for i in range(count):
            v = lengths[i] - lo
            order[first[v]] = i
            first[v] += 1
    runs = np.empty(count + 1, dtype=np.int64)
    nruns = 0
    for i in range(count):
        if i == 0 or lengths[order[i]] != lengths[order[i - 1]]:
            runs[nruns] = i
            nruns += 1
    runs[nruns] = count
    return order, runs[:nruns + 1]


@njit(**JIT_OPTIONS)
def hash_var_into(words, starts, lengths, out, parallel):
    """BLAKE3 of inputs of any lengths (``lengths[i]`` bytes at word offset ``starts[i]``,
    zero padded to a whole word) into ``out[R, 32]``: equal lengths share lanes, and
    runs of equal length, cut into tasks, share the threads in one parallel region."""
    count = starts.shape[0]
    order, runs = _group_by_length(lengths)
    sorted_starts = starts[order]
    out_words = out.reshape(count * 32).view(np.uint32)
    chunk = GROUPS_PER_TASK * LANES
    # a run of m inputs is cut into ceil(m / chunk) tasks: at most count // chunk + runs
    tasks = np.empty((count // chunk + runs.shape[0], 2), dtype=np.int64)
    ntasks = 0
    for r in range(runs.shape[0] - 1):
        for k in range(runs[r], runs[r + 1], chunk):
            tasks[ntasks, 0] = k
            tasks[ntasks, 1] = min(runs[r + 1], k + chunk)
            ntasks += 1
    if parallel and count >= PARALLEL_MIN_ROWS:
        _var_parallel(words, sorted_starts, lengths, order, tasks[:ntasks], out_words)
    else:
        for t in range(ntasks):
            _var_task(words, sorted_starts, lengths, order, tasks, t, out_words)


def hash_rows(data: np.ndarray, parallel: bool = True) -> np.ndarray:
    """BLAKE3 of each row of ``uint8[R, n]`` -> ``uint8[R, 32]``."""
    data = checks.array(data, "data", np.uint8, ("R", "n"))
    out = np.empty((data.shape[0], 32), dtype=np.uint8)
    hash_rows_into(data, out, parallel)
    return out


def blake3_digest(data: bytes) -> bytes:
    """BLAKE3 of one byte string (the scalar path: one lane)."""
    arr = np.frombuffer(bytes(data), dtype=np.uint8).reshape(1, len(data))
    return hash_rows(arr, parallel=False)[0].tobytes()
