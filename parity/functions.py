"""The compared functions: one registry entry each.

An entry says which twin attribute computes the function over a shard, how its
arguments are built, which results column holds its served output, how a difference
in one row is localized, and whether it reads chain state (the parent and the replay
history). Adding a compared function is one entry here plus the twins' function.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from parity.compare import diff_bytes, merkle_divergence, status_diff
from parity.errors import ParityError
from parity.records import BytesMismatch, MerkleMismatch, RowMismatch, StatusMismatch

if TYPE_CHECKING:
    from parity.corpus import Shard
    from parity.corpus.manifest import Manifest
    from parity.twins import Twin

#: (shard, manifest, parent, replay) -> (args, kwargs) of the twin's call
ArgBuilder = Callable[["Shard", "Manifest", Any, Any], tuple[tuple, dict]]
#: (shard, row, legacy output row, refactored output row, legacy twin, refactored twin) -> fields
Localizer = Callable[["Shard", int, np.ndarray, np.ndarray, "Twin", "Twin"], dict]


@dataclass(frozen=True)
class BatchFunction:
    name: str
    attr: str                  # the twin's callable
    column: str                # results Parquet column
    arrow_type: pa.DataType    # fixed_size_binary(32) or uint32
    args: ArgBuilder
    localize: Localizer
    record: type[RowMismatch]
    chain_state: bool = False  # reads the parent and the replay state
    parts: tuple[str, ...] = ()  # the block inputs it reads (for shrinking)

    def call(self, twin: Twin, shard: Shard, manifest: Manifest, parent: Any,
             replay: Any) -> Any:
        args, kwargs = self.args(shard, manifest, parent, replay)
        return getattr(twin, self.attr)(*args, **kwargs)

    def column_array(self, values: np.ndarray, n: int) -> pa.Array:
        """Served outputs as this function's results column."""
        if pa.types.is_fixed_size_binary(self.arrow_type):
            raw = np.ascontiguousarray(values, dtype=np.uint8)
            return pa.FixedSizeBinaryArray.from_buffers(self.arrow_type, n,
                                                        [None, pa.py_buffer(raw)])
        return pa.array(np.asarray(values, dtype=np.uint32), self.arrow_type)


def _bytes(shard: Shard, row: int, a: np.ndarray, b: np.ndarray, lt: Twin, rt: Twin) -> dict:
    return diff_bytes(a.tobytes(), b.tobytes())


def _merkle(shard: Shard, row: int, a: np.ndarray, b: np.ndarray, lt: Twin, rt: Twin) -> dict:
    extra = diff_bytes(a.tobytes(), b.tobytes())
    trees = [getattr(t, "merkle_tree", None) for t in (lt, rt)]
    if None in trees:
        extra["divergence"] = None
        return extra
    lo, hi = shard.id_offsets[row], shard.id_offsets[row + 1]
    txids = [r.tobytes() for r in shard.ids[lo:hi]]
    extra["divergence"] = merkle_divergence(trees[0](txids), trees[1](txids))  # type: ignore[misc]
    return extra


def _status(shard: Shard, row: int, a: np.ndarray, b: np.ndarray, lt: Twin, rt: Twin) -> dict:
    return status_diff(int(a), int(b))


def _reveal(shard: Shard) -> tuple:
    return (shard.numbers, shard.num_offsets, shard.targets, shard.indices, shard.idx_offsets)


_HASH32 = pa.binary(32)
REGISTRY: dict[str, BatchFunction] = {f.name: f for f in (
    BatchFunction("header_hash", "hash_headers", "header_hash", _HASH32,
                  lambda s, m, p, r: ((s.headers,), {}), _bytes, BytesMismatch,
                  parts=("header",)),
    BatchFunction("merkle_root", "merkle_roots", "tx_root", _HASH32,
                  lambda s, m, p, r: ((s.ids, s.id_offsets), {}), _merkle, MerkleMismatch,
                  parts=("txids",)),
    BatchFunction("validate", "validate_blocks", "status", pa.uint32(),
                  lambda s, m, p, r: (s.arrays(), {
                      "now": m.now, "difficulty_target": m.difficulty_target,
                      "parent": p, "replay": r}), _status, StatusMismatch,
                  chain_state=True,
                  parts=("header", "txids", "numbers", "target", "indices", "parent",
                         "replay")),
    BatchFunction("commitment", "commitments", "commitment", _HASH32,
                  lambda s, m, p, r: ((s.headers, *_reveal(s)), {}), _bytes, BytesMismatch,
                  parts=("header", "numbers", "target", "indices")),
)}
FUNCTIONS = tuple(REGISTRY)
#: the results Parquet columns, in order (SPEC section 6, then added functions)
RESULT_COLUMNS = tuple((f.column, f.arrow_type) for f in REGISTRY.values())


def resolve(names: Sequence[str]) -> tuple[BatchFunction, ...]:
    """Registry entries by name, in the order given; unknown names are a usage error."""
    if not names:
        raise ParityError("--functions: name at least one function")
    out = []
    for n in names:
        if n not in REGISTRY:
            raise ParityError(f"--functions: unknown function {n!r}; choose from "
                              f"{', '.join(FUNCTIONS)}")
        if REGISTRY[n] not in out:
            out.append(REGISTRY[n])
    return tuple(out)
