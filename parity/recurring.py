"""Which commitments recur in a corpus, so that replay state stays the size of a shard.

COMMITMENT_REPLAY (SPEC rule 17) flags a block when an earlier block of the corpus has
the same commitment_hash. A twin's replay state carried across the whole corpus holds
every commitment, so memory grows with the corpus. The engines do this instead:

1. :func:`scan` (a first pass over the header column): a 32-bit hash of every
   commitment, 4 bytes a block, sorted in place; the hashes seen more than once are the
   *candidates*: every commitment that recurs has one (plus rare hash collisions).
2. :class:`RecurringIndex` walks the shards in chain order and keeps the full 32 bytes
   of candidate commitments only. :meth:`RecurringIndex.prime` gives a shard the
   earlier commitments that occur in it, compared on all 32 bytes: exact.
3. Each twin starts every shard with a fresh replay state primed with those (its
   ``update``), and finds replays within the shard with its own ``validate_blocks``.

A block of shard k is a replay iff an earlier block of shard k has its commitment (the
twin sees it) or a block of an earlier shard does (then both hash alike, both are
candidates, and the earlier one is in the index). The twins keep their interface and
their own semantics; only the harness decides what each shard's state starts with.
"""
from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from kernels import constants as C
from parity.corpus.reader import release_freed_memory

_M = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9),
      np.uint64(0x94D049BB133111EB), np.uint64(0xD6E8FEB86659FD93))
#: no commitments (``uint8[0, 32]``): what a shard with no earlier recurring one is primed with
NO_COMMITMENTS = np.zeros((0, C.HASH_SIZE), dtype=np.uint8)


def commitments(headers: np.ndarray) -> np.ndarray:
    """The commitment_hash of every header: ``uint8[n, 32]`` (a copy)."""
    return np.ascontiguousarray(commitment_view(headers))


def commitment_view(headers: np.ndarray) -> np.ndarray:
    """The commitment_hash of every header as a view into ``headers``: ``uint8[n, 32]``
    (what :func:`hash32` and :class:`RecurringIndex` take without copying)."""
    return headers[:, C.OFF_COMMITMENT_HASH:C.OFF_COMMITMENT_HASH + C.HASH_SIZE]


def _mix(buf: np.ndarray, stride: int, out: np.ndarray) -> None:  # compiled: no GIL
    step = np.uint64(stride)
    for i in range(out.shape[0]):
        at = np.uint64(i) * step  # unsigned: no negative-index fix-up, so LLVM makes the
        x = np.uint64(0)          # 8 byte loads of a word one load (2.5 -> 0.2 ms a shard)
        for j in range(4):
            w = np.uint64(0)
            for b in range(8):  # a little-endian uint64
                w |= np.uint64(buf[at + np.uint64(8 * j + b)]) << np.uint64(8 * b)
            x ^= w * _M[j]
            x ^= x >> np.uint64(29)
        out[i] = np.uint32((x * _M[0]) >> np.uint64(32))


def _rows_buffer(commits: np.ndarray) -> tuple[np.ndarray, int]:
    """``uint8[n, 32]`` rows, n > 0 (a copy only when they are not evenly spaced bytes) -> one
    read-only byte buffer from the first row to the end of the last, and the row stride:
    a single compiled specialization, whatever array the rows are a view of."""
    n = commits.shape[0]
    s_row, s_byte = commits.strides
    if s_byte != 1 or s_row < C.HASH_SIZE:
        commits = np.ascontiguousarray(commits)
        s_row = C.HASH_SIZE
    buf = np.lib.stride_tricks.as_strided(commits, shape=((n - 1) * s_row + C.HASH_SIZE,),
                                          strides=(1,), writeable=False)
    return buf, s_row


_MIXER: list[Any] = []
_MIXER_LOCK = threading.Lock()


def _mixer() -> Any:
    """:func:`_mix` compiled (numba's cache: once), on first use: the harness imports
    numba only when a run keeps chain state."""
    with _MIXER_LOCK:
        if not _MIXER:
            import numba

            from kernels.config import JIT_OPTIONS
            compile_: Any = numba.njit
            _MIXER.append(compile_(**JIT_OPTIONS)(_mix))
        return _MIXER[0]


def hash32(commits: np.ndarray, compiled: bool = True) -> np.ndarray:
    """A 32-bit hash of each ``uint8[n, 32]`` row, mixing all 32 bytes: ``uint32[n]``.

    ``compiled``: one call that releases the GIL. Pass 1 runs on a thread beside the
    kernels' loading (Python holding the GIL), where each of the ~20 numpy operations of
    the same mixing waited up to the 5 ms switch interval to take the GIL back (pass 1
    over 1M blocks: 0.4-0.6 s alone, 2.0 s beside a busy Python thread). Not compiled:
    the same hashes in numpy, for a process that runs no kernel (the Dask driver, where
    numba's compiler would add 40-60 MiB to the peak RSS)."""
    if compiled:
        out = np.empty(commits.shape[0], dtype=np.uint32)
        if len(out):
            _mixer()(*_rows_buffer(commits), out)
        return out
    words = np.ascontiguousarray(commits).reshape(-1).view("<u8").reshape(-1, 4)
    out = np.empty(words.shape[0], dtype=np.uint32)
    x = np.zeros(words.shape[0], dtype=np.uint64)
    for j in range(4):
        x ^= words[:, j] * _M[j]
        x ^= x >> np.uint64(29)
    x *= _M[0]
    out[:] = x >> np.uint64(32)
    return out


def candidates(hashes: Iterable[np.ndarray]) -> np.ndarray:
    """Sorted distinct hashes that occur more than once among ``hashes`` (per shard)."""
    parts = list(hashes)
    if not parts:
        return np.zeros(0, dtype=np.uint32)
    allh = np.concatenate(parts)
    del parts
    allh.sort()  # in place: no second array of the corpus' size
    twice = allh[1:][allh[1:] == allh[:-1]]
    return np.unique(twice)


def scan(corpus, groups, compiled: bool = True) -> np.ndarray:
    """Pass 1 over a local corpus' header column: the candidate hashes (``compiled``:
    see :func:`hash32`)."""
    def hashes() -> Iterator[np.ndarray]:
        for headers in corpus.headers_of(groups):
            yield hash32(commitment_view(headers), compiled)
            del headers
            if corpus.release_memory:
                release_freed_memory()  # that row group's column is garbage now
    return candidates(hashes())


class RecurringIndex:
    """The full commitments of candidate blocks of the shards walked so far
    (``compiled``: see :func:`hash32`)."""

    def __init__(self, candidate_hashes: np.ndarray, compiled: bool = True) -> None:
        self.candidates = np.asarray(candidate_hashes, dtype=np.uint32)
        self.compiled = compiled
        self.seen: set[bytes] = set()
        #: a first sieve: which top 16 bits some candidate has (a shard's 100,000 sorted
        #: lookups took 5.6 ms, a sieve and the few lookups it leaves 0.3 ms)
        self._sieve = np.zeros(1 << 16, dtype=np.bool_)
        self._sieve[self.candidates >> np.uint32(16)] = True

    def __len__(self) -> int:
        return len(self.seen)

    def _candidate_rows(self, commits: np.ndarray) -> list[bytes]:
        if self.candidates.size == 0 or len(commits) == 0:
            return []
        h = hash32(commits, compiled=self.compiled)
        at = np.flatnonzero(self._sieve[h >> np.uint32(16)])
        sieved = h[at]
        pos = np.searchsorted(self.candidates, sieved)
        at = at[self.candidates[np.minimum(pos, self.candidates.size - 1)] == sieved]
        return [commits[i].tobytes() for i in at.tolist()]

    def record(self, commits: np.ndarray) -> None:
        """Walk past blocks (``uint8[n, 32]`` commitments, a view is fine) without priming
        anything."""
        self.seen.update(self._candidate_rows(commits))

    def prime(self, commits: np.ndarray) -> np.ndarray:
        """The next shard's commitments ``uint8[n, 32]`` -> the distinct earlier ones that
        occur in it, ``uint8[k, 32]``, in first-occurrence order; then walks past it."""
        rows = self._candidate_rows(commits)
        earlier = [r for r in dict.fromkeys(rows) if r in self.seen]
        self.seen.update(rows)
        if not earlier:
            return NO_COMMITMENTS
        return np.frombuffer(b"".join(earlier), dtype=np.uint8).reshape(-1, C.HASH_SIZE)


def fresh_replay(side, prime: np.ndarray) -> None:
    """Give ``side`` (a :class:`parity.step.Side` with replay state) a new replay state
    holding exactly the commitments of ``prime``."""
    if side.replay is None:
        return
    side.replay = side.twin.new_replay_state()
    if len(prime):
        side.replay.update([r.tobytes() for r in prime])
