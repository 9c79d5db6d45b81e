"""``commitments``: each block's expected commitment (SPEC section 3), in both twins."""
import struct

import blake3
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kernels.jit as jit
import kernels.legacy as legacy
from kernels import constants as C
from kernels.checks import pack, pack_blocks
from kernels.constants import Block
from parity import strategies as ps

TWINS = [legacy, jit]
COMMIT = slice(C.OFF_COMMITMENT_HASH, C.OFF_COMMITMENT_HASH + C.HASH_SIZE)
SALT = slice(C.OFF_PREV_HASH, C.OFF_PREV_HASH + C.HASH_SIZE)


def _h(data: bytes) -> bytes:
    return blake3.blake3(data).digest()


def _reference(header: bytes, numbers, target, indices) -> bytes:
    """SPEC section 3 straight from ``struct`` and the blake3 package."""
    problem = struct.pack(f"<IQ{len(numbers)}qq", 0, len(numbers), *numbers, target)
    solution = struct.pack(f"<IQ{len(indices)}Q", 0, len(indices), *indices)
    return _h(_h(problem) + header[SALT] + _h(solution))


def _chain(vectors):
    c = vectors["chain"]
    blocks = [Block(bytes.fromhex(b["header"]), [bytes.fromhex(t) for t in b["txids"]],
                    b["numbers"], b["target"], b["indices"]) for b in c["blocks"]]
    return c, blocks


def _reveal_args(arrays):
    headers, _ids, _id_off, nums, num_off, targets, idxs, idx_off = arrays
    return headers, nums, num_off, targets, idxs, idx_off


@pytest.mark.parametrize("twin", TWINS, ids=lambda t: t.NAME)
def test_public_chain_commitments(twin, public_vectors):
    """Equal to the header's commitment_hash exactly where COMMITMENT_MISMATCH is not set
    (a replayed but honest commitment included)."""
    c, blocks = _chain(public_vectors)
    assert len(blocks) == 300
    got = twin.commitments(*_reveal_args(pack_blocks(blocks)))
    assert got.dtype == np.uint8 and got.shape == (300, 32)
    honest = 0
    for row, block, raw in zip(got, blocks, c["blocks"]):
        status = raw["expect"]["status"]
        matches = row.tobytes() == block.header[COMMIT]
        assert matches == (not status & C.COMMITMENT_MISMATCH), status
        if not status & (C.COMMITMENT_MISMATCH | C.COMMITMENT_REPLAY):
            assert matches
        honest += matches
    assert honest == sum(not b["expect"]["status"] & C.COMMITMENT_MISMATCH for b in c["blocks"])


def test_public_chain_twins_agree(public_vectors):
    c, blocks = _chain(public_vectors)
    args = _reveal_args(pack_blocks(blocks))
    a, b = legacy.commitments(*args), jit.commitments(*args)
    assert np.array_equal(a, b)
    assert np.array_equal(jit.commitments(*args, parallel=False), a)
    for row, block, raw in zip(a, blocks, c["blocks"]):  # from the vectors' own encodings
        e = raw["expect"]
        expected = _h(_h(bytes.fromhex(e["problem_bytes"])) + block.header[SALT]
                      + _h(bytes.fromhex(e["solution_bytes"])))
        assert row.tobytes() == expected


def _long(draw, n: int, values) -> list[int]:
    """A list of ``n`` items: a few drawn, the rest a cheap fill."""
    head = draw(st.lists(values, max_size=3))
    return (head + [7] * n)[:n]


@st.composite
def _reveals(draw):
    """Reveals of every shape: empty, odd and even lengths, and over 4096 items (whose
    hashes SPEC section 4 still computes)."""
    kind = draw(st.sampled_from(("drawn", "empty", "long_numbers", "long_indices", "both")))
    if kind == "drawn":
        return draw(ps.reveals())
    if kind == "empty":
        return [], draw(ps.i64s()), []
    over = st.integers(C.MAX_REVEAL_ITEMS - 1, C.MAX_REVEAL_ITEMS + 40)
    numbers = _long(draw, draw(over), ps.i64s()) if kind != "long_indices" else [1, 2, 3]
    indices = _long(draw, draw(over), ps.u64s()) if kind != "long_numbers" else [0]
    return numbers, draw(ps.i64s()), indices


def _arrays(headers, reveals):
    hdr = np.frombuffer(b"".join(headers), np.uint8).reshape(-1, C.HEADER_SIZE).copy()
    nums, num_off = pack([r[0] for r in reveals], np.int64, "numbers")
    idxs, idx_off = pack([r[2] for r in reveals], np.uint64, "indices")
    targets = np.array([r[1] for r in reveals], dtype=np.int64)
    return hdr, nums, num_off, targets, idxs, idx_off


def _check_all(headers, reveals):
    args = _arrays(headers, reveals)
    expected = [_reference(h, *r) for h, r in zip(headers, reveals)]
    for got in (legacy.commitments(*args), jit.commitments(*args),
                jit.commitments(*args, parallel=False)):
        assert [row.tobytes() for row in got] == expected


@given(st.lists(st.tuples(ps.headers(), _reveals()), max_size=12))
def test_small_batches_match_reference(rows):
    _check_all([h for h, _ in rows], [r for _, r in rows])


@settings(max_examples=25)
@given(st.integers(64, 300), st.integers(0, 2**32 - 1),
       st.lists(st.tuples(st.integers(0, 299), ps.headers(), _reveals()), max_size=6))
def test_large_batches_match_reference(n, seed, specials):
    """64-300 rows (the parallel paths): random reveals of mixed lengths, some rows drawn."""
    rng = np.random.default_rng(seed)
    headers = [rng.bytes(C.HEADER_SIZE) for _ in range(n)]
    reveals = []
    for _ in range(n):
        k = int(rng.integers(0, 30))
        numbers = rng.integers(-2**63, 2**63 - 1, k, dtype=np.int64, endpoint=True).tolist()
        indices = rng.integers(0, 2**64 - 1, int(rng.integers(0, 12)), dtype=np.uint64,
                               endpoint=True).tolist()
        reveals.append((numbers, int(rng.integers(-2**63, 2**63 - 1, dtype=np.int64)), indices))
    for pos, header, reveal in specials:
        headers[pos % n], reveals[pos % n] = header, reveal
    _check_all(headers, reveals)


@pytest.mark.parametrize("twin", TWINS, ids=lambda t: t.NAME)
def test_empty_batch(twin):
    got = twin.commitments(*_arrays([], []))
    assert got.shape == (0, 32) and got.dtype == np.uint8


@pytest.mark.parametrize("twin", TWINS, ids=lambda t: t.NAME)
def test_inputs_checked(twin):
    hdr, nums, num_off, targets, idxs, idx_off = _arrays([bytes(276)] * 2, [([1], 1, [0])] * 2)
    with pytest.raises(ValueError, match="targets"):
        twin.commitments(hdr, nums, num_off, targets[:1], idxs, idx_off)
    with pytest.raises(ValueError, match="num_offsets"):
        twin.commitments(hdr[:1], nums, num_off, targets[:1], idxs, idx_off)
    with pytest.raises(TypeError, match="headers"):
        twin.commitments(hdr.astype(np.int16), nums, num_off, targets, idxs, idx_off)
