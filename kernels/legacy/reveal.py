"""Subset-sum reveal of SPEC section 3: encodings, hashes, commitment, correctness."""
from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np
from blake3 import blake3

from kernels.constants import (
    HASH_SIZE, I64_MAX, I64_MIN, MAX_REVEAL_ITEMS, MIN_NUMBERS, SUBSET_SUM_VARIANT)

__all__ = ["check_solutions", "commitment", "problem_bytes", "problem_hash", "reveal_hashes",
           "solution_bytes", "solution_hash", "solution_ok"]


def problem_bytes(numbers: Sequence[int], target: int) -> bytes:
    """bincode of ``SubsetSum { numbers, target }``: u32 0, u64 len, i64 each, i64 target."""
    out = struct.pack("<IQ", SUBSET_SUM_VARIANT, len(numbers))
    out += b"".join(struct.pack("<q", x) for x in numbers)
    return out + struct.pack("<q", target)


def solution_bytes(indices: Sequence[int]) -> bytes:
    """bincode of the solution: u32 0, u64 len, u64 each index."""
    out = struct.pack("<IQ", SUBSET_SUM_VARIANT, len(indices))
    return out + b"".join(struct.pack("<Q", i) for i in indices)


def problem_hash(numbers: Sequence[int], target: int) -> bytes:
    return blake3(problem_bytes(numbers, target)).digest()


def solution_hash(indices: Sequence[int]) -> bytes:
    return blake3(solution_bytes(indices)).digest()


def commitment(p_hash: bytes, epoch_salt: bytes, s_hash: bytes) -> bytes:
    """``H(problem_hash || epoch_salt || solution_hash)``, a 96-byte input."""
    for name, value in (("problem_hash", p_hash), ("epoch_salt", epoch_salt),
                        ("solution_hash", s_hash)):
        if len(value) != HASH_SIZE:
            raise ValueError(f"{name}: expected {HASH_SIZE} bytes, got {len(value)}")
    return blake3(bytes(p_hash) + bytes(epoch_salt) + bytes(s_hash)).digest()


def solution_ok(numbers: Sequence[int], target: int, indices: Sequence[int]) -> bool:
    """True when the indices select distinct numbers summing to target without i64 overflow."""
    if not MIN_NUMBERS <= len(numbers) <= MAX_REVEAL_ITEMS:
        return False
    if len(indices) > MAX_REVEAL_ITEMS:
        return False
    seen: set[int] = set()
    total = 0
    for index in indices:
        if index >= len(numbers) or index in seen:
            return False
        seen.add(index)
        total += numbers[index]
        if total < I64_MIN or total > I64_MAX:  # an intermediate overflow is fatal
            return False
    return total == target


def _lists(values: np.ndarray, offsets: np.ndarray, name: str) -> list[list[int]]:
    if not isinstance(values, np.ndarray) or values.ndim != 1:
        raise TypeError(f"{name}: expected a 1-d numpy array")
    if not isinstance(offsets, np.ndarray) or offsets.dtype != np.int64 or offsets.ndim != 1:
        raise TypeError(f"{name} offsets: expected a 1-d numpy int64 array")
    if offsets.shape[0] < 1 or offsets[0] != 0 or offsets[-1] != values.shape[0] \
            or bool(np.any(np.diff(offsets) < 0)):
        raise ValueError(f"{name} offsets: must start at 0, never decrease and end at len({name})")
    flat = values.tolist()
    return [flat[offsets[i]:offsets[i + 1]] for i in range(offsets.shape[0] - 1)]


def _check_dtype(arr: np.ndarray, dtype: type, name: str) -> None:
    if not isinstance(arr, np.ndarray) or arr.dtype != dtype:
        raise TypeError(f"{name}: expected a numpy {np.dtype(dtype).name} array")


def reveal_hashes(numbers: np.ndarray, num_offsets: np.ndarray, targets: np.ndarray,
                  indices: np.ndarray, idx_offsets: np.ndarray, salts: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Batch form: (problem hashes, solution hashes, commitments), each ``uint8[N, 32]``."""
    _check_dtype(numbers, np.int64, "numbers")
    _check_dtype(targets, np.int64, "targets")
    _check_dtype(indices, np.uint64, "indices")
    _check_dtype(salts, np.uint8, "salts")
    nums = _lists(numbers, num_offsets, "numbers")
    idxs = _lists(indices, idx_offsets, "indices")
    n = len(nums)
    if len(idxs) != n or targets.shape != (n,) or salts.shape != (n, HASH_SIZE):
        raise ValueError("targets, indices offsets and salts must describe the same blocks")
    out = np.zeros((3, n, HASH_SIZE), dtype=np.uint8)
    for b in range(n):
        ph = problem_hash(nums[b], int(targets[b]))
        sh = solution_hash(idxs[b])
        cm = commitment(ph, salts[b].tobytes(), sh)
        for k, value in enumerate((ph, sh, cm)):
            out[k, b] = np.frombuffer(value, dtype=np.uint8)
    return out[0], out[1], out[2]


def check_solutions(numbers: np.ndarray, num_offsets: np.ndarray, targets: np.ndarray,
                    indices: np.ndarray, idx_offsets: np.ndarray) -> np.ndarray:
    """Batch form of :func:`solution_ok`: ``bool[N]``."""
    _check_dtype(numbers, np.int64, "numbers")
    _check_dtype(targets, np.int64, "targets")
    _check_dtype(indices, np.uint64, "indices")
    nums = _lists(numbers, num_offsets, "numbers")
    idxs = _lists(indices, idx_offsets, "indices")
    if len(idxs) != len(nums) or targets.shape != (len(nums),):
        raise ValueError("targets and indices offsets must describe the same blocks")
    return np.array([solution_ok(nums[b], int(targets[b]), idxs[b]) for b in range(len(nums))],
                    dtype=np.bool_)
