"""Both twins against every entry of the public conformance vectors."""
import numpy as np
import pytest

import kernels.jit as jit
import kernels.legacy as legacy
from tests.conftest import public_chain

TWINS = [legacy, jit]


@pytest.mark.parametrize("twin", TWINS, ids=lambda t: t.NAME)
def test_header_hashes(twin, public_vectors):
    headers = public_vectors["headers"]
    assert len(headers) == 400
    batch = np.stack([np.frombuffer(bytes.fromhex(h["header"]), np.uint8) for h in headers])
    got = twin.hash_headers(batch)
    assert [g.tobytes().hex() for g in got] == [h["hash"] for h in headers]
    for h in headers[:50]:
        raw = bytes.fromhex(h["header"])
        assert twin.hash_header(raw).hex() == h["hash"]
        assert twin.encode_header(twin.decode_header(raw)) == raw


@pytest.mark.parametrize("twin", TWINS, ids=lambda t: t.NAME)
def test_merkle_roots(twin, public_vectors):
    cases = public_vectors["merkle"]
    assert len(cases) == 82
    ids = [bytes.fromhex(t) for c in cases for t in c["txids"]]
    flat = np.frombuffer(b"".join(ids), np.uint8).reshape(-1, 32)
    offsets = np.concatenate([[0], np.cumsum([c["n"] for c in cases])]).astype(np.int64)
    got = twin.merkle_roots(flat, offsets)
    assert [g.tobytes().hex() for g in got] == [c["root"] for c in cases]
    for c in cases[:20]:
        assert twin.merkle_root([bytes.fromhex(t) for t in c["txids"]]).hex() == c["root"]


@pytest.mark.parametrize("twin", TWINS, ids=lambda t: t.NAME)
def test_chain_statuses(twin, public_vectors):
    c, blocks, anchor = public_chain(public_vectors)
    assert len(blocks) == 300
    got = twin.validate_chain(blocks, c["now"], bytes.fromhex(c["difficulty_target"]), anchor)
    assert got == [b["expect"]["status"] for b in c["blocks"]]
    rules_broken = 0
    for s in got:
        rules_broken |= s
    assert rules_broken == (1 << 18) - 1  # the chain breaks every rule somewhere


@pytest.mark.parametrize("twin", TWINS, ids=lambda t: t.NAME)
def test_chain_per_block_outputs(twin, public_vectors):
    c, blocks, _ = public_chain(public_vectors)
    for b, raw in zip(blocks, c["blocks"]):
        e = raw["expect"]
        assert twin.hash_header(b.header).hex() == e["header_hash"]
        assert twin.merkle_root(b.txids).hex() == e["tx_root"]
        assert twin.problem_bytes(b.numbers, b.target).hex() == e["problem_bytes"]
        assert twin.solution_bytes(b.indices).hex() == e["solution_bytes"]


@pytest.mark.parametrize("twin", TWINS, ids=lambda t: t.NAME)
def test_chain_split_into_batches(twin, public_vectors):
    """Parent and replay state carried across batch boundaries give the same answer."""
    c, blocks, parent = public_chain(public_vectors)
    target = bytes.fromhex(c["difficulty_target"])
    seen = twin.new_replay_state()
    got = []
    for lo, hi in ((0, 1), (1, 128), (128, 129), (129, 300)):
        got += twin.validate_chain(blocks[lo:hi], c["now"], target, parent, seen)
        last = twin.decode_header(blocks[hi - 1].header)
        parent = (last["height"], twin.hash_header(blocks[hi - 1].header), last["timestamp"])
    assert got == [b["expect"]["status"] for b in c["blocks"]]
