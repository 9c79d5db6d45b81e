"""Twin-neutral input checks and CSR packing for the kernels' public functions.

Both twins run these before any work, so a bad argument raises the same exception
(type and message) in either twin: ``TypeError`` for a wrong kind or dtype,
``ValueError`` for a wrong shape, length or offsets; the message starts with the
argument's name. Nothing here computes a consensus rule.
"""
from __future__ import annotations

import operator
from collections.abc import Iterator, Sequence

import numpy as np

from kernels.constants import HASH_SIZE, HEADER_SIZE, I64_MAX, I64_MIN, U64_MAX, Block, Parent

__all__ = ["array", "blocks", "fixed_bytes", "fixed_items", "headers", "ids", "offsets",
           "pack", "pack_blocks", "parent", "reveals", "unpack"]


def array(value: object, name: str, dtype: type, shape: tuple[int | str, ...]) -> np.ndarray:
    """``value`` as a C-contiguous array (a copy only when it is not one already) after
    checking its dtype and shape; ``shape`` holds sizes, or labels for free sizes."""
    want = np.dtype(dtype)
    if not isinstance(value, np.ndarray) or value.dtype != want:
        got = f"{value.dtype} array" if isinstance(value, np.ndarray) else type(value).__name__
        raise TypeError(f"{name}: expected a numpy {want.name} array, got {got}")
    if value.ndim != len(shape) or any(isinstance(s, int) and value.shape[k] != s
                                       for k, s in enumerate(shape)):
        want_shape = ", ".join(str(s) for s in shape)
        raise ValueError(f"{name}: expected shape [{want_shape}], got {list(value.shape)}")
    return np.ascontiguousarray(value)


def offsets(value: object, name: str, items: int, items_name: str,
            blocks: int | None = None) -> np.ndarray:
    """CSR offsets ``int64[N + 1]``: start at 0, never decrease, end at ``items``
    (the length of ``items_name``); ``N == blocks`` when given."""
    off = array(value, name, np.int64, ("N + 1",))
    if off.shape[0] < 1:
        raise ValueError(f"{name}: expected at least one entry (0 for no blocks)")
    if blocks is not None and off.shape[0] != blocks + 1:
        raise ValueError(f"{name}: expected {blocks + 1} entries (one per block, plus one), "
                         f"got {off.shape[0]}")
    if off[0] != 0:
        raise ValueError(f"{name}: must start at 0, starts at {int(off[0])}")
    drops = np.flatnonzero(off[1:] < off[:-1])
    if drops.shape[0]:
        raise ValueError(f"{name}: must never decrease, decreases after entry {int(drops[0])}")
    if off[-1] != items:
        raise ValueError(f"{name}: must end at len({items_name}) = {items}, "
                         f"ends at {int(off[-1])}")
    return off


def fixed_bytes(value: object, name: str, size: int) -> bytes:
    """``value`` (bytes-like, or a 1-d uint8 array) as ``bytes`` of exactly ``size``."""
    if isinstance(value, str) or (isinstance(value, np.ndarray) and value.dtype != np.uint8):
        got = f"{value.dtype} array" if isinstance(value, np.ndarray) else "str"
        raise TypeError(f"{name}: expected {size} bytes, got {got}")
    raw = value if type(value) is bytes else bytes(value)  # type: ignore[call-overload]
    if len(raw) != size:
        raise ValueError(f"{name}: expected {size} bytes, got {len(raw)}")
    return raw


def fixed_items(items: Sequence[object], name: str, size: int) -> list[bytes]:
    """Every item of ``items`` as ``bytes`` of exactly ``size`` (``name[i]`` on error)."""
    return [fixed_bytes(t, f"{name}[{i}]", size) for i, t in enumerate(items)]


def headers(value: object) -> np.ndarray:
    """Headers ``uint8[N, 276]``."""
    return array(value, "headers", np.uint8, ("N", HEADER_SIZE))


def ids(ids_: object, offsets_: object, offsets_name: str = "offsets",
        blocks: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Transaction ids ``uint8[T, 32]`` and their CSR offsets."""
    flat = array(ids_, "ids", np.uint8, ("T", HASH_SIZE))
    return flat, offsets(offsets_, offsets_name, flat.shape[0], "ids", blocks)


def reveals(numbers: object, num_offsets: object, targets: object, indices: object,
            idx_offsets: object, blocks: int | None = None) -> tuple[np.ndarray, ...]:
    """Reveals as CSR arrays: ``numbers`` int64, ``targets`` int64[N], ``indices`` uint64,
    each list's offsets ``int64[N + 1]``; ``N`` is ``blocks`` or else ``len(targets)``."""
    nums = array(numbers, "numbers", np.int64, ("K",))
    tgts = array(targets, "targets", np.int64, ("N",) if blocks is None else (blocks,))
    idxs = array(indices, "indices", np.uint64, ("M",))
    n = tgts.shape[0]
    return (nums, offsets(num_offsets, "num_offsets", nums.shape[0], "numbers", n), tgts,
            idxs, offsets(idx_offsets, "idx_offsets", idxs.shape[0], "indices", n))


def blocks(headers_: object, ids_: object, id_offsets: object, numbers: object,
           num_offsets: object, targets: object, indices: object,
           idx_offsets: object) -> tuple[np.ndarray, ...]:
    """The eight arrays of ``validate_blocks``; ``headers`` fixes the block count."""
    hdr = headers(headers_)
    flat, id_off = ids(ids_, id_offsets, "id_offsets", hdr.shape[0])
    return (hdr, flat, id_off) + reveals(numbers, num_offsets, targets, indices, idx_offsets,
                                         hdr.shape[0])


def _int(value: object, name: str, lo: int, hi: int) -> int:
    try:
        x = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__}") from None
    if not lo <= x <= hi:
        raise ValueError(f"{name}: {x} is outside [{lo}, {hi}]")
    return x


def parent(value: object) -> bytes | Parent | None:
    """The ``parent`` argument of validation: ``None`` (no parent), the parent's header
    (``bytes`` or ``uint8[276]``, returned as 276 ``bytes``) or a ``(height, hash,
    timestamp)`` tuple (returned as ``(int, bytes, int)``, u64 / 32 bytes / i64)."""
    if value is None:
        return None
    if isinstance(value, np.ndarray):
        return fixed_bytes(array(value, "parent", np.uint8, (HEADER_SIZE,)), "parent",
                           HEADER_SIZE)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return fixed_bytes(value, "parent", HEADER_SIZE)
    if isinstance(value, (tuple, list)):
        if len(value) != 3:
            raise ValueError(f"parent: expected (height, hash, timestamp), got {len(value)} items")
        height, p_hash, ts = value
        return (_int(height, "parent height", 0, U64_MAX),
                fixed_bytes(p_hash, "parent hash", HASH_SIZE),
                _int(ts, "parent timestamp", I64_MIN, I64_MAX))
    raise TypeError("parent: expected None, a 276-byte header or a (height, hash, timestamp) "
                    f"tuple, got {type(value).__name__}")


def pack(lists: Sequence[Sequence[object]], dtype: type, name: str,
         width: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per-block lists -> (values, ``int64`` offsets): ``dtype[K]``, or with ``width`` the
    items are byte strings of that size packed as ``uint8[K, width]``."""
    offs = np.zeros(len(lists) + 1, dtype=np.int64)
    offs[1:] = np.cumsum([len(x) for x in lists], dtype=np.int64)
    if width:
        raw = b"".join(fixed_bytes(t, f"{name}[{b}][{i}]", width)
                       for b, x in enumerate(lists) for i, t in enumerate(x))
        return np.frombuffer(bytearray(raw), dtype=np.uint8).reshape(-1, width), offs
    try:
        values: np.ndarray = np.array([v for x in lists for v in x], dtype=dtype).reshape(-1)
    except OverflowError:
        raise ValueError(f"{name}: every item must fit {np.dtype(dtype).name}") from None
    return values, offs


class Unpacked(Sequence):
    """CSR -> per-block lists: Python ints of a 1-d ``values``, or ``bytes`` rows of a
    2-d one (the inverse of :func:`pack`). Rows are converted :attr:`CHUNK` blocks at a
    time as they are read, so a batch's Python objects never all exist at once."""

    CHUNK = 4096

    def __init__(self, values: np.ndarray, offs: np.ndarray) -> None:
        self.values, self.bounds = values, offs.tolist()
        self._lo: int = 0
        self._rows: list[list] = []

    def __len__(self) -> int:
        return len(self.bounds) - 1

    def __getitem__(self, b):
        if b < 0:
            b += len(self)
        if not 0 <= b < len(self):
            raise IndexError(b)
        if not self._lo <= b < self._lo + len(self._rows):
            self._lo, self._rows = b, self._chunk(b)
        return self._rows[b - self._lo]

    def _chunk(self, lo: int) -> list[list]:
        hi = min(lo + self.CHUNK, len(self))
        first = self.bounds[lo]
        part = self.values[first:self.bounds[hi]]
        flat = part.tolist() if part.ndim == 1 else [row.tobytes() for row in part]
        return [flat[self.bounds[i] - first:self.bounds[i + 1] - first] for i in range(lo, hi)]

    def __iter__(self) -> Iterator[list]:
        for lo in range(0, len(self), self.CHUNK):
            yield from self._chunk(lo)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]


def unpack(values: np.ndarray, offs: np.ndarray) -> Unpacked:
    """CSR -> a sequence of per-block lists (see :class:`Unpacked`)."""
    return Unpacked(values, offs)


def pack_blocks(blocks_: Sequence[Block]) -> tuple[np.ndarray, ...]:
    """Per-object blocks -> the eight arrays of ``validate_blocks`` (headers, ids,
    id_offsets, numbers, num_offsets, targets, indices, idx_offsets)."""
    raw = b"".join(fixed_bytes(b.header, f"blocks[{i}].header", HEADER_SIZE)
                   for i, b in enumerate(blocks_))
    hdr = np.frombuffer(bytearray(raw), dtype=np.uint8).reshape(-1, HEADER_SIZE)
    flat, id_off = pack([b.txids for b in blocks_], np.uint8, "txids", HASH_SIZE)
    nums, num_off = pack([b.numbers for b in blocks_], np.int64, "numbers")
    idxs, idx_off = pack([b.indices for b in blocks_], np.uint64, "indices")
    tgts, _ = pack([[b.target] for b in blocks_], np.int64, "targets")
    return hdr, flat, id_off, nums, num_off, tgts, idxs, idx_off
