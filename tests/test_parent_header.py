"""A parent given as its 276-byte header (decoded and hashed by the twin itself) gives
the same statuses as the equivalent ``(height, hash, timestamp)`` tuple."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import kernels.jit as jit
import kernels.legacy as legacy
from kernels import constants as C
from kernels.checks import pack_blocks
from parity import strategies as ps
from tests.conftest import public_chain

TWINS = [legacy, jit]


def _shard(arrays, lo: int, hi: int) -> tuple[np.ndarray, ...]:
    """Blocks ``lo..hi`` of the eight ``validate_blocks`` arrays."""
    headers, ids, id_off, nums, num_off, targets, idxs, idx_off = arrays

    def part(values, offsets):
        a, b = offsets[lo], offsets[hi]
        return values[a:b], offsets[lo:hi + 1] - a
    ids_, id_off_ = part(ids, id_off)
    nums_, num_off_ = part(nums, num_off)
    idxs_, idx_off_ = part(idxs, idx_off)
    return headers[lo:hi], ids_, id_off_, nums_, num_off_, targets[lo:hi], idxs_, idx_off_


@pytest.mark.parametrize("twin", TWINS, ids=lambda t: t.NAME)
@pytest.mark.parametrize("size", [1, 7, 257, 300])
def test_public_chain_in_shards_with_header_parents(twin, size, public_vectors):
    """Shard by shard, each parent the previous block's header (as ``bytes`` and as
    ``uint8[276]`` in turn), the first the corpus anchor, replay state carried."""
    c, blocks, anchor = public_chain(public_vectors)
    arrays = pack_blocks(blocks)
    target = bytes.fromhex(c["difficulty_target"])
    replay = twin.new_replay_state()
    parent: object = anchor
    got: list[int] = []
    for k, lo in enumerate(range(0, len(blocks), size)):
        hi = min(lo + size, len(blocks))
        status = twin.validate_blocks(*_shard(arrays, lo, hi), now=c["now"],
                                      difficulty_target=target, parent=parent, replay=replay)
        assert status.dtype == np.uint32 and status.shape == (hi - lo,)
        got += status.tolist()
        last = arrays[0][hi - 1]
        parent = last.tobytes() if k % 2 == 0 else last.copy()
    assert got == [b["expect"]["status"] for b in c["blocks"]]


@pytest.mark.parametrize("twin", TWINS, ids=lambda t: t.NAME)
def test_validate_chain_takes_a_header_parent(twin, public_vectors):
    c, blocks, anchor = public_chain(public_vectors)
    target = bytes.fromhex(c["difficulty_target"])
    seen = twin.new_replay_state()
    got = twin.validate_chain(blocks[:100], c["now"], target, anchor, seen)
    got += twin.validate_chain(blocks[100:], c["now"], target, blocks[99].header, seen)
    assert got == [b["expect"]["status"] for b in c["blocks"]]


@given(ps.header_fields(), ps.chains(max_blocks=5), st.booleans(), ps.hashes())
def test_header_parent_equals_its_tuple(fields, chain, link, difficulty):
    """Any parent header (a child linked to it or not) against (height, hash, timestamp)
    from the reference twin: identical statuses, in both twins."""
    parent = legacy.encode_header(fields)
    as_tuple = (fields["height"], legacy.hash_header(parent), fields["timestamp"])
    blocks, _anchor = chain
    if link:
        child = ps.honest_block(as_tuple, [], ([1, 2], 3, [0, 1]),
                                min(fields["timestamp"] + 1, C.I64_MAX))
        blocks = [child] + blocks
    arrays = pack_blocks(blocks)
    expected = None
    for twin in TWINS:
        for given_parent in (parent, as_tuple, np.frombuffer(parent, np.uint8)):
            got = twin.validate_blocks(*arrays, now=1_800_000_000, difficulty_target=difficulty,
                                       parent=given_parent).tolist()
            expected = got if expected is None else expected
            assert got == expected, (twin.NAME, type(given_parent))
    if link and blocks:
        assert not expected[0] & (C.HEIGHT_NOT_SEQUENTIAL | C.PREV_HASH_MISMATCH
                                  | C.TIMESTAMP_BEFORE_PARENT) or fields["height"] == C.U64_MAX


@pytest.mark.parametrize("twin", TWINS, ids=lambda t: t.NAME)
@pytest.mark.parametrize("parent, exc, match", [
    (b"\0" * 275, ValueError, "parent: expected 276 bytes"),
    (np.zeros((1, 276), np.uint8), ValueError, "parent: expected shape"),
    (np.zeros(276, np.int8), TypeError, "parent"),
    ((1, bytes(32)), ValueError, "parent: expected \\(height, hash, timestamp\\)"),
    ((1.0, bytes(32), 0), TypeError, "parent height"),
    ((-1, bytes(32), 0), ValueError, "parent height"),
    ((C.U64_MAX + 1, bytes(32), 0), ValueError, "parent height"),
    ((0, bytes(31), 0), ValueError, "parent hash"),
    ((0, bytes(32), C.I64_MAX + 1), ValueError, "parent timestamp"),
    ("header", TypeError, "parent"),
])
def test_bad_parents_rejected_alike(twin, parent, exc, match):
    blocks = [ps.honest_block((0, bytes(32), 0), [], ([1], 1, [0]), 5)]
    with pytest.raises(exc, match=match):
        twin.validate_blocks(*pack_blocks(blocks), now=0, difficulty_target=b"\xff" * 32,
                             parent=parent)
