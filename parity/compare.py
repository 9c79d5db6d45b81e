"""Bit-level comparison of twin outputs and mismatch localization."""
from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from kernels.constants import rule_names


def diff_bytes(a: bytes, b: bytes) -> dict:
    """First differing byte and bit (bit 0 = least significant) and the differing bit count."""
    if len(a) != len(b):
        return {"first_byte": min(len(a), len(b)), "first_bit": 0, "differing_bits": None,
                "length": [len(a), len(b)]}
    x = np.frombuffer(a, np.uint8) ^ np.frombuffer(b, np.uint8)
    nz = np.flatnonzero(x)
    if nz.size == 0:
        return {"first_byte": None, "first_bit": None, "differing_bits": 0}
    first = int(nz[0])
    byte = int(x[first])
    return {"first_byte": first, "first_bit": (byte & -byte).bit_length() - 1,
            "differing_bits": int(np.unpackbits(x).sum())}


def mismatched_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Indices of rows where two equally shaped arrays differ in any bit."""
    if a.shape != b.shape or a.dtype != b.dtype:
        raise ValueError(f"outputs differ in shape or type: {a.dtype}{list(a.shape)} vs "
                         f"{b.dtype}{list(b.shape)}")
    if a.ndim == 1:
        return np.flatnonzero(a != b)
    return np.flatnonzero((a != b).reshape(a.shape[0], -1).any(axis=1))


def status_diff(a: int, b: int) -> dict:
    """Rule bits that differ between two statuses, by name and by which side set them."""
    x = int(a) ^ int(b)
    return {"differing_rules": rule_names(x), "legacy_only": rule_names(int(a) & x),
            "refactored_only": rule_names(int(b) & x),
            **diff_bytes(int(a).to_bytes(4, "little"), int(b).to_bytes(4, "little"))}


def merkle_divergence(tree_a: Sequence[Sequence[bytes]], tree_b: Sequence[Sequence[bytes]]
                      ) -> dict | None:
    """The first (level, index) node, leaves first, where two merkle trees differ."""
    for level, (la, lb) in enumerate(zip(tree_a, tree_b)):
        for index, (x, y) in enumerate(zip(la, lb)):
            if bytes(x) != bytes(y):
                return {"level": level, "index": index}
        if len(la) != len(lb):
            return {"level": level, "index": min(len(la), len(lb))}
    if len(tree_a) != len(tree_b):
        return {"level": min(len(tree_a), len(tree_b)), "index": 0}
    return None


def _bits(x: float) -> bytes:
    return struct.pack("<d", x)


def values_equal(a: Any, b: Any) -> bool:
    """Bit-exact equality: bytes vs uint8 arrays compare by bytes; floats by their bits
    (NaN payloads matter, -0.0 != 0.0); sequences and dicts element by element."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        if isinstance(a, (bytes, bytearray, memoryview)):
            a, b = b, a
        if isinstance(b, (bytes, bytearray, memoryview)):
            arr = np.asarray(a)
            return arr.dtype == np.uint8 and arr.tobytes() == bytes(b)
        if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)):
            return False
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, float) and isinstance(b, float) and _bits(a) == _bits(b)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(values_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(values_equal(a[k], b[k]) for k in a)
    if isinstance(a, (bytes, bytearray, memoryview)) and isinstance(b, (bytes, bytearray, memoryview)):
        return bytes(a) == bytes(b)
    if isinstance(a, (bool, np.bool_)) or isinstance(b, (bool, np.bool_)):
        return isinstance(a, (bool, np.bool_)) and isinstance(b, (bool, np.bool_)) and a == b
    if isinstance(a, (int, np.integer)) and isinstance(b, (int, np.integer)):
        return int(a) == int(b)
    if type(a) is not type(b):
        return False
    try:
        return bool(a == b)
    except Exception:  # a comparison that cannot be made is a difference
        return False


def describe(value: Any) -> Any:
    """A JSON-friendly rendering of an output for mismatch records."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, np.ndarray):
        return value.tobytes().hex() if value.dtype == np.uint8 else value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return {"f64_bits": _bits(value)[::-1].hex()}
    if isinstance(value, BaseException):
        return {"exception": type(value).__name__, "message": str(value)}
    if isinstance(value, (list, tuple)):
        return [describe(v) for v in value]
    return value


Comparator = Callable[[Any, Any], bool]
