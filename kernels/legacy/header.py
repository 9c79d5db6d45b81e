"""Block header: bincode encode/decode (SPEC section 1) and its BLAKE3 hash."""
from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any

import numpy as np
from blake3 import blake3

from kernels import checks
from kernels.constants import HASH_SIZE, HEADER_FIELDS, HEADER_SIZE

__all__ = ["decode_header", "decode_headers", "encode_header", "encode_headers", "hash_header",
           "hash_headers"]

_STRUCT = {"u32": "<I", "u64": "<Q", "i64": "<q", "f64": "<d"}
_NUMPY = {"u32": np.uint32, "u64": np.uint64, "i64": np.int64, "f64": np.float64}


def encode_header(fields: Mapping[str, Any]) -> bytes:
    """The 276-byte bincode encoding of a header given as ``{field: value}``."""
    out = bytearray()
    for name, _offset, size, kind in HEADER_FIELDS:
        value = fields[name]
        if kind == "b32":
            raw = bytes(value)
            if len(raw) != size:
                raise ValueError(f"header field {name}: expected {size} bytes, got {len(raw)}")
            out += raw
        else:
            out += struct.pack(_STRUCT[kind], value)
    return bytes(out)


def decode_header(header: bytes) -> dict[str, Any]:
    """Fields of a 276-byte header; floats keep their exact bits (NaN payloads too)."""
    header = checks.fixed_bytes(header, "header", HEADER_SIZE)
    fields: dict[str, object] = {}
    for name, offset, size, kind in HEADER_FIELDS:
        raw = header[offset:offset + size]
        fields[name] = bytes(raw) if kind == "b32" else struct.unpack(_STRUCT[kind], raw)[0]
    return fields


def hash_header(header: bytes) -> bytes:
    """Header hash = BLAKE3 of the 276 header bytes (the block id)."""
    return blake3(checks.fixed_bytes(header, "header", HEADER_SIZE)).digest()


def hash_headers(headers: np.ndarray) -> np.ndarray:
    """Batch form: ``uint8[N, 276]`` -> ``uint8[N, 32]``, one header at a time."""
    headers = checks.headers(headers)
    out = np.zeros((headers.shape[0], HASH_SIZE), dtype=np.uint8)
    for i in range(headers.shape[0]):
        out[i] = np.frombuffer(hash_header(headers[i].tobytes()), dtype=np.uint8)
    return out


def encode_headers(fields: Mapping[str, np.ndarray]) -> np.ndarray:
    """Batch form: columns ``{field: array[N] or uint8[N, 32]}`` -> ``uint8[N, 276]``."""
    n = len(fields[HEADER_FIELDS[0][0]])
    out = np.zeros((n, HEADER_SIZE), dtype=np.uint8)
    for i in range(n):
        row = {}
        for name, _offset, _size, kind in HEADER_FIELDS:
            value = fields[name][i]
            row[name] = value.tobytes() if kind == "b32" else value.item()
        out[i] = np.frombuffer(encode_header(row), dtype=np.uint8)
    return out


def decode_headers(headers: np.ndarray) -> dict[str, np.ndarray]:
    """Batch form: ``uint8[N, 276]`` -> columns ``{field: array[N] or uint8[N, 32]}``."""
    headers = checks.headers(headers)
    n = headers.shape[0]
    cols: dict[str, np.ndarray] = {}
    for name, _offset, size, kind in HEADER_FIELDS:
        if kind == "b32":
            cols[name] = np.zeros((n, size), dtype=np.uint8)
        else:
            cols[name] = np.zeros(n, dtype=_NUMPY[kind])
    for i in range(n):
        row = decode_header(headers[i].tobytes())
        for name, _offset, _size, kind in HEADER_FIELDS:
            if kind == "b32":
                cols[name][i] = np.frombuffer(row[name], dtype=np.uint8)
            elif kind == "f64":
                cols[name][i:i + 1] = np.frombuffer(struct.pack("<d", row[name]), dtype=np.float64)
            else:
                cols[name][i] = row[name]
    return cols
