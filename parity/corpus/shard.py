"""A shard: consecutive blocks as the numpy arrays the kernels take (no per-block objects)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from kernels.checks import pack_blocks
from kernels.constants import HASH_SIZE, HEADER_SIZE, Block

SCHEMA = pa.schema([
    ("header", pa.binary(HEADER_SIZE)),
    ("txids", pa.list_(pa.binary(HASH_SIZE))),
    ("numbers", pa.list_(pa.int64())),
    ("target", pa.int64()),
    ("indices", pa.list_(pa.uint64())),
])


@dataclass
class Shard:
    """Blocks ``start..start+len`` of a corpus, from ``file`` rows ``row..row+len``."""

    headers: np.ndarray      # uint8[n, 276]
    ids: np.ndarray          # uint8[T, 32]
    id_offsets: np.ndarray   # int64[n + 1]
    numbers: np.ndarray      # int64[K]
    num_offsets: np.ndarray  # int64[n + 1]
    targets: np.ndarray      # int64[n]
    indices: np.ndarray      # uint64[M]
    idx_offsets: np.ndarray  # int64[n + 1]
    start: int = 0
    file: str = ""
    row: int = 0

    def __len__(self) -> int:
        return int(self.headers.shape[0])

    def arrays(self) -> tuple[np.ndarray, ...]:
        """The positional arguments of ``validate_blocks``."""
        return (self.headers, self.ids, self.id_offsets, self.numbers, self.num_offsets,
                self.targets, self.indices, self.idx_offsets)

    def block(self, i: int) -> Block:
        """Block ``i`` of this shard as a per-object :class:`Block`."""
        lo, hi = self.id_offsets[i], self.id_offsets[i + 1]
        return Block(self.headers[i].tobytes(), [r.tobytes() for r in self.ids[lo:hi]],
                     self.numbers[self.num_offsets[i]:self.num_offsets[i + 1]].tolist(),
                     int(self.targets[i]),
                     self.indices[self.idx_offsets[i]:self.idx_offsets[i + 1]].tolist())

    def slice(self, lo: int, hi: int, copy: bool = True) -> Shard:
        """Blocks ``lo..hi`` as a shard of their own: copies, or (``copy=False``) views that
        keep the arrays' kind (read-only Arrow buffers stay read-only, so a warm-up on a
        view compiles exactly what the full shard will use)."""
        take = (lambda a: a.copy()) if copy else (lambda a: a)

        def part(values: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            a, b = offsets[lo], offsets[hi]
            return take(values[a:b]), (offsets[lo:hi + 1] - a).astype(np.int64)
        ids, id_off = part(self.ids, self.id_offsets)
        nums, num_off = part(self.numbers, self.num_offsets)
        idxs, idx_off = part(self.indices, self.idx_offsets)
        return Shard(take(self.headers[lo:hi]), ids, id_off, nums, num_off,
                     take(self.targets[lo:hi]), idxs, idx_off, self.start + lo, self.file,
                     self.row + lo)


def from_blocks(blocks: Sequence[Block]) -> Shard:
    """Pack per-object blocks into a shard (the twins' own packing, kernels.checks)."""
    headers, ids, id_off, nums, num_off, targets, idxs, idx_off = pack_blocks(blocks)
    return Shard(headers, ids, id_off, nums, num_off, targets, idxs, idx_off)


def one_chunk(column: pa.ChunkedArray) -> pa.Array:
    """``column`` as one array: its chunk when it has one (no copy; Arrow's
    ``combine_chunks`` copies even then), else the chunks concatenated."""
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def _fixed(arr: pa.FixedSizeBinaryArray, width: int) -> np.ndarray:
    buf = np.frombuffer(arr.buffers()[1], dtype=np.uint8)
    return buf[arr.offset * width:(arr.offset + len(arr)) * width].reshape(len(arr), width)


def _list(arr: pa.ListArray) -> tuple[pa.Array, np.ndarray]:
    """The items of a list column (nulls already refused) and their offsets from 0. The
    items are a slice of the child array: ``flatten`` gives the same items for a list
    column without nulls, but imports ``pyarrow.compute`` (0.08-0.11 s, holding the GIL,
    in every process that reads a shard)."""
    offsets = arr.offsets.to_numpy().astype(np.int64)
    first = int(offsets[0])
    return arr.values.slice(first, int(offsets[-1]) - first), offsets - first


def _primitive(arr: pa.Array, dtype: type) -> np.ndarray:
    return arr.to_numpy(zero_copy_only=False).astype(dtype, copy=False)


def from_batch(batch: pa.RecordBatch | pa.Table, start: int = 0, file: str = "",
               row: int = 0) -> Shard:
    """Arrow rows (SPEC section 6 columns, no nulls) -> a shard of numpy arrays."""
    col = {name: batch.column(name) for name in SCHEMA.names}
    col = {k: (one_chunk(v) if isinstance(v, pa.ChunkedArray) else v) for k, v in col.items()}
    for name, arr in col.items():
        if arr.null_count:
            raise ValueError(f"column {name} has {arr.null_count} null values (SPEC section 6 "
                             "allows none)")
    lists = {name: _list(col[name]) for name in ("txids", "numbers", "indices")}
    for name, (items, _off) in lists.items():
        if items.null_count:
            raise ValueError(f"column {name} has {items.null_count} null list items (SPEC "
                             "section 6 allows none)")
    (txids, id_off), (numbers, num_off), (indices, idx_off) = lists.values()
    return Shard(_fixed(col["header"], HEADER_SIZE), _fixed(txids, HASH_SIZE), id_off,
                 _primitive(numbers, np.int64), num_off, _primitive(col["target"], np.int64),
                 _primitive(indices, np.uint64), idx_off, start, file, row)


def to_table(shard: Shard) -> pa.Table:
    """A shard -> an Arrow table with the exact SPEC section 6 schema."""
    n = len(shard)

    def fixed(data: np.ndarray, width: int) -> pa.Array:
        raw = np.ascontiguousarray(data, dtype=np.uint8)
        return pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), raw.shape[0],
                                                    [None, pa.py_buffer(raw)])

    def listed(values: pa.Array, offsets: np.ndarray) -> pa.Array:
        return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), values)

    cols = [fixed(shard.headers, HEADER_SIZE),
            listed(fixed(shard.ids, HASH_SIZE), shard.id_offsets),
            listed(pa.array(shard.numbers, pa.int64()), shard.num_offsets),
            pa.array(shard.targets, pa.int64()),
            listed(pa.array(shard.indices, pa.uint64()), shard.idx_offsets)]
    table = pa.Table.from_arrays(cols, schema=SCHEMA)
    assert table.num_rows == n
    return table
