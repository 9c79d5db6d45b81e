"""The numba BLAKE3 against the 35 official vectors and the blake3 package."""
import blake3
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kernels.jit import _blake3 as B


def _pattern(n: int) -> bytes:
    return bytes(i % 251 for i in range(n))


def test_all_official_vectors(blake3_vectors):
    cases = blake3_vectors["cases"]
    assert len(cases) == 35
    for case in cases:
        got = B.blake3_digest(_pattern(case["input_len"])).hex()
        assert got == case["hash"][:64], case["input_len"]


def test_official_vectors_in_full_lanes(blake3_vectors):
    """Every length hashed 19 times at once: one full group of 16 lanes and a tail."""
    for case in blake3_vectors["cases"][:28]:
        rows = np.tile(np.frombuffer(_pattern(case["input_len"]), np.uint8), (19, 1))
        out = B.hash_rows(rows)
        assert {r.tobytes().hex() for r in out} == {case["hash"][:64]}


@given(st.lists(st.binary(max_size=2100), max_size=40))
def test_var_lengths_match_package(items):
    """Mixed lengths (grouped by length into lanes) against the blake3 package."""
    lengths = np.array([len(x) for x in items], dtype=np.int64)
    padded = [x + bytes(-len(x) % 4) for x in items]
    starts = np.zeros(len(items), dtype=np.int64)
    if items:
        starts[1:] = np.cumsum([len(p) // 4 for p in padded])[:-1]
    words = np.frombuffer(b"".join(padded), dtype=np.uint32).copy()
    out = np.empty((len(items), 32), dtype=np.uint8)
    B.hash_var_into(words, starts, lengths, out, True)
    assert [r.tobytes() for r in out] == [blake3.blake3(x).digest() for x in items]


@given(st.integers(0, 40), st.integers(0, 300))
def test_equal_rows_match_package(rows, length):
    data = np.random.default_rng(rows * 1000 + length).integers(0, 256, (rows, length), np.uint8)
    out = B.hash_rows(data, parallel=rows % 2 == 0)
    assert [r.tobytes() for r in out] == [blake3.blake3(r.tobytes()).digest() for r in data]


def test_rejects_bad_arrays():
    with pytest.raises(TypeError, match="data"):
        B.hash_rows(np.zeros((2, 3), dtype=np.int32))
    with pytest.raises(ValueError, match="data"):
        B.hash_rows(np.zeros(3, dtype=np.uint8))
