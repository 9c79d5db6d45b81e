"""A posted batch body (SPEC section 6 JSONL lines) parsed straight into a shard.

The fast path checks and converts a whole batch column by column (one ``bytes.fromhex``
per column of hashes, one numpy conversion per column of integers) instead of block by
block; it accepts only what :func:`parity.corpus.jsonl.block_from_json` accepts and builds
the same bytes. Anything it does not accept goes through ``block_from_json`` line by line,
so a bad body is refused with the same message naming its first bad line.
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass

import numpy as np
from blake3 import blake3

from kernels import constants as C
from parity.corpus.jsonl import _float_in, block_from_json
from parity.corpus.shard import Shard, from_blocks

MAX_BATCH = 10_000
_KEYS = ("header", "txids", "numbers", "target", "indices")
_INTS = {"u32": "<u4", "u64": "<u8", "i64": "<i8"}
_FIELD_SET = frozenset(C.FIELD_NAMES)
#: the 276-byte header as a numpy record: same offsets and byte order as bincode
HEADER_DTYPE = np.dtype({
    "names": list(C.FIELD_NAMES),
    "formats": [("u1", (32,)) if k == "b32" else "<f8" if k == "f64" else _INTS[k]
                for _n, _o, _s, k in C.HEADER_FIELDS],
    "offsets": [o for _n, o, _s, _k in C.HEADER_FIELDS], "itemsize": C.HEADER_SIZE})


class BadBody(ValueError):
    """The body cannot be a batch; the message names the first bad line when there is one."""


@dataclass
class Batch:
    """A parsed batch: the blocks as a shard, each block's digest and height."""

    shard: Shard
    digests: list[bytes]
    heights: list[int]


class _Slow(Exception):
    """The fast path does not take this batch: parse it line by line."""


def parse_body(body: bytes) -> Batch:
    """JSONL lines (a ``corpus`` line is skipped, blank lines too) -> a :class:`Batch`;
    BadBody when the body is not a batch of valid blocks."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadBody("body is not UTF-8 text") from None
    objs: list[tuple[int, object]] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError) as exc:
            raise BadBody(f"line {number}: {str(exc)[:300]}") from None
        if isinstance(obj, dict) and "corpus" in obj and "header" not in obj:
            continue
        objs.append((number, obj))
        if len(objs) > MAX_BATCH:
            raise BadBody(f"more than {MAX_BATCH:,} blocks in one batch")
    if not objs:
        raise BadBody("no blocks in the body")
    try:
        shard = _fast([o for _n, o in objs])
    except _Slow:
        shard = _slow(objs)
    heights = shard.headers[:, C.OFF_HEIGHT:C.OFF_HEIGHT + 8].copy().view("<u8").ravel()
    return Batch(shard, digests(shard), heights.tolist())


def _slow(objs: list[tuple[int, object]]) -> Shard:
    blocks = []
    for number, obj in objs:
        try:
            blocks.append(block_from_json(obj))
        except (ValueError, RecursionError) as exc:
            raise BadBody(f"line {number}: {str(exc)[:300]}") from None
    return from_blocks(blocks)


def _hashes(values: list, n_expected: int) -> np.ndarray:
    """64-hex-digit strings -> ``uint8[n, 32]`` (every item checked by length and hex)."""
    if not set(map(type, values)) <= {str} or not set(map(len, values)) <= {64}:
        raise _Slow
    try:
        raw = bytes.fromhex("".join(values))
    except ValueError:
        raise _Slow from None
    if len(raw) != 32 * n_expected:  # fromhex skips whitespace: a short result had some
        raise _Slow
    return np.frombuffer(bytearray(raw), dtype=np.uint8).reshape(n_expected, 32)  # writable, as packed


def _ints(values: list, dtype: str) -> np.ndarray:
    if not set(map(type, values)) <= {int}:  # bool, float, str: the slow path names it
        raise _Slow
    try:
        return np.array(values, dtype=dtype)
    except OverflowError:  # out of the type's range
        raise _Slow from None


def _floats(values: list) -> np.ndarray:
    out = []
    for v in values:
        if type(v) is not float:
            try:
                v = _float_in(v, "")
            except ValueError:
                raise _Slow from None
        out.append(v)
    return np.array(out, dtype="<f8")


def _csr(lists: list[list]) -> tuple[list, np.ndarray]:
    offsets = np.zeros(len(lists) + 1, dtype=np.int64)
    np.cumsum([len(x) for x in lists], out=offsets[1:])
    return [v for x in lists for v in x], offsets


def _fast(objs: list[object]) -> Shard:
    """The batch as a shard, column by column; _Slow for anything it does not take."""
    n = len(objs)
    columns: dict[str, list] = {k: [] for k in _KEYS}
    for obj in objs:
        if type(obj) is not dict:
            raise _Slow
        for k in _KEYS:
            v = obj.get(k)
            if v is None or (k != "target" and type(v) is not (dict if k == "header" else list)):
                raise _Slow
            columns[k].append(v)
    raws = columns["header"]
    for raw in raws:
        if raw.keys() != _FIELD_SET:
            raise _Slow
    rec = np.zeros(n, dtype=HEADER_DTYPE)
    for name, _o, _s, kind in C.HEADER_FIELDS:
        col = [raw[name] for raw in raws]
        rec[name] = (_hashes(col, n) if kind == "b32" else _floats(col) if kind == "f64"
                     else _ints(col, _INTS[kind]))
    txids, id_off = _csr(columns["txids"])
    numbers, num_off = _csr(columns["numbers"])
    indices, idx_off = _csr(columns["indices"])
    return Shard(rec.view(np.uint8).reshape(n, C.HEADER_SIZE),
                 _hashes(txids, len(txids)), id_off,
                 _ints(numbers, "<i8").astype(np.int64, copy=False), num_off,
                 _ints(columns["target"], "<i8").astype(np.int64, copy=False),
                 _ints(indices, "<u8").astype(np.uint64, copy=False), idx_off)


def digests(shard: Shard) -> list[bytes]:
    """BLAKE3 over every byte of each block (header, ids, reveal), with lengths: equal
    to :func:`parity.live.block_digest` of the same block."""
    headers, ids, numbers, indices = shard.headers, shard.ids, shard.numbers, shard.indices
    io, no, xo = shard.id_offsets.tolist(), shard.num_offsets.tolist(), shard.idx_offsets.tolist()
    targets = shard.targets.tolist()
    out = []
    for i in range(len(shard)):
        h = blake3(headers[i].tobytes())
        h.update(struct.pack("<Q", io[i + 1] - io[i]) + ids[io[i]:io[i + 1]].tobytes())
        h.update(struct.pack("<Q", no[i + 1] - no[i]) + numbers[no[i]:no[i + 1]].astype("<i8").tobytes())
        h.update(struct.pack("<qQ", targets[i], xo[i + 1] - xo[i])
                 + indices[xo[i]:xo[i + 1]].astype("<u8").tobytes())
        out.append(h.digest())
    return out
