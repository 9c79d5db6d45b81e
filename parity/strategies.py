"""Hypothesis strategies for COINjecture v1 data: headers, id lists, reveals, chains.

Use them to property-test your own twin against ours, e.g.::

    from hypothesis import given
    from parity import strategies as st_parity

    @given(st_parity.headers())
    def test_my_hash(header):
        assert my_twin.hash_header(header) == kernels.legacy.hash_header(header)

Floats are drawn as raw IEEE-754 bits (:func:`f64_bits`) so NaN payloads,
-0.0, infinities and subnormals all occur; integers hit their extremes.
"""
from __future__ import annotations

import struct

try:
    from hypothesis import strategies as st
except ImportError:  # a runtime install need not carry test tools
    raise ImportError("parity.strategies needs hypothesis: pip install 'parity[testing]'") \
        from None

from kernels import constants as C
from kernels.constants import Block
from kernels.legacy import (
    commitment,
    decode_header,
    encode_header,
    hash_header,
    merkle_root,
    problem_hash,
    solution_hash,
)

EDGE_F64_BITS = (
    0x0000000000000000, 0x8000000000000000,  # +0.0, -0.0
    0x7FF0000000000000, 0xFFF0000000000000,  # +inf, -inf
    0x7FF8000000000000, 0xFFF8000000000000,  # quiet NaN, negative quiet NaN
    0x7FF0000000000001, 0x7FF4000000000000,  # signalling NaNs
    0x7FFFFFFFFFFFFFFF, 0xFFF0000000DEAD01,  # NaN payloads
    0x0000000000000001, 0x800FFFFFFFFFFFFF,  # subnormals
    0x0010000000000000, 0x7FEFFFFFFFFFFFFF,  # smallest normal, largest finite
    0x3FF0000000000000, 0x3FF0000000000001,  # 1.0 and the next double
    0x3FEFFFFFFFFFFFFF, 0xBFF0000000000000,  # just below 1.0, -1.0
)


def f64_bits() -> st.SearchStrategy[int]:
    """64-bit patterns of doubles, edge values favoured."""
    finite = st.floats(allow_nan=False).map(lambda x: struct.unpack("<Q", struct.pack("<d", x))[0])
    return st.one_of(st.sampled_from(EDGE_F64_BITS), st.integers(0, C.U64_MAX), finite)


def f64_values() -> st.SearchStrategy[float]:
    """Python floats carrying every bit pattern of :func:`f64_bits`."""
    return f64_bits().map(lambda b: struct.unpack("<d", struct.pack("<Q", b))[0])


def u64s() -> st.SearchStrategy[int]:
    return st.one_of(st.sampled_from((0, 1, 2, C.U64_MAX - 1, C.U64_MAX, 1 << 63)),
                     st.integers(0, C.U64_MAX))


def i64s() -> st.SearchStrategy[int]:
    edges = (0, -1, 1, C.I64_MIN, C.I64_MIN + 1, C.I64_MAX - 1, C.I64_MAX)
    return st.one_of(st.sampled_from(edges), st.integers(C.I64_MIN, C.I64_MAX))


def hashes() -> st.SearchStrategy[bytes]:
    return st.one_of(st.binary(min_size=32, max_size=32),
                     st.sampled_from((bytes(32), b"\xff" * 32)))


def header_fields() -> st.SearchStrategy[dict]:
    """Header fields with edge values in every position."""
    u32 = st.one_of(st.sampled_from((0, 1, 2, 3, 0xFFFFFFFF)), st.integers(0, 2**32 - 1))
    kinds = {"u32": u32, "u64": u64s(), "i64": i64s(), "f64": f64_values(), "b32": hashes()}
    return st.fixed_dictionaries({name: kinds[kind] for name, _o, _s, kind in C.HEADER_FIELDS})


def headers() -> st.SearchStrategy[bytes]:
    """276-byte encoded headers."""
    return header_fields().map(encode_header)


def txid_lists(max_size: int = 70) -> st.SearchStrategy[list[bytes]]:
    """Lists of 32-byte ids: empty, one, even, odd and (up to max_size) large."""
    return st.one_of(st.lists(hashes(), max_size=5),
                     st.lists(st.binary(min_size=32, max_size=32), min_size=6, max_size=max_size))


def reveals(max_numbers: int = 24) -> st.SearchStrategy[tuple[list[int], int, list[int]]]:
    """(numbers, target, indices): often correct, often not (duplicates, out-of-range
    indices, i64 overflow, empty lists)."""
    @st.composite
    def build(draw: st.DrawFn) -> tuple[list[int], int, list[int]]:
        small = draw(st.booleans())
        value = st.integers(-1000, 1000) if small else i64s()
        numbers = draw(st.lists(value, min_size=0, max_size=max_numbers))
        pick = draw(st.booleans())
        if numbers and pick:
            chosen = draw(st.lists(st.integers(0, len(numbers) - 1), unique=True))
            total = sum(numbers[i] for i in chosen)
            target = total if C.I64_MIN <= total <= C.I64_MAX else draw(i64s())
            indices = list(chosen)
            if draw(st.booleans()):
                indices = indices + draw(st.lists(st.sampled_from(indices or [0]), max_size=2))
        else:
            target = draw(i64s())
            index = st.one_of(st.integers(0, max_numbers + 2), u64s())
            indices = draw(st.lists(index, max_size=8))
        return numbers, target, indices
    return build()


def honest_block(parent: C.Parent, txids: list[bytes], reveal: tuple[list[int], int, list[int]],
                 timestamp: int, version: int = 1) -> Block:
    """A block that links to ``parent`` and commits to its own ids and reveal."""
    numbers, target, indices = reveal
    p_height, p_hash, _p_ts = parent
    ph = problem_hash(numbers, target)
    fields = {
        "version": version, "height": (p_height + 1) & C.U64_MAX, "prev_hash": p_hash,
        "timestamp": timestamp, "transactions_root": merkle_root(txids),
        "solutions_root": bytes(32),
        "commitment_hash": commitment(ph, p_hash, solution_hash(indices)),
        "commitment_problem_hash": ph, "work_score": 1.0, "miner": b"\x11" * 32, "nonce": 0,
        "solve_time_us": 10, "verify_time_us": 1, "time_asymmetry_ratio": 10.0,
        "solution_quality": 1.0, "complexity_weight": 0.5, "energy_estimate_joules": 0.25,
    }
    return Block(encode_header(fields), txids, numbers, target, indices)


@st.composite
def chains(draw: st.DrawFn, max_blocks: int = 8) -> tuple[list[Block], C.Parent | None]:
    """(blocks, anchor): a mostly honest chain whose blocks are then perturbed field by
    field (so every rule of SPEC section 4 gets broken somewhere), including replays."""
    anchor = draw(st.one_of(st.none(), st.tuples(u64s(), hashes(), i64s())))
    parent = anchor or (0, bytes(32), 1_700_000_000)
    blocks: list[Block] = []
    for _ in range(draw(st.integers(0, max_blocks))):
        block = honest_block(parent, draw(txid_lists(20)), draw(reveals()),
                             draw(st.one_of(st.integers(parent[2], min(parent[2] + 600, C.I64_MAX)),
                                            i64s())))
        if draw(st.integers(0, 3)) == 0:  # perturb one header field
            fields = draw(header_fields())
            name = draw(st.sampled_from(C.FIELD_NAMES))
            changed = dict(decode_header(block.header), **{name: fields[name]})
            block = block._replace(header=encode_header(changed))
        if blocks and draw(st.integers(0, 7)) == 0:  # replay an earlier commitment
            earlier = decode_header(draw(st.sampled_from(blocks)).header)["commitment_hash"]
            block = block._replace(header=encode_header(
                dict(decode_header(block.header), commitment_hash=earlier)))
        blocks.append(block)
        h = decode_header(block.header)
        parent = (h["height"], hash_header(block.header), h["timestamp"])
    return blocks, anchor

