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
    diff = a != b
    if diff.ndim > 1:
        diff = diff.any(axis=tuple(range(1, diff.ndim)))
    return np.flatnonzero(diff)


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


PLAIN = frozenset({bytes, str, int, bool, type(None)})  #: types whose == is bit equality


def values_equal(a: Any, b: Any) -> bool:
    """SPEC section 5: the same type and the same bits. Arrays need the same dtype and
    shape; floats (Python and numpy) compare by their IEEE bits, so NaN payloads count and
    -0.0 != 0.0; ``b''`` and ``bytearray()``, a list and a tuple, ``np.uint32(5)`` and
    ``5`` all differ. Sequences and dicts compare element by element."""
    t = type(a)
    if t is not type(b):
        return False
    if t in PLAIN:  # the common cases first: equality is bit equality for these
        return bool(a == b)
    if isinstance(a, np.ndarray):
        if a.dtype != b.dtype or a.shape != b.shape:
            return False
        if a.dtype.hasobject:
            return all(values_equal(x, y) for x, y in zip(a.ravel(), b.ravel()))
        return bool(np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes())
    if isinstance(a, np.generic):
        return a.tobytes() == b.tobytes()
    if isinstance(a, float):
        return _bits(a) == _bits(b)
    if isinstance(a, complex):
        return _bits(a.real) == _bits(b.real) and _bits(a.imag) == _bits(b.imag)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(values_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(values_equal(a[k], b[k]) for k in a)
    if isinstance(a, memoryview):
        return a.format == b.format and a.shape == b.shape and a.tobytes() == b.tobytes()
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
