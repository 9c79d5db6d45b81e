"""Block headers in batches: BLAKE3 header hashes, and field columns read through a
packed numpy record dtype with the exact bincode layout."""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numba import njit

from kernels import checks
from kernels.config import JIT_OPTIONS
from kernels.constants import HASH_SIZE, HEADER_FIELDS, HEADER_SIZE
from kernels.jit._blake3 import _hash_serial, hash_rows_into
from kernels.jit._selftest import ensure_ready, is_ready

__all__ = ["decode_header", "decode_headers", "encode_header", "encode_headers", "hash_header",
           "hash_headers"]

_FORMAT = {"u32": "<u4", "u64": "<u8", "i64": "<i8", "f64": "<f8", "b32": ("u1", (32,))}
#: a packed numpy record with the exact bincode layout (no padding, little-endian)
HEADER_DTYPE = np.dtype({
    "names": [f[0] for f in HEADER_FIELDS],
    "formats": [_FORMAT[f[3]] for f in HEADER_FIELDS],
    "offsets": [f[1] for f in HEADER_FIELDS],
    "itemsize": HEADER_SIZE,
})


def hash_headers(headers: np.ndarray, parallel: bool = True) -> np.ndarray:
    """``uint8[N, 276]`` -> header hashes ``uint8[N, 32]``, 16 headers per SIMD step."""
    headers = checks.headers(headers)
    ensure_ready()
    out = np.empty((headers.shape[0], HASH_SIZE), dtype=np.uint8)
    hash_rows_into(headers, out, parallel)
    return out


@njit(**JIT_OPTIONS)
def _hash_one(header):
    """One header given as ``bytes``: the per-call path, with no array set-up in Python."""
    buf = np.empty(HEADER_SIZE, dtype=np.uint8)
    for k in range(HEADER_SIZE):
        buf[k] = header[k]
    out = np.empty(32, dtype=np.uint8)
    none = np.empty(0, dtype=np.int64)
    _hash_serial(buf.view(np.uint32), none, np.int64(HEADER_SIZE // 4), np.int64(1),
                 np.int64(HEADER_SIZE), none, out.view(np.uint32))  # not literals: one compile
    return out


def hash_header(header: bytes) -> bytes:
    """The hash of one 276-byte header (one lane, one thread)."""
    header = checks.fixed_bytes(header, "header", HEADER_SIZE)
    if not is_ready():
        ensure_ready()
    return _hash_one(header).tobytes()


def decode_headers(headers: np.ndarray) -> dict[str, np.ndarray]:
    """``uint8[N, 276]`` -> columns ``{field: array[N] or uint8[N, 32]}`` (bits preserved)."""
    records = checks.headers(headers).reshape(-1).view(HEADER_DTYPE)
    return {name: np.array(records[name]) for name in HEADER_DTYPE.names}


def encode_headers(fields: Mapping[str, np.ndarray]) -> np.ndarray:
    """Columns ``{field: array[N] or uint8[N, 32]}`` -> ``uint8[N, 276]``."""
    n = len(fields[HEADER_FIELDS[0][0]])
    records = np.zeros(n, dtype=HEADER_DTYPE)
    for name in HEADER_DTYPE.names:
        column = np.asarray(fields[name])
        if column.shape[0] != n:
            raise ValueError(f"{name}: expected {n} rows, got {column.shape[0]}")
        records[name] = column
    return records.view(np.uint8).reshape(n, HEADER_SIZE)


def decode_header(header: bytes) -> dict[str, object]:
    """Fields of one 276-byte header as Python values (floats keep their bits)."""
    header = checks.fixed_bytes(header, "header", HEADER_SIZE)
    record = np.frombuffer(header, dtype=HEADER_DTYPE)[0]
    return {name: (record[name].tobytes() if record[name].ndim else record[name].item())
            for name in HEADER_DTYPE.names}


def encode_header(fields: Mapping[str, object]) -> bytes:
    """The 276-byte encoding of one header given as ``{field: value}``."""
    record = np.zeros(1, dtype=HEADER_DTYPE)
    for name, _offset, size, kind in HEADER_FIELDS:
        value = fields[name]
        if kind == "b32":
            raw = np.frombuffer(bytes(value), dtype=np.uint8)  # type: ignore[arg-type]
            if raw.shape[0] != size:
                raise ValueError(f"header field {name}: expected {size} bytes, got {raw.shape[0]}")
            record[name][0] = raw
        else:
            record[name][0] = value
    return record.tobytes()
