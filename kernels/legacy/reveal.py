"""Subset-sum reveal of SPEC section 3: encodings, hashes, commitment, correctness."""
from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np
from blake3 import blake3

from kernels import checks
from kernels.constants import (
    HASH_SIZE,
    I64_MAX,
    I64_MIN,
    MAX_REVEAL_ITEMS,
    MIN_NUMBERS,
    SUBSET_SUM_VARIANT,
)
from kernels.legacy.header import decode_header

__all__ = ["check_solutions", "commitment", "commitments", "problem_bytes", "problem_hash",
           "reveal_hashes", "solution_bytes", "solution_hash", "solution_ok"]


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
    """``H(problem bytes)``."""
    return blake3(problem_bytes(numbers, target)).digest()


def solution_hash(indices: Sequence[int]) -> bytes:
    """``H(solution bytes)``."""
    return blake3(solution_bytes(indices)).digest()


def commitment(p_hash: bytes, epoch_salt: bytes, s_hash: bytes) -> bytes:
    """``H(problem_hash || epoch_salt || solution_hash)``, a 96-byte input."""
    p_hash = checks.fixed_bytes(p_hash, "problem_hash", HASH_SIZE)
    epoch_salt = checks.fixed_bytes(epoch_salt, "epoch_salt", HASH_SIZE)
    s_hash = checks.fixed_bytes(s_hash, "solution_hash", HASH_SIZE)
    return blake3(p_hash + epoch_salt + s_hash).digest()


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


def reveal_hashes(numbers: np.ndarray, num_offsets: np.ndarray, targets: np.ndarray,
                  indices: np.ndarray, idx_offsets: np.ndarray, salts: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Batch form: (problem hashes, solution hashes, commitments), each ``uint8[N, 32]``."""
    numbers, num_offsets, targets, indices, idx_offsets = checks.reveals(
        numbers, num_offsets, targets, indices, idx_offsets)
    n = targets.shape[0]
    salts = checks.array(salts, "salts", np.uint8, (n, HASH_SIZE))
    nums = checks.unpack(numbers, num_offsets)
    idxs = checks.unpack(indices, idx_offsets)
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
    numbers, num_offsets, targets, indices, idx_offsets = checks.reveals(
        numbers, num_offsets, targets, indices, idx_offsets)
    nums = checks.unpack(numbers, num_offsets)
    idxs = checks.unpack(indices, idx_offsets)
    return np.array([solution_ok(nums[b], int(targets[b]), idxs[b]) for b in range(len(nums))],
                    dtype=np.bool_)


def commitments(headers: np.ndarray, numbers: np.ndarray, num_offsets: np.ndarray,
                targets: np.ndarray, indices: np.ndarray, idx_offsets: np.ndarray) -> np.ndarray:
    """Batch form: each block's expected ``commitment_hash`` (SPEC section 3, any reveal
    length), the epoch salt being its header's ``prev_hash``: ``uint8[N, 32]``."""
    headers = checks.headers(headers)
    numbers, num_offsets, targets, indices, idx_offsets = checks.reveals(
        numbers, num_offsets, targets, indices, idx_offsets, blocks=headers.shape[0])
    nums = checks.unpack(numbers, num_offsets)
    idxs = checks.unpack(indices, idx_offsets)
    out = np.zeros((headers.shape[0], HASH_SIZE), dtype=np.uint8)
    for b in range(headers.shape[0]):
        epoch_salt: bytes = decode_header(headers[b].tobytes())["prev_hash"]
        ph = problem_hash(nums[b], int(targets[b]))
        sh = solution_hash(idxs[b])
        out[b] = np.frombuffer(commitment(ph, epoch_salt, sh), dtype=np.uint8)
    return out
