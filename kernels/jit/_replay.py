"""COMMITMENT_REPLAY state for the JIT twin: a hash set of 32-byte commitments (as
4 x u64), kept across batches.

The set is split into ``PARTS`` open-addressing tables by a hash of the key. Equal keys
always meet in the same part, and each part takes its keys in block order, so parts
are independent and are filled in parallel with the same result for any thread count.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from kernels.config import JIT_OPTIONS, PARALLEL_OPTIONS
from kernels.jit._sched import dynamic, restore

PARTS = 8
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


@njit(**JIT_OPTIONS)
def _mix(k0, k1, k2, k3):
    x = k0 ^ (k1 * _MIX1) ^ (k2 * _MIX2) ^ k3
    x = (x ^ (x >> np.uint64(30))) * _MIX1
    x = (x ^ (x >> np.uint64(27))) * _MIX2
    return x ^ (x >> np.uint64(31))


@njit(**JIT_OPTIONS)
def _find_or_insert(keys, used, p, h, k0, k1, k2, k3):
    """True when the key was in part ``p``; inserts it otherwise (``h`` its hash)."""
    mask = np.uint64(keys.shape[1] - 1)
    s = np.int64((h >> np.uint64(3)) & mask)
    while used[p, s]:
        if keys[p, s, 0] == k0 and keys[p, s, 1] == k1 and keys[p, s, 2] == k2 \
                and keys[p, s, 3] == k3:
            return True
        s = np.int64((np.uint64(s) + np.uint64(1)) & mask)
    used[p, s] = True
    keys[p, s, 0] = k0
    keys[p, s, 1] = k1
    keys[p, s, 2] = k2
    keys[p, s, 3] = k3
    return False


@njit(**JIT_OPTIONS)
def _hash_key(commits, i, hashes):
    hashes[i] = _mix(commits[i, 0], commits[i, 1], commits[i, 2], commits[i, 3])


@njit(**PARALLEL_OPTIONS)
def _plan(commits):
    """Each key's hash, and the keys grouped by part in block order (counting sort)."""
    n = commits.shape[0]
    hashes = np.empty(n, dtype=np.uint64)
    previous = dynamic(n)
    for i in prange(n):
        _hash_key(commits, np.int64(i), hashes)
    restore(previous)
    first = np.zeros(PARTS + 1, dtype=np.int64)
    for i in range(n):
        first[np.int64(hashes[i] & np.uint64(PARTS - 1)) + 1] += 1
    for p in range(PARTS):
        first[p + 1] += first[p]
    order = np.empty(n, dtype=np.int64)
    fill = first[:PARTS].copy()
    for i in range(n):
        p = np.int64(hashes[i] & np.uint64(PARTS - 1))
        order[fill[p]] = i
        fill[p] += 1
    return hashes, first, order


@njit(**JIT_OPTIONS)
def _mark_part(keys, used, commits, hashes, first, order, p, out, added):
    count = 0
    for j in range(first[p], first[p + 1]):
        i = order[j]
        seen = _find_or_insert(keys, used, p, hashes[i], commits[i, 0], commits[i, 1],
                               commits[i, 2], commits[i, 3])
        out[i] = seen
        if not seen:
            count += 1
    added[p] = count


@njit(**PARALLEL_OPTIONS)
def _mark(keys, used, commits, hashes, first, order, out, added):
    previous = dynamic(PARTS)
    for p in prange(PARTS):
        _mark_part(keys, used, commits, hashes, first, order, np.int64(p), out, added)
    restore(previous)


@njit(**JIT_OPTIONS)
def _rehash(keys, used, new_keys, new_used):
    for p in range(keys.shape[0]):
        for s in range(keys.shape[1]):
            if used[p, s]:
                h = _mix(keys[p, s, 0], keys[p, s, 1], keys[p, s, 2], keys[p, s, 3])
                _find_or_insert(new_keys, new_used, p, h, keys[p, s, 0], keys[p, s, 1],
                                keys[p, s, 2], keys[p, s, 3])


class ReplayState:
    """Commitments seen so far; pass the same state along consecutive batches."""

    def __init__(self, capacity: int = 1024) -> None:
        size = 1 << max(4, (max(capacity // PARTS, 1) - 1).bit_length())
        self.keys = np.zeros((PARTS, size, 4), dtype=np.uint64)
        self.used = np.zeros((PARTS, size), dtype=np.bool_)
        self.counts = np.zeros(PARTS, dtype=np.int64)

    def __len__(self) -> int:
        return int(self.counts.sum())

    def _reserve(self, incoming: np.ndarray) -> None:
        """Grow every part so that its keys plus ``incoming`` stay at most 3/4 full."""
        size = self.keys.shape[1]
        need = int((self.counts + incoming).max())
        while need * 4 > size * 3:
            size *= 2
        if size != self.keys.shape[1]:
            keys = np.zeros((PARTS, size, 4), dtype=np.uint64)
            used = np.zeros((PARTS, size), dtype=np.bool_)
            _rehash(self.keys, self.used, keys, used)
            self.keys, self.used = keys, used

    def mark(self, commits: np.ndarray) -> np.ndarray:
        """``commits`` as ``uint64[N, 4]`` -> ``bool[N]`` replayed, recording them all."""
        commits = np.ascontiguousarray(commits, dtype=np.uint64)
        hashes, first, order = _plan(commits)
        self._reserve(np.diff(first))
        out = np.empty(commits.shape[0], dtype=np.bool_)
        added = np.zeros(PARTS, dtype=np.int64)
        _mark(self.keys, self.used, commits, hashes, first, order, out, added)
        self.counts += added
        return out

    def update(self, commitments) -> None:
        """Record commitments (32-byte values, or a ``uint8[N, 32]`` array) as seen."""
        rows = np.asarray(commitments, dtype=np.uint8) if isinstance(commitments, np.ndarray) \
            else np.frombuffer(b"".join(bytes(c) for c in commitments), dtype=np.uint8)
        keys = np.ascontiguousarray(rows.reshape(-1, 32)).view("<u8").reshape(-1, 4)
        self.mark(keys.astype(np.uint64))
