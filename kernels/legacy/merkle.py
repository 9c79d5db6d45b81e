"""Transaction merkle root of SPEC section 2, level by level."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from blake3 import blake3

from kernels import checks
from kernels.constants import HASH_SIZE

__all__ = ["merkle_root", "merkle_roots", "merkle_tree"]


def _h(data: bytes) -> bytes:
    return blake3(data).digest()


def merkle_tree(txids: Sequence[bytes]) -> list[list[bytes]]:
    """Every level of the tree, leaves (the re-hashed ids) first, root level last.

    An empty list has no levels (its root is 32 zero bytes).
    """
    return _tree_of_checked(checks.fixed_items(txids, "txids", HASH_SIZE))


def _tree_of_checked(txids: Sequence[bytes]) -> list[list[bytes]]:
    """:func:`merkle_tree` of ids already checked to be 32-byte ``bytes``."""
    if not txids:
        return []
    level = [_h(t) for t in txids]  # every id is hashed once more
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
    return _root_of_checked(checks.fixed_items(txids, "txids", HASH_SIZE))


def _root_of_checked(txids: Sequence[bytes]) -> bytes:
    """:func:`merkle_root` of ids already checked to be 32-byte ``bytes``."""
    levels = _tree_of_checked(txids)
    return levels[-1][0] if levels else bytes(HASH_SIZE)


def merkle_roots(ids: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Batch form: CSR ids ``uint8[T, 32]`` with ``offsets[N+1]`` -> roots ``uint8[N, 32]``."""
    ids, offsets = checks.ids(ids, offsets)
    blocks = checks.unpack(ids, offsets)  # each block's ids as a list of 32-byte bytes
    out = np.zeros((len(blocks), HASH_SIZE), dtype=np.uint8)
    for b, txids in enumerate(blocks):
        out[b] = np.frombuffer(_root_of_checked(txids), dtype=np.uint8)
    return out

