"""COMMITMENT_REPLAY state for the JIT twin: an open-addressing hash set of
32-byte commitments (as 4 x u64) that grows by doubling, kept across batches."""
from __future__ import annotations

import numpy as np
from numba import njit

from kernels.config import JIT_OPTIONS

_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


@njit(**JIT_OPTIONS)
def _slot(k0, k1, k2, k3, mask):
    x = k0 ^ (k1 * _MIX1) ^ (k2 * _MIX2) ^ k3
    x = (x ^ (x >> np.uint64(30))) * _MIX1
    x = (x ^ (x >> np.uint64(27))) * _MIX2
    x = x ^ (x >> np.uint64(31))
    return np.int64(x & mask)


@njit(**JIT_OPTIONS)
def _find_or_insert(keys, used, k0, k1, k2, k3):
    """True when the key was present; inserts it otherwise."""
    mask = np.uint64(keys.shape[0] - 1)
    s = _slot(k0, k1, k2, k3, mask)
    while used[s]:
        if keys[s, 0] == k0 and keys[s, 1] == k1 and keys[s, 2] == k2 and keys[s, 3] == k3:
            return True
        s = np.int64((np.uint64(s) + np.uint64(1)) & mask)
    used[s] = True
    keys[s, 0] = k0
    keys[s, 1] = k1
    keys[s, 2] = k2
    keys[s, 3] = k3
    return False


@njit(**JIT_OPTIONS)
def _rehash(keys, used, new_keys, new_used):
    for s in range(keys.shape[0]):
        if used[s]:
            _find_or_insert(new_keys, new_used, keys[s, 0], keys[s, 1], keys[s, 2], keys[s, 3])


@njit(**JIT_OPTIONS)
def mark_replays(keys, used, commits, out):
    """For each commitment in order: out[i] = seen before (in earlier batches or rows)."""
    added = 0
    for i in range(commits.shape[0]):
        seen = _find_or_insert(keys, used, commits[i, 0], commits[i, 1], commits[i, 2],
                               commits[i, 3])
        out[i] = seen
        if not seen:
            added += 1
    return added


class ReplayState:
    """Commitments seen so far; pass the same state along consecutive batches."""

    def __init__(self, capacity: int = 1024) -> None:
        size = 1 << max(4, (capacity - 1).bit_length())
        self.keys = np.zeros((size, 4), dtype=np.uint64)
        self.used = np.zeros(size, dtype=np.bool_)
        self.count = 0

    def __len__(self) -> int:
        return self.count

    def reserve(self, more: int) -> None:
        """Grow so that ``more`` new keys keep the load factor at most 3/4."""
        size = self.keys.shape[0]
        while (self.count + more) * 4 > size * 3:
            size *= 2
        if size != self.keys.shape[0]:
            keys = np.zeros((size, 4), dtype=np.uint64)
            used = np.zeros(size, dtype=np.bool_)
            _rehash(self.keys, self.used, keys, used)
            self.keys, self.used = keys, used

    def mark(self, commits: np.ndarray) -> np.ndarray:
        """``commits`` as ``uint64[N, 4]`` -> ``bool[N]`` replayed, recording them all."""
        self.reserve(commits.shape[0])
        out = np.empty(commits.shape[0], dtype=np.bool_)
        self.count += mark_replays(self.keys, self.used, commits, out)
        return out

    def update(self, commitments) -> None:
        """Record commitments (32-byte values, or a ``uint8[N, 32]`` array) as seen."""
        rows = np.asarray(commitments, dtype=np.uint8) if isinstance(commitments, np.ndarray) \
            else np.frombuffer(b"".join(bytes(c) for c in commitments), dtype=np.uint8)
        keys = np.ascontiguousarray(rows.reshape(-1, 32)).view("<u8").reshape(-1, 4)
        self.mark(keys.astype(np.uint64))
