"""Subset-sum reveals (SPEC section 3) in batches: encodings built as words in
numba, hashed with equal lengths sharing SIMD lanes, and the subset-sum check."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numba import njit, prange

from kernels import checks, config
from kernels.config import JIT_OPTIONS, PARALLEL_OPTIONS
from kernels.constants import HASH_SIZE, MAX_REVEAL_ITEMS, MIN_NUMBERS, OFF_PREV_HASH
from kernels.jit._blake3 import hash_rows_into, hash_var_into
from kernels.jit._sched import dynamic, restore
from kernels.jit._selftest import ensure_ready

__all__ = ["check_solutions", "commitment", "commitments", "problem_bytes", "problem_hash",
           "reveal_hashes", "solution_bytes", "solution_hash", "solution_ok"]

I64_MAX = np.int64(np.iinfo(np.int64).max)
I64_MIN = np.int64(np.iinfo(np.int64).min)


def _read_only(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """Read-only views (no copy) of kernel inputs. numba compiles a kernel once per
    argument type, and a read-only array (an Arrow buffer of a corpus) is another type
    than a writable one (packed lists): inputs passed as views of one kind compile once."""
    views = tuple(a.view() for a in arrays)
    for v in views:
        v.flags.writeable = False
    return views


@njit(**JIT_OPTIONS)
def _encode_one(values, offsets, targets, with_target, b, w, words):
    k = offsets[b + 1] - offsets[b]
    words[w] = np.uint32(0)
    words[w + 1] = np.uint32(k & 0xFFFFFFFF)
    words[w + 2] = np.uint32(k >> 32)
    w += 3
    for j in range(offsets[b], offsets[b + 1]):
        bits = np.uint64(values[j])
        words[w] = np.uint32(bits & np.uint64(0xFFFFFFFF))
        words[w + 1] = np.uint32(bits >> np.uint64(32))
        w += 2
    if with_target:
        bits = np.uint64(targets[b])
        words[w] = np.uint32(bits & np.uint64(0xFFFFFFFF))
        words[w + 1] = np.uint32(bits >> np.uint64(32))


@njit(**PARALLEL_OPTIONS)
def _encode(values, offsets, targets, with_target):
    """bincode words of every list: u32 variant 0, u64 length, 8-byte items[, i64 target].
    ``values`` are always uint64 (int64 numbers as a view: the same bits), so this
    compiles once.

    Returns (words, word offset of each encoding, byte length of each encoding).
    """
    n = offsets.shape[0] - 1
    starts = np.empty(n, dtype=np.int64)
    lengths = np.empty(n, dtype=np.int64)
    extra = 2 if with_target else 0
    total = 0
    for b in range(n):
        k = offsets[b + 1] - offsets[b]
        starts[b] = total
        lengths[b] = 4 * (3 + 2 * k + extra)
        total += 3 + 2 * k + extra
    words = np.empty(total, dtype=np.uint32)
    previous = dynamic(n)
    for b in prange(n):
        _encode_one(values, offsets, targets, with_target, np.int64(b), starts[b], words)
    restore(previous)
    return words, starts, lengths


@njit(**JIT_OPTIONS)
def _reveal_hashes_into(numbers, num_offsets, targets, indices, idx_offsets, salts,
                       problem, solution, commit, parallel):
    """Problem hashes, solution hashes and commitments of every block (from numba)."""
    words, starts, lengths = _encode(numbers.view(np.uint64), num_offsets, targets,
                                     np.bool_(True))
    hash_var_into(words, starts, lengths, problem, parallel)
    words, starts, lengths = _encode(indices, idx_offsets, targets, np.bool_(False))
    hash_var_into(words, starts, lengths, solution, parallel)
    hash_rows_into(_join(problem, salts, solution), commit, parallel)


@njit(**JIT_OPTIONS)
def _join_row(problem, salts, solution, b, joined):
    for k in range(32):
        joined[b, k] = problem[b, k]
        joined[b, 32 + k] = salts[b, k]
        joined[b, 64 + k] = solution[b, k]


@njit(**PARALLEL_OPTIONS)
def _join(problem, salts, solution):
    """``problem_hash || epoch_salt || solution_hash`` rows (filled, and first touched, by
    every thread)."""
    n = problem.shape[0]
    joined = np.empty((n, 96), dtype=np.uint8)
    previous = dynamic(n)
    for b in prange(n):
        _join_row(problem, salts, solution, np.int64(b), joined)
    restore(previous)
    return joined


@njit(**JIT_OPTIONS)
def _solution_ok(numbers, lo, hi, target, indices, ilo, ihi):
    k = hi - lo
    if k < MIN_NUMBERS or k > MAX_REVEAL_ITEMS or ihi - ilo > MAX_REVEAL_ITEMS:
        return False
    used = np.zeros(k, dtype=np.bool_)
    total = np.int64(0)
    for j in range(ilo, ihi):
        idx = indices[j]
        if idx >= np.uint64(k):  # compare as u64: never through a float
            return False
        i = np.int64(idx)
        if used[i]:
            return False
        used[i] = True
        x = numbers[lo + i]
        if (x > 0 and total > I64_MAX - x) or (x < 0 and total < I64_MIN - x):
            return False  # an intermediate i64 overflow makes the solution incorrect
        total += x
    return total == target


@njit(**PARALLEL_OPTIONS)
def _check_solutions_into(numbers, num_offsets, targets, indices, idx_offsets, out):
    previous = dynamic(targets.shape[0])
    for b in prange(targets.shape[0]):
        out[b] = _solution_ok(numbers, num_offsets[b], num_offsets[b + 1], targets[b],
                              indices, idx_offsets[b], idx_offsets[b + 1])
    restore(previous)


def reveal_hashes(numbers: np.ndarray, num_offsets: np.ndarray, targets: np.ndarray,
                  indices: np.ndarray, idx_offsets: np.ndarray, salts: np.ndarray,
                  parallel: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(problem hashes, solution hashes, commitments), each ``uint8[N, 32]``."""
    numbers, num_offsets, targets, indices, idx_offsets = checks.reveals(
        numbers, num_offsets, targets, indices, idx_offsets)
    n = targets.shape[0]
    salts = checks.array(salts, "salts", np.uint8, (n, HASH_SIZE))
    ensure_ready()
    out = np.empty((3, n, HASH_SIZE), dtype=np.uint8)
    _reveal_hashes_into(*_read_only(numbers, num_offsets, targets, indices, idx_offsets, salts),
                        out[0], out[1], out[2], parallel)
    return out[0], out[1], out[2]


def commitments(headers: np.ndarray, numbers: np.ndarray, num_offsets: np.ndarray,
                targets: np.ndarray, indices: np.ndarray, idx_offsets: np.ndarray,
                parallel: bool = True) -> np.ndarray:
    """Each block's expected ``commitment_hash`` (SPEC section 3, any reveal length) with
    its header's ``prev_hash`` as epoch salt: ``uint8[N, 32]``."""
    headers = checks.headers(headers)
    n = headers.shape[0]
    numbers, num_offsets, targets, indices, idx_offsets = checks.reveals(
        numbers, num_offsets, targets, indices, idx_offsets, blocks=n)
    ensure_ready()
    step = config.CHUNK_BLOCKS  # chunk by chunk: each chunk's encodings stay small
    problem = np.empty((min(n, step), HASH_SIZE), dtype=np.uint8)
    solution = np.empty_like(problem)
    commit = np.empty((n, HASH_SIZE), dtype=np.uint8)
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        k = hi - lo
        salts = np.ascontiguousarray(headers[lo:hi, OFF_PREV_HASH:OFF_PREV_HASH + HASH_SIZE])
        _reveal_hashes_into(*_read_only(numbers, num_offsets[lo:hi + 1], targets[lo:hi], indices,
                                       idx_offsets[lo:hi + 1], salts),
                            problem[:k], solution[:k], commit[lo:hi], parallel)
    return commit


def check_solutions(numbers: np.ndarray, num_offsets: np.ndarray, targets: np.ndarray,
                    indices: np.ndarray, idx_offsets: np.ndarray) -> np.ndarray:
    """``bool[N]``: is each block's reveal a correct subset-sum solution."""
    numbers, num_offsets, targets, indices, idx_offsets = checks.reveals(
        numbers, num_offsets, targets, indices, idx_offsets)
    out = np.empty(targets.shape[0], dtype=np.bool_)
    _check_solutions_into(*_read_only(numbers, num_offsets, targets, indices, idx_offsets), out)
    return out


def _one(values: Sequence[int], dtype: type, name: str) -> tuple[np.ndarray, np.ndarray]:
    return checks.pack([values], dtype, name)


def problem_bytes(numbers: Sequence[int], target: int) -> bytes:
    """bincode of ``SubsetSum { numbers, target }``: u32 0, u64 len, i64 each, i64 target."""
    nums, offs = _one(numbers, np.int64, "numbers")
    words, _, _ = _encode(*_read_only(nums.view(np.uint64), offs, np.array([target], np.int64)),
                          True)
    return words.tobytes()


def solution_bytes(indices: Sequence[int]) -> bytes:
    """bincode of the solution: u32 0, u64 len, u64 each index."""
    idxs, offs = _one(indices, np.uint64, "indices")
    words, _, _ = _encode(*_read_only(idxs, offs, np.zeros(1, dtype=np.int64)), False)
    return words.tobytes()


def _single(numbers: Sequence[int], target: int, indices: Sequence[int],
            salt: bytes = bytes(HASH_SIZE)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    nums, noffs = _one(numbers, np.int64, "numbers")
    idxs, ioffs = _one(indices, np.uint64, "indices")
    salts = np.frombuffer(bytes(salt), dtype=np.uint8).reshape(1, HASH_SIZE)
    return reveal_hashes(nums, noffs, np.array([target], dtype=np.int64), idxs, ioffs, salts,
                         parallel=False)


def problem_hash(numbers: Sequence[int], target: int) -> bytes:
    """``H(problem bytes)``."""
    return _single(numbers, target, [])[0][0].tobytes()


def solution_hash(indices: Sequence[int]) -> bytes:
    """``H(solution bytes)``."""
    return _single([], 0, indices)[1][0].tobytes()


def commitment(p_hash: bytes, epoch_salt: bytes, s_hash: bytes) -> bytes:
    """``H(problem_hash || epoch_salt || solution_hash)``, a 96-byte input."""
    p_hash = checks.fixed_bytes(p_hash, "problem_hash", HASH_SIZE)
    epoch_salt = checks.fixed_bytes(epoch_salt, "epoch_salt", HASH_SIZE)
    s_hash = checks.fixed_bytes(s_hash, "solution_hash", HASH_SIZE)
    ensure_ready()
    row = np.frombuffer(bytearray(p_hash + epoch_salt + s_hash), dtype=np.uint8)
    out = np.empty((1, HASH_SIZE), dtype=np.uint8)
    hash_rows_into(row.reshape(1, 96), out, False)
    return out[0].tobytes()


def solution_ok(numbers: Sequence[int], target: int, indices: Sequence[int]) -> bool:
    """True when the indices select distinct numbers summing to target without i64 overflow."""
    nums, noffs = _one(numbers, np.int64, "numbers")
    idxs, ioffs = _one(indices, np.uint64, "indices")
    return bool(check_solutions(nums, noffs, np.array([target], dtype=np.int64), idxs, ioffs)[0])
