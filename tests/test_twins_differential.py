"""Differential property tests: legacy twin vs JIT twin vs the blake3 package."""
import struct

import blake3
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import kernels.jit as jit
import kernels.legacy as legacy
from kernels import constants as C
from parity import strategies as ps


def _h(data: bytes) -> bytes:
    return blake3.blake3(data).digest()


@given(st.lists(ps.headers(), max_size=40))
def test_header_hashes(headers):
    batch = np.frombuffer(b"".join(headers), np.uint8).reshape(-1, C.HEADER_SIZE)
    expected = [_h(h) for h in headers]
    assert [r.tobytes() for r in legacy.hash_headers(batch)] == expected
    assert [r.tobytes() for r in jit.hash_headers(batch)] == expected
    for h in headers[:3]:
        assert legacy.hash_header(h) == jit.hash_header(h) == _h(h)


@given(ps.header_fields())
def test_header_codec_keeps_every_bit(fields):
    raw = legacy.encode_header(fields)
    assert jit.encode_header(fields) == raw
    for twin in (legacy, jit):
        back = twin.decode_header(raw)
        for name, _off, _size, kind in C.HEADER_FIELDS:
            if kind == "f64":  # compare bits: NaN != NaN, and -0.0 == 0.0
                assert struct.pack("<d", back[name]) == struct.pack("<d", fields[name])
            else:
                assert back[name] == fields[name]


@given(st.lists(ps.headers(), max_size=12))
def test_header_columns_round_trip(headers):
    batch = np.frombuffer(b"".join(headers), np.uint8).reshape(-1, C.HEADER_SIZE)
    for a, b in ((legacy, jit), (jit, legacy)):
        cols = a.decode_headers(batch)
        assert np.array_equal(b.encode_headers(cols), batch)


def _reference_root(txids):
    if not txids:
        return bytes(32)
    level = [_h(t) for t in txids]
    while len(level) > 1:
        nxt = [_h(level[i] + level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(_h(level[-1]))
        level = nxt
    return level[0]


@given(st.lists(ps.txid_lists(), max_size=12))
def test_merkle(lists):
    ids = np.frombuffer(b"".join(t for x in lists for t in x), np.uint8).reshape(-1, 32)
    offsets = np.concatenate([[0], np.cumsum([len(x) for x in lists])]).astype(np.int64)
    expected = [_reference_root(x) for x in lists]
    assert [r.tobytes() for r in legacy.merkle_roots(ids, offsets)] == expected
    assert [r.tobytes() for r in jit.merkle_roots(ids, offsets)] == expected
    for x in lists[:3]:
        assert legacy.merkle_tree(x) == jit.merkle_tree(x)
        assert jit.merkle_root(x) == _reference_root(x)


def test_merkle_large_counts():
    rng = np.random.default_rng(7)
    for n in (1023, 1024, 1025, 4097, 10_001):
        ids = [rng.bytes(32) for _ in range(n)]
        assert legacy.merkle_root(ids) == jit.merkle_root(ids) == _reference_root(ids)


@given(ps.reveals(), ps.hashes())
def test_reveal_functions(reveal, salt):
    numbers, target, indices = reveal
    pb = legacy.problem_bytes(numbers, target)
    sb = legacy.solution_bytes(indices)
    assert jit.problem_bytes(numbers, target) == pb
    assert jit.solution_bytes(indices) == sb
    assert legacy.problem_hash(numbers, target) == jit.problem_hash(numbers, target) == _h(pb)
    assert legacy.solution_hash(indices) == jit.solution_hash(indices) == _h(sb)
    ph, sh = _h(pb), _h(sb)
    assert legacy.commitment(ph, salt, sh) == jit.commitment(ph, salt, sh) == _h(ph + salt + sh)
    assert legacy.solution_ok(numbers, target, indices) == jit.solution_ok(numbers, target, indices)


def test_solution_edges():
    big = C.I64_MAX
    cases = [
        ([big, 1, -1], 0, [0, 1, 2], False),  # MAX + 1 overflows before the -1 comes
        ([big, -1, 1], big, [0, 1, 2], True),
        ([C.I64_MIN, -1], 0, [0, 1], False),
        ([5], 0, [], True),                    # the empty subset sums to 0
        ([], 0, [], False),                    # at least one number
        ([1, 2], 3, [0, 1, 1], False),         # repeated index
        ([1, 2], 1, [0, 2], False),            # index out of range
        ([1, 2], 1, [C.U64_MAX], False),
        ([1] * 4097, 1, [0], False),           # over the numbers limit
        ([0] * 10, 0, list(range(10)) * 410, False),  # duplicates, and over 4096 indices
    ]
    for numbers, target, indices, ok in cases:
        assert legacy.solution_ok(numbers, target, indices) is ok, (numbers[:3], indices[:3])
        assert jit.solution_ok(numbers, target, indices) is ok, (numbers[:3], indices[:3])


def _csr(lists, dtype):
    flat = np.array([v for x in lists for v in x], dtype=dtype)
    offsets = np.concatenate([[0], np.cumsum([len(x) for x in lists])]).astype(np.int64)
    return flat, offsets


@given(st.lists(st.tuples(ps.reveals(), ps.hashes()), max_size=20))
def test_reveal_batches(items):
    nums, noff = _csr([r[0] for r, _ in items], np.int64)
    idxs, ioff = _csr([r[2] for r, _ in items], np.uint64)
    targets = np.array([r[1] for r, _ in items], dtype=np.int64)
    salts = np.frombuffer(b"".join(s for _, s in items), np.uint8).reshape(-1, 32)
    a = legacy.reveal_hashes(nums, noff, targets, idxs, ioff, salts)
    b = jit.reveal_hashes(nums, noff, targets, idxs, ioff, salts)
    for x, y in zip(a, b):
        assert np.array_equal(x, y)
    assert np.array_equal(legacy.check_solutions(nums, noff, targets, idxs, ioff),
                          jit.check_solutions(nums, noff, targets, idxs, ioff))


@given(ps.chains(), ps.i64s(), ps.hashes())
def test_validation(chain, now, difficulty):
    blocks, anchor = chain
    a = legacy.validate_chain(blocks, now, difficulty, anchor)
    assert jit.validate_chain(blocks, now, difficulty, anchor) == a


@given(ps.chains(max_blocks=10), st.integers(1, 9))
def test_validation_split_anywhere(chain, cut):
    """Batches with carried parent and replay state equal one batch, in both twins."""
    blocks, anchor = chain
    cut = min(cut, len(blocks))
    target = b"\x7f" + b"\xff" * 31
    whole = legacy.validate_chain(blocks, 1_800_000_000, target, anchor)
    for twin in (legacy, jit):
        seen = twin.new_replay_state()
        first = twin.validate_chain(blocks[:cut], 1_800_000_000, target, anchor, seen)
        parent = anchor
        if blocks[:cut]:
            h = twin.decode_header(blocks[cut - 1].header)
            parent = (h["height"], twin.hash_header(blocks[cut - 1].header), h["timestamp"])
        rest = twin.validate_chain(blocks[cut:], 1_800_000_000, target, parent, seen)
        assert first + rest == whole
