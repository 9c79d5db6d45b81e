"""Transaction merkle root of SPEC section 2, level by level."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from blake3 import blake3

from kernels.constants import HASH_SIZE

__all__ = ["merkle_root", "merkle_roots", "merkle_tree"]


def _h(data: bytes) -> bytes:
    return blake3(data).digest()


def merkle_tree(txids: Sequence[bytes]) -> list[list[bytes]]:
    """Every level of the tree, leaves (the re-hashed ids) first, root level last.

    An empty list has no levels (its root is 32 zero bytes).
    """
    for i, t in enumerate(txids):
        if len(t) != HASH_SIZE:
            raise ValueError(f"txids[{i}]: expected {HASH_SIZE} bytes, got {len(t)}")
    if not txids:
        return []
    level = [_h(bytes(t)) for t in txids]  # every id is hashed once more
    levels = [level]
    while len(level) > 1:
        nxt = [_h(level[i] + level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2 == 1:
            nxt.append(_h(level[-1]))  # the odd node is re-hashed alone, not copied
        level = nxt
        levels.append(level)
    return levels


def merkle_root(txids: Sequence[bytes]) -> bytes:
    """The merkle root of a list of 32-byte transaction ids."""
    levels = merkle_tree(txids)
    return levels[-1][0] if levels else bytes(HASH_SIZE)


def merkle_roots(ids: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Batch form: CSR ids ``uint8[T, 32]`` with ``offsets[N+1]`` -> roots ``uint8[N, 32]``."""
    _check_csr(ids, offsets)
    n = offsets.shape[0] - 1
    out = np.zeros((n, HASH_SIZE), dtype=np.uint8)
    for b in range(n):
        txids = [ids[i].tobytes() for i in range(int(offsets[b]), int(offsets[b + 1]))]
        out[b] = np.frombuffer(merkle_root(txids), dtype=np.uint8)
    return out


def _check_csr(ids: np.ndarray, offsets: np.ndarray) -> None:
    if not isinstance(ids, np.ndarray) or ids.dtype != np.uint8:
        raise TypeError("ids: expected a numpy uint8 array")
    if ids.ndim != 2 or ids.shape[1] != HASH_SIZE:
        raise ValueError(f"ids: expected shape [T, 32], got {list(ids.shape)}")
    if not isinstance(offsets, np.ndarray) or offsets.dtype != np.int64 or offsets.ndim != 1:
        raise TypeError("offsets: expected a 1-d numpy int64 array")
    if offsets.shape[0] < 1 or offsets[0] != 0 or offsets[-1] != ids.shape[0] \
            or bool(np.any(np.diff(offsets) < 0)):
        raise ValueError("offsets: must start at 0, never decrease and end at len(ids)")
