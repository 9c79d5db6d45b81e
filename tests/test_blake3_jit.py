"""The numba BLAKE3 against the 35 official vectors and the blake3 package."""
import blake3
import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from kernels.jit import _blake3 as B
from tests.profiles import examples

#: lengths around every chunk edge up to 9 chunks (a chunk tree of 4 levels)
EDGES = tuple(k * B.CHUNK_LEN + d for k in range(10) for d in (-1, 0, 1) if k * B.CHUNK_LEN + d > 0)
LENGTHS = st.one_of(st.sampled_from(EDGES), st.integers(B.CHUNK_LEN + 1, 9 * B.CHUNK_LEN + 77),
                    st.integers(0, 300))


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


def _hash_var(items, parallel=True):
    lengths = np.array([len(x) for x in items], dtype=np.int64)
    padded = [x + bytes(-len(x) % 4) for x in items]
    starts = np.zeros(len(items), dtype=np.int64)
    if items:
        starts[1:] = np.cumsum([len(p) // 4 for p in padded])[:-1]
    words = np.frombuffer(b"".join(padded), dtype=np.uint32).copy()
    out = np.empty((len(items), 32), dtype=np.uint8)
    B.hash_var_into(words, starts, lengths, out, parallel)
    return [r.tobytes() for r in out]


@settings(max_examples=examples(60))
@given(st.lists(st.binary(max_size=2100), max_size=40))
def test_var_lengths_match_package(items):
    """Mixed lengths (grouped by length into lanes) against the blake3 package."""
    assert _hash_var(items) == [blake3.blake3(x).digest() for x in items]


@settings(max_examples=examples(25))
@given(st.integers(B.PARALLEL_MIN_ROWS, 300), st.integers(0, 2**32 - 1),
       st.lists(LENGTHS, min_size=1, max_size=6),
       st.lists(st.tuples(st.integers(0, 299), st.binary(max_size=1100)), max_size=4))
def test_var_lengths_parallel_match_package(n, seed, lengths, drawn):
    """64-300 inputs (the parallel path, ``_var_parallel``) of lengths up to 9 KiB: runs of
    equal length fill lanes and tails, long ones hash through several chunk-tree levels."""
    rng = np.random.default_rng(seed)
    items = [rng.bytes(lengths[i % len(lengths)]) for i in range(n)]
    for pos, data in drawn:
        items[pos % n] = data
    event(f"longest input: {(max(map(len, items)) + B.CHUNK_LEN - 1) // B.CHUNK_LEN} chunk(s)")
    expected = [blake3.blake3(x).digest() for x in items]
    assert _hash_var(items, parallel=True) == expected
    assert _hash_var(items, parallel=False) == expected


@settings(max_examples=examples(40))
@given(st.one_of(st.integers(0, 40), st.integers(B.PARALLEL_MIN_ROWS, 300)), LENGTHS)
def test_equal_rows_match_package(rows, length):
    """Rows of one length; 64 or more rows take ``_hash_parallel``."""
    data = np.random.default_rng(rows * 100_000 + length).integers(0, 256, (rows, length),
                                                                    np.uint8)
    expected = [blake3.blake3(r.tobytes()).digest() for r in data]
    for parallel in (True, False):
        assert [r.tobytes() for r in B.hash_rows(data, parallel=parallel)] == expected


def test_rejects_bad_arrays():
    with pytest.raises(TypeError, match="data"):
        B.hash_rows(np.zeros((2, 3), dtype=np.int32))
    with pytest.raises(ValueError, match="data"):
        B.hash_rows(np.zeros(3, dtype=np.uint8))
