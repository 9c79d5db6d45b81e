"""Block validation (SPEC section 4) of a whole batch: ``uint32[N]`` rule bitmasks.

Hashes come from the lane-parallel kernels; the per-block rules run in a
``prange`` loop and read header fields straight from the bytes (floats are
judged on their IEEE-754 bit patterns); replays use :mod:`._replay`.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numba import njit, prange

from kernels import checks, config
from kernels import constants as C
from kernels.config import JIT_OPTIONS, PARALLEL_OPTIONS
from kernels.constants import Block, Parent
from kernels.jit._blake3 import hash_rows_into
from kernels.jit._replay import ReplayState
from kernels.jit._sched import dynamic, restore
from kernels.jit._selftest import ensure_ready
from kernels.jit.header import decode_headers, hash_headers
from kernels.jit.merkle import _merkle_roots
from kernels.jit.reveal import _check_solutions_into, _read_only, _reveal_hashes_into

__all__ = ["Block", "Parent", "new_replay_state", "validate_block", "validate_blocks",
           "validate_chain"]

_EXP_MASK = np.uint64(0x7FF0000000000000)
_SIGN = np.uint64(0x8000000000000000)
_MAG = np.uint64(0x7FFFFFFFFFFFFFFF)
_ONE = np.uint64(0x3FF0000000000000)  # bits of 1.0; positive doubles order like their bits
_U64_MAX = np.uint64(0xFFFFFFFFFFFFFFFF)


@njit(**JIT_OPTIONS)
def _le(h, b, off, size):
    v = np.uint64(0)
    for k in range(size):
        v |= np.uint64(h[b, off + k]) << np.uint64(8 * k)
    return v


@njit(**JIT_OPTIONS)
def _nonfinite(bits):
    return (bits & _EXP_MASK) == _EXP_MASK


@njit(**JIT_OPTIONS)
def _negative(bits):
    """``x < 0.0`` for a finite-or-infinite, non-NaN double: -0.0 is not negative."""
    return (bits & _SIGN) != np.uint64(0) and (bits & _MAG) != np.uint64(0)


@njit(**JIT_OPTIONS)
def _same(a, ao, b, bo, arow, brow):
    for k in range(32):
        if a[arow, ao + k] != b[brow, bo + k]:
            return False
    return True


@njit(**JIT_OPTIONS)
def _block_status(h, b, hashes, roots, problem, commit, ok, counts, now_limit,
                  has_now_limit, target, has_parent, p_height, p_hash, p_ts):
    status = np.uint32(0)
    version = _le(h, b, C.OFF_VERSION, 4)
    if version != np.uint64(1) and version != np.uint64(2):
        status |= C.VERSION_UNSUPPORTED
    ts = np.int64(_le(h, b, C.OFF_TIMESTAMP, 8))
    if ts < 0:
        status |= C.TIMESTAMP_NEGATIVE
    if has_now_limit and ts > now_limit:
        status |= C.TIMESTAMP_FUTURE
    ws = _le(h, b, C.OFF_WORK_SCORE, 8)
    if _nonfinite(ws) or _negative(ws):
        status |= C.WORK_SCORE_INVALID
    if _nonfinite(_le(h, b, C.OFF_TIME_ASYMMETRY, 8)):
        status |= C.TIME_ASYMMETRY_NONFINITE
    sq = _le(h, b, C.OFF_SOLUTION_QUALITY, 8)
    if _nonfinite(sq) or _negative(sq) or ((sq & _SIGN) == np.uint64(0) and sq > _ONE):
        status |= C.SOLUTION_QUALITY_INVALID
    cw = _le(h, b, C.OFF_COMPLEXITY_WEIGHT, 8)
    if _nonfinite(cw) or _negative(cw):
        status |= C.COMPLEXITY_WEIGHT_INVALID
    ee = _le(h, b, C.OFF_ENERGY_ESTIMATE, 8)
    if _nonfinite(ee) or _negative(ee):
        status |= C.ENERGY_ESTIMATE_INVALID
    if counts[b] > C.MAX_TRANSACTIONS:
        status |= C.TOO_MANY_TRANSACTIONS
    if not _same(h, C.OFF_TX_ROOT, roots, 0, b, b):
        status |= C.TX_ROOT_MISMATCH
    if b > 0 or has_parent:
        height = _le(h, b, C.OFF_HEIGHT, 8)
        if b > 0:
            parent_height = _le(h, b - 1, C.OFF_HEIGHT, 8)
            parent_ts = np.int64(_le(h, b - 1, C.OFF_TIMESTAMP, 8))
            prev_ok = _same(h, C.OFF_PREV_HASH, hashes, 0, b, b - 1)
        else:
            parent_height = p_height
            parent_ts = p_ts
            prev_ok = _same(h, C.OFF_PREV_HASH, p_hash, 0, b, 0)
        if parent_height == _U64_MAX or height != parent_height + np.uint64(1):
            status |= C.HEIGHT_NOT_SEQUENTIAL  # exact: no child of the maximum height
        if not prev_ok:
            status |= C.PREV_HASH_MISMATCH
        if ts < parent_ts:
            status |= C.TIMESTAMP_BEFORE_PARENT
    below = False
    for k in range(32):  # big-endian compare: the first differing byte decides
        if hashes[b, k] != target[k]:
            below = hashes[b, k] < target[k]
            break
    if not below:
        status |= C.DIFFICULTY_NOT_MET
    if not _same(h, C.OFF_PROBLEM_HASH, problem, 0, b, b):
        status |= C.PROBLEM_HASH_MISMATCH
    if not _same(h, C.OFF_COMMITMENT_HASH, commit, 0, b, b):
        status |= C.COMMITMENT_MISMATCH
    if not ok[b]:
        status |= C.SOLUTION_INVALID
    return status


@njit(**PARALLEL_OPTIONS)
def _statuses(h, hashes, roots, problem, commit, ok, counts, now_limit, has_now_limit,
              target, has_parent, p_height, p_hash, p_ts, out):
    previous = dynamic(h.shape[0])
    for b in prange(h.shape[0]):
        out[b] = _block_status(h, np.int64(b), hashes, roots, problem, commit, ok, counts,
                               now_limit, has_now_limit, target, has_parent, p_height, p_hash,
                               p_ts)
    restore(previous)


@njit(**JIT_OPTIONS)
def _commit_key(h, b, keys):
    for j in range(4):
        keys[b, j] = _le(h, b, C.OFF_COMMITMENT_HASH + 8 * j, 8)


@njit(**PARALLEL_OPTIONS)
def _commit_keys(h):
    keys = np.empty((h.shape[0], 4), dtype=np.uint64)
    previous = dynamic(h.shape[0])
    for b in prange(h.shape[0]):
        _commit_key(h, np.int64(b), keys)
    restore(previous)
    return keys


def new_replay_state() -> ReplayState:
    """Commitments seen so far; pass the same state along consecutive batches."""
    return ReplayState()


def _parent(parent: bytes | np.ndarray | Parent | None) -> tuple[bool, int, np.ndarray, int]:
    """(has parent, height, header hash as ``uint8[1, 32]``, timestamp); a parent given as
    its 276-byte header is decoded and hashed here, with this twin's kernels."""
    p = checks.parent(parent)
    if p is None:
        return False, 0, np.zeros((1, C.HASH_SIZE), dtype=np.uint8), 0
    if isinstance(p, bytes):
        row = np.frombuffer(bytearray(p), dtype=np.uint8).reshape(1, C.HEADER_SIZE)
        fields = decode_headers(row)
        return (True, int(fields["height"][0]), hash_headers(row),
                int(fields["timestamp"][0]))
    height, p_hash, ts = p
    return True, height, np.frombuffer(bytearray(p_hash), dtype=np.uint8).reshape(1, 32), ts


class _Scratch:
    """Per-chunk outputs of the hashing kernels (``config.CHUNK_BLOCKS`` rows), allocated
    once per call."""

    def __init__(self, m: int) -> None:
        self.hashes = np.empty((m, C.HASH_SIZE), dtype=np.uint8)
        self.roots = np.empty((m, C.HASH_SIZE), dtype=np.uint8)
        self.problem = np.empty((m, C.HASH_SIZE), dtype=np.uint8)
        self.solution = np.empty((m, C.HASH_SIZE), dtype=np.uint8)
        self.commit = np.empty((m, C.HASH_SIZE), dtype=np.uint8)
        self.ok = np.empty(m, dtype=np.bool_)


def _chunk(headers: np.ndarray, ids: np.ndarray, id_offsets: np.ndarray, numbers: np.ndarray,
           num_offsets: np.ndarray, targets: np.ndarray, indices: np.ndarray,
           idx_offsets: np.ndarray, lo: int, hi: int, s: _Scratch) -> None:
    """Header hashes, merkle roots, reveal hashes and solution checks of blocks
    ``lo..hi`` into the first ``hi - lo`` rows of ``s``."""
    k = hi - lo
    h = headers[lo:hi]
    hash_rows_into(h, s.hashes[:k], True)
    a, b = int(id_offsets[lo]), int(id_offsets[hi])
    _merkle_roots(ids[a:b], id_offsets[lo:hi + 1] - a, s.roots[:k], True)
    salts = np.ascontiguousarray(h[:, C.OFF_PREV_HASH:C.OFF_PREV_HASH + C.HASH_SIZE])
    reveals = _read_only(numbers, num_offsets[lo:hi + 1], targets[lo:hi], indices,
                        idx_offsets[lo:hi + 1])
    _reveal_hashes_into(*reveals, *_read_only(salts), s.problem[:k], s.solution[:k],
                        s.commit[:k], True)
    _check_solutions_into(*reveals, s.ok[:k])


def _rules(headers: np.ndarray, hashes: np.ndarray, roots: np.ndarray, problem: np.ndarray,
           commit: np.ndarray, ok: np.ndarray, id_offsets: np.ndarray, now: int, target: bytes,
           parent: tuple[bool, int, np.ndarray, int], out: np.ndarray | None = None
           ) -> np.ndarray:
    """The bitmasks (replays not marked) of consecutive blocks from their hashes and
    solution checks, into ``out``: what :func:`validate_blocks` does for each chunk, and
    what the first run's parallel compile calls, so both compile the same kernel types."""
    has_parent, p_height, p_hash, p_ts = parent
    limit = int(now) + C.FUTURE_DRIFT_SECONDS  # exact; beyond i64 no timestamp can exceed it
    has_limit = limit <= C.I64_MAX
    out = np.empty(headers.shape[0], dtype=np.uint32) if out is None else out
    frozen, = _read_only(headers)
    _statuses(frozen, hashes, roots, problem, commit, ok, np.diff(id_offsets),
              np.int64(limit if has_limit else 0), has_limit,
              np.frombuffer(target, dtype=np.uint8), has_parent, np.uint64(p_height), p_hash,
              np.int64(p_ts), out)
    return out


def _mark_replays(headers: np.ndarray, out: np.ndarray, replay: ReplayState | None) -> None:
    """Set COMMITMENT_REPLAY in ``out`` for each block whose commitment ``replay`` (or a
    new state) has seen, earlier or in this batch; adds them all to it."""
    frozen, = _read_only(headers)
    state = new_replay_state() if replay is None else replay
    out[state.mark(_commit_keys(frozen))] |= np.uint32(C.COMMITMENT_REPLAY)


def validate_blocks(headers: np.ndarray, ids: np.ndarray, id_offsets: np.ndarray,
                    numbers: np.ndarray, num_offsets: np.ndarray, targets: np.ndarray,
                    indices: np.ndarray, idx_offsets: np.ndarray, *, now: int,
                    difficulty_target: bytes, parent: bytes | np.ndarray | Parent | None = None,
                    replay: ReplayState | None = None) -> np.ndarray:
    """Rule bitmasks ``uint32[N]`` of consecutive blocks given as CSR arrays. ``parent`` is
    the first block's parent: its 276-byte header (``bytes`` or ``uint8[276]``, decoded
    and hashed here), its ``(height, hash, timestamp)`` (e.g. a corpus anchor) or None."""
    headers, ids, id_offsets, numbers, num_offsets, targets, indices, idx_offsets = \
        checks.blocks(headers, ids, id_offsets, numbers, num_offsets, targets, indices,
                      idx_offsets)
    target = checks.fixed_bytes(difficulty_target, "difficulty_target", C.HASH_SIZE)
    has_parent, p_height, p_hash, p_ts = _parent(parent)
    ensure_ready()
    n = headers.shape[0]
    step = config.CHUNK_BLOCKS
    scratch = _Scratch(min(n, step))
    out = np.empty(n, dtype=np.uint32)
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        _chunk(headers, ids, id_offsets, numbers, num_offsets, targets, indices, idx_offsets,
               lo, hi, scratch)
        k = hi - lo
        _rules(headers[lo:hi], scratch.hashes[:k], scratch.roots[:k], scratch.problem[:k],
               scratch.commit[:k], scratch.ok[:k], id_offsets[lo:hi + 1], now, target,
               (has_parent, p_height, p_hash, p_ts), out[lo:hi])
        # the last block of this chunk is the parent of the next chunk's first
        last = headers[hi - 1]
        has_parent = True
        p_height = int.from_bytes(last[C.OFF_HEIGHT:C.OFF_HEIGHT + 8].tobytes(), "little")
        p_ts = int.from_bytes(last[C.OFF_TIMESTAMP:C.OFF_TIMESTAMP + 8].tobytes(), "little",
                              signed=True)
        p_hash = scratch.hashes[k - 1:k].copy()
    _mark_replays(headers, out, replay)
    return out


def validate_chain(blocks: Sequence[Block], now: int, difficulty_target: bytes,
                   parent: bytes | np.ndarray | Parent | None = None,
                   seen: ReplayState | None = None) -> list[int]:
    """Bitmasks of consecutive blocks; each block is the parent of the next, and the
    first one's is ``parent`` (its header, its ``(height, hash, timestamp)`` or None)."""
    status = validate_blocks(*checks.pack_blocks(blocks), now=now,
                             difficulty_target=difficulty_target, parent=parent, replay=seen)
    return [int(s) for s in status]


def validate_block(block: Block, now: int, difficulty_target: bytes,
                   parent: bytes | np.ndarray | Parent | None, seen: ReplayState) -> int:
    """The rule bitmask of one block; ``seen`` holds earlier commitments and is updated.
    ``parent`` is the parent's header, its ``(height, hash, timestamp)`` or None."""
    return validate_chain([block], now, difficulty_target, parent, seen)[0]
