"""Hypothesis strategies for COINjecture v1 data: headers, id lists, reveals, chains.

Use them to property-test your own twin against ours, e.g.::

    from hypothesis import given
    from parity import strategies as st_parity

    @given(st_parity.headers())
    def test_my_hash(header):
        assert my_twin.hash_header(header) == kernels.legacy.hash_header(header)

Floats are drawn as raw IEEE-754 bits (:func:`f64_bits`) so NaN payloads,
-0.0, infinities and subnormals all occur; integers hit their extremes.

:func:`chains` builds mostly valid chains for :data:`CHAIN_NOW` and :data:`CHAIN_TARGET`
and breaks rules on purpose now and then; every rule of SPEC section 4 is reachable::

    @given(st_parity.chains())
    def test_my_validation(chain):
        blocks, anchor = chain
        assert my_twin.validate_chain(blocks, st_parity.CHAIN_NOW, st_parity.CHAIN_TARGET,
                                      anchor) == kernels.legacy.validate_chain(
            blocks, st_parity.CHAIN_NOW, st_parity.CHAIN_TARGET, anchor)
"""
from __future__ import annotations

import random
import struct
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

try:
    from hypothesis import event
    from hypothesis import strategies as st
    from hypothesis.errors import InvalidArgument
except ImportError:  # a runtime install need not carry test tools
    raise ImportError("parity.strategies needs hypothesis: pip install 'parity[testing]'") \
        from None

from kernels import constants as C
from kernels.constants import Block
from kernels.legacy import (
    commitment,
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


#: ``now`` and difficulty target :func:`chains` builds its blocks for by default: validate
#: its chains with these and most blocks are valid
CHAIN_NOW = 1_800_000_000
CHAIN_TARGET = b"\x7f" + b"\xff" * 31
_CHAIN_START = 1_700_000_000
_GRIND = 256  #: nonces tried to meet (or miss) the target

#: rules a chain block may break; TOO_MANY_TRANSACTIONS (10,001+ ids) is kept rare
_BREAKABLE = tuple(n for n in C.RULE_NAMES if n != "TOO_MANY_TRANSACTIONS")
_TIME_RULES = frozenset(("TIMESTAMP_NEGATIVE", "TIMESTAMP_FUTURE", "TIMESTAMP_BEFORE_PARENT"))


def _event(value: str) -> None:
    """``hypothesis.event`` inside a test; a no-op elsewhere (e.g. ``.example()``)."""
    try:
        event(value)
    except InvalidArgument:
        pass


def _f64(bits: int) -> float:
    return float(struct.unpack("<d", struct.pack("<Q", bits))[0])


_FILLERS = (bytes(32), b"\x11" * 32, b"\xff" * 32)
_NAN, _INF = float("nan"), float("inf")
_NONNEG_EDGES = (0.0, -0.0, 5e-324, 1.0, 2.5, 1.7976931348623157e308)
_BAD_NONNEG = (_NAN, _INF, -_INF, -5e-324, -1.0, _f64(0xFFF0000000DEAD01), _f64(0x7FF0000000000001))


def _valid_float(low: float, high: float | None) -> st.SearchStrategy[float]:
    edges = [x for x in _NONNEG_EDGES if x >= low and (high is None or x <= high)]
    return st.one_of(st.sampled_from(edges), st.floats(low, high if high is not None else 1e300))


def valid_reveals(max_numbers: int = 24) -> st.SearchStrategy[tuple[list[int], int, list[int]]]:
    """(numbers, target, indices) that solve: distinct in-range indices whose running sum
    stays within i64 and equals ``target`` (the empty subset, summing to 0, included)."""
    @st.composite
    def build(draw: st.DrawFn) -> tuple[list[int], int, list[int]]:
        value = st.integers(-1000, 1000) if draw(st.integers(0, 3)) else i64s()
        numbers = draw(st.lists(value, min_size=1, max_size=max_numbers))
        indices = draw(st.lists(st.integers(0, len(numbers) - 1), unique=True))
        total = 0
        for i in indices:
            total += numbers[i]
            if not C.I64_MIN <= total <= C.I64_MAX:  # overflow: the empty subset instead
                return numbers, 0, []
        return numbers, total, indices
    return build()


@st.composite
def _chain_txids(draw: st.DrawFn) -> list[bytes]:
    """A block's ids: a few drawn ones, or (cheap for hypothesis' buffer) 6-70 from a seed."""
    if draw(st.integers(0, 3)):
        return draw(st.lists(hashes(), max_size=5))
    n, seed = draw(st.integers(6, 70)), draw(st.integers(0, 2**32 - 1))
    data = random.Random(seed).randbytes(32 * n)
    return [data[i:i + 32] for i in range(0, len(data), 32)]


def _rule_set(draw: st.DrawFn, break_rate: int) -> list[str]:
    """0 rules most of the time, else 1 or 2 distinct ones (TOO_MANY_TRANSACTIONS rarely)."""
    k = draw(st.integers(0, 99))
    count = 0 if k >= break_rate else (2 if k < break_rate // 3 else 1)
    rules: list[str] = []
    while len(rules) < count:
        name = draw(st.sampled_from(_BREAKABLE))
        if draw(st.integers(0, 19)) == 0:
            name = "TOO_MANY_TRANSACTIONS"
        if name not in rules:
            rules.append(name)
    return rules


@lru_cache(maxsize=16)
def _repeated_ids(pool: tuple[bytes, ...], n: int) -> tuple[tuple[bytes, ...], bytes]:
    """``n`` ids cycling through ``pool`` and their merkle root (computed once)."""
    ids = tuple(pool[i % len(pool)] for i in range(n))
    return ids, merkle_root(ids)


def _other(draw: st.DrawFn, value: bytes) -> bytes:
    """A 32-byte value other than ``value``: one bit flipped, or a drawn hash."""
    if draw(st.booleans()):
        i = draw(st.integers(0, 255))
        return value[:i // 8] + bytes([value[i // 8] ^ (1 << (i % 8))]) + value[i // 8 + 1:]
    other = draw(hashes())
    return other if other != value else bytes(a ^ 0xFF for a in value)


def _break_solution(draw: st.DrawFn, numbers: list[int], target: int, indices: list[int]
                    ) -> tuple[list[int], int, list[int]]:
    how = draw(st.sampled_from(("target", "repeat", "range", "empty", "too_many")))
    if how == "repeat" and indices:
        return numbers, target, indices + [draw(st.sampled_from(indices))]
    if how == "range":
        bad = draw(st.one_of(st.integers(len(numbers), len(numbers) + 3),
                             st.just(C.U64_MAX), st.just(1 << 63)))
        return numbers, target, indices + [bad]
    if how == "empty":
        return [], target, []
    if how == "too_many":  # more indices than SPEC allows, all distinct and in range
        many = list(range(C.MAX_REVEAL_ITEMS + 1))
        return [0] * len(many), 0, many
    return numbers, target + 1 if target < C.I64_MAX else target - 1, indices


def chains(max_blocks: int = 8, *, min_blocks: int = 0, now: int = CHAIN_NOW,
           difficulty_target: bytes = CHAIN_TARGET, break_rate: int = 30
           ) -> st.SearchStrategy[tuple[list[Block], C.Parent | None]]:
    """(blocks, anchor): :func:`labelled_chains` without the labels."""
    return labelled_chains(max_blocks, min_blocks=min_blocks, now=now,
                           difficulty_target=difficulty_target,
                           break_rate=break_rate).map(lambda c: (c[0], c[1]))


@st.composite
def labelled_chains(draw: st.DrawFn, max_blocks: int = 8, *, min_blocks: int = 0,
                    now: int = CHAIN_NOW, difficulty_target: bytes = CHAIN_TARGET,
                    break_rate: int = 30
                    ) -> tuple[list[Block], C.Parent | None, list[list[str]]]:
    """(blocks, anchor, broken): a chain built honestly for ``now`` and ``difficulty_target``
    (each block links to its parent, commits to its ids and a solving reveal, and its nonce
    is ground until the header hash meets the target), in which about ``break_rate`` % of
    the blocks then break one or two rules of SPEC section 4 on purpose. Every rule is
    reachable, TOO_MANY_TRANSACTIONS (10,001+ ids, repeated) rarely; each rule broken is
    recorded with ``hypothesis.event`` ("broke RULE"). The anchor is None, an ordinary
    parent, or now and then one with extreme height and timestamp; now and then one header
    field is also overwritten with an edge value (event "perturbed FIELD").

    ``broken[i]`` names the rules block ``i`` breaks on purpose, each of which its status
    has (a block may break more: a child of a block with a future timestamp, an edge
    value, or an anchor at the extremes). ``chains`` is this without ``broken``."""
    kind = draw(st.integers(0, 9))
    anchor: C.Parent | None
    if kind < 3:
        anchor = None
    elif kind < 9:
        anchor = (draw(st.integers(0, 10**9)), draw(hashes()),
                  draw(st.integers(_CHAIN_START - 10**6, _CHAIN_START)))
    else:
        anchor = draw(st.tuples(u64s(), hashes(), i64s()))
    parent = anchor or (0, bytes(32), _CHAIN_START)
    commits: list[bytes] = []
    blocks: list[Block] = []
    broken: list[list[str]] = []
    for position in range(draw(st.integers(min_blocks, max(min_blocks, max_blocks)))):
        linked = position > 0 or anchor is not None  # the rules that need a parent apply
        p_height, p_hash, p_ts = parent
        rules = _rule_set(draw, break_rate)
        base = min(max(p_ts, 0), C.I64_MAX - 600)
        txids: Sequence[bytes] = draw(_chain_txids())
        known_root: bytes | None = None
        numbers, target, indices = draw(valid_reveals())
        fields: dict[str, Any] = {
            "version": draw(st.sampled_from(C.SUPPORTED_VERSIONS)),
            "height": (p_height + 1) & C.U64_MAX, "prev_hash": p_hash,
            "timestamp": base + draw(st.integers(0, 600)),
            "solutions_root": draw(st.sampled_from(_FILLERS)), "work_score": draw(_valid_float(0.0, None)),
            "miner": draw(st.sampled_from(_FILLERS)), "nonce": draw(u64s()), "solve_time_us": draw(u64s()),
            "verify_time_us": draw(u64s()),
            "time_asymmetry_ratio": draw(st.floats(allow_nan=False, allow_infinity=False)),
            "solution_quality": draw(_valid_float(0.0, 1.0)),
            "complexity_weight": draw(_valid_float(0.0, None)),
            "energy_estimate_joules": draw(_valid_float(0.0, None)),
        }
        applied: list[str] = []
        for rule in rules:
            done = True
            if rule in _TIME_RULES and _TIME_RULES.intersection(applied):
                done = False  # one timestamp per block
            elif rule == "VERSION_UNSUPPORTED":
                fields["version"] = draw(st.one_of(st.sampled_from((0, 3, 0xFFFFFFFF)),
                                                   st.integers(3, 0xFFFFFFFF)))
            elif rule == "TIMESTAMP_NEGATIVE":
                fields["timestamp"] = draw(st.one_of(st.just(-1), st.just(C.I64_MIN),
                                                     st.integers(C.I64_MIN, -1)))
            elif rule == "TIMESTAMP_FUTURE":
                fields["timestamp"] = draw(st.one_of(
                    st.just(now + C.FUTURE_DRIFT_SECONDS + 1),
                    st.integers(now + C.FUTURE_DRIFT_SECONDS + 1, C.I64_MAX)))
            elif rule == "TIMESTAMP_BEFORE_PARENT" and linked and p_ts > C.I64_MIN:
                fields["timestamp"] = p_ts - draw(st.integers(1, min(600, p_ts - C.I64_MIN)))
            elif rule == "WORK_SCORE_INVALID":
                fields["work_score"] = draw(st.sampled_from(_BAD_NONNEG))
            elif rule == "TIME_ASYMMETRY_NONFINITE":
                fields["time_asymmetry_ratio"] = draw(st.sampled_from(
                    (_NAN, _INF, -_INF, _f64(0x7FF0000000000001))))
            elif rule == "SOLUTION_QUALITY_INVALID":
                fields["solution_quality"] = draw(st.sampled_from(
                    _BAD_NONNEG + (1.0000000000000002, 2.0)))
            elif rule == "COMPLEXITY_WEIGHT_INVALID":
                fields["complexity_weight"] = draw(st.sampled_from(_BAD_NONNEG))
            elif rule == "ENERGY_ESTIMATE_INVALID":
                fields["energy_estimate_joules"] = draw(st.sampled_from(_BAD_NONNEG))
            elif rule == "TOO_MANY_TRANSACTIONS":
                pool = tuple(draw(st.lists(st.binary(min_size=32, max_size=32), min_size=1,
                                           max_size=3)))
                txids, known_root = _repeated_ids(pool,
                                                  C.MAX_TRANSACTIONS + draw(st.integers(1, 3)))
            elif rule == "HEIGHT_NOT_SEQUENTIAL" and linked:
                fields["height"] = (p_height + 1 + draw(st.sampled_from((1, 2, C.U64_MAX)))) \
                    & C.U64_MAX
            elif rule == "PREV_HASH_MISMATCH" and linked:
                fields["prev_hash"] = _other(draw, p_hash)
            elif rule == "SOLUTION_INVALID":
                numbers, target, indices = _break_solution(draw, numbers, target, indices)
            elif rule == "COMMITMENT_REPLAY" and commits:
                pass  # applied with the commitment below
            elif rule not in ("TX_ROOT_MISMATCH", "PROBLEM_HASH_MISMATCH",
                              "COMMITMENT_MISMATCH", "DIFFICULTY_NOT_MET"):
                done = False  # needs a parent or an earlier block
            if done:
                applied.append(rule)
                _event(f"broke {rule}")
        root = known_root if known_root is not None else merkle_root(txids)
        if "TX_ROOT_MISMATCH" in applied:
            how = draw(st.sampled_from(("root", "append", "drop")))
            if how == "append" and txids and len(txids) <= C.MAX_TRANSACTIONS:
                txids = list(txids) + [txids[-1]]  # the last id repeated: a new root
            elif how == "drop" and 1 < len(txids) <= C.MAX_TRANSACTIONS:
                txids = list(txids)[:-1]
            if how == "root" or merkle_root(txids) == root:
                root = _other(draw, root)
        ph = problem_hash(numbers, target)
        fields["transactions_root"] = root
        fields["commitment_problem_hash"] = _other(draw, ph) \
            if "PROBLEM_HASH_MISMATCH" in applied else ph
        commit = commitment(ph, fields["prev_hash"], solution_hash(indices))
        if "COMMITMENT_REPLAY" in applied:
            commit = draw(st.sampled_from(commits))
        elif "COMMITMENT_MISMATCH" in applied:
            commit = _other(draw, commit)
        fields["commitment_hash"] = commit
        miss = "DIFFICULTY_NOT_MET" in applied
        for _ in range(_GRIND):  # grind the nonce: meet the target (or miss it on purpose)
            header = encode_header(fields)
            if (hash_header(header) >= difficulty_target) == miss:
                break
            fields["nonce"] = (fields["nonce"] + 1) & C.U64_MAX
        if not applied and draw(st.integers(0, 31)) == 0:  # now and then: an edge value
            name = draw(st.sampled_from(C.FIELD_NAMES))
            fields[name] = draw(header_fields())[name]
            header = encode_header(fields)
            _event(f"perturbed {name}")
        _event("valid block" if not applied else "broken block")
        block = Block(header, txids, numbers, target, indices)
        blocks.append(block)
        broken.append(applied)
        commits.append(fields["commitment_hash"])
        parent = (fields["height"], hash_header(header), fields["timestamp"])
    return blocks, anchor, broken
