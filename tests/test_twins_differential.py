"""Differential property tests: legacy twin vs JIT twin vs the blake3 package.

Small batches run the JIT's one-thread paths; batches of 64-300 rows (at or above
``PARALLEL_MIN_ROWS``) run its parallel ones (``_hash_parallel``, ``_var_parallel``), with
a few drawn rows placed among rows from a drawn seed (hypothesis' buffer holds a few KiB).
"""
import struct
import tempfile

import blake3
import numpy as np
import pytest
from hypothesis import event, given, settings, target
from hypothesis import strategies as st

import kernels.jit as jit
import kernels.legacy as legacy
from kernels import constants as C
from kernels.jit._blake3 import PARALLEL_MIN_ROWS
from parity import strategies as ps
from tests.profiles import FUZZ, examples

BIG = st.integers(PARALLEL_MIN_ROWS, 300)  #: batch sizes that take the parallel paths
SEEDS = st.integers(0, 2**32 - 1)


def _h(data: bytes) -> bytes:
    return blake3.blake3(data).digest()


def test_big_batches_reach_the_parallel_paths():
    assert PARALLEL_MIN_ROWS <= 64  # BIG starts at PARALLEL_MIN_ROWS, below 300


def _rows(headers):
    return np.frombuffer(b"".join(headers), np.uint8).reshape(-1, C.HEADER_SIZE)


def _check_headers(headers):
    batch = _rows(headers)
    expected = [_h(h) for h in headers]
    assert [r.tobytes() for r in legacy.hash_headers(batch)] == expected
    for parallel in (True, False):
        assert [r.tobytes() for r in jit.hash_headers(batch, parallel=parallel)] == expected


@settings(max_examples=examples(60))
@given(st.lists(ps.headers(), max_size=40))
def test_header_hashes(headers):
    _check_headers(headers)
    for h in headers[:3]:
        assert legacy.hash_header(h) == jit.hash_header(h) == _h(h)


@settings(max_examples=examples(25))
@given(BIG, SEEDS, st.lists(st.tuples(st.integers(0, 299), ps.headers()), max_size=8))
def test_header_hashes_parallel(n, seed, drawn):
    rng = np.random.default_rng(seed)
    headers = [rng.bytes(C.HEADER_SIZE) for _ in range(n)]
    for pos, header in drawn:
        headers[pos % n] = header
    _check_headers(headers)


@settings(max_examples=examples(60))
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


@settings(max_examples=examples(30))
@given(st.lists(ps.headers(), max_size=12), st.integers(0, 300), SEEDS)
def test_header_columns_round_trip(headers, extra, seed):
    rng = np.random.default_rng(seed)
    batch = _rows(headers + [rng.bytes(C.HEADER_SIZE) for _ in range(extra)])
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


def _check_merkle(lists):
    ids = np.frombuffer(b"".join(t for x in lists for t in x), np.uint8).reshape(-1, 32)
    offsets = np.concatenate([[0], np.cumsum([len(x) for x in lists])]).astype(np.int64)
    expected = [_reference_root(x) for x in lists]
    assert [r.tobytes() for r in legacy.merkle_roots(ids, offsets)] == expected
    for parallel in (True, False):
        assert [r.tobytes() for r in jit.merkle_roots(ids, offsets, parallel=parallel)] == \
            expected


@settings(max_examples=examples(60))
@given(st.lists(ps.txid_lists(), max_size=12))
def test_merkle(lists):
    _check_merkle(lists)
    for x in lists[:3]:
        assert legacy.merkle_tree(x) == jit.merkle_tree(x)
        assert jit.merkle_root(x) == _reference_root(x)


@settings(max_examples=examples(15))
@given(BIG, SEEDS, st.lists(st.integers(0, 140), min_size=1, max_size=6),
       st.lists(st.tuples(st.integers(0, 299), ps.txid_lists()), max_size=4))
def test_merkle_parallel(n, seed, sizes, drawn):
    """64-300 blocks: every level with 64 or more nodes to hash is hashed in parallel."""
    rng = np.random.default_rng(seed)
    lists = [[rng.bytes(32) for _ in range(sizes[i % len(sizes)])] for i in range(n)]
    for pos, ids in drawn:
        lists[pos % n] = ids
    event(f"ids per block up to {max(map(len, lists)) // 50 * 50}+")
    _check_merkle(lists)


def test_merkle_large_counts():
    rng = np.random.default_rng(7)
    for n in (1023, 1024, 1025, 4097, 10_001):
        ids = [rng.bytes(32) for _ in range(n)]
        assert legacy.merkle_root(ids) == jit.merkle_root(ids) == _reference_root(ids)


@settings(max_examples=examples(60))
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
    for numbers, target_, indices, ok in cases:
        assert legacy.solution_ok(numbers, target_, indices) is ok, (numbers[:3], indices[:3])
        assert jit.solution_ok(numbers, target_, indices) is ok, (numbers[:3], indices[:3])


def _csr(lists, dtype):
    flat = np.array([v for x in lists for v in x], dtype=dtype)
    offsets = np.concatenate([[0], np.cumsum([len(x) for x in lists])]).astype(np.int64)
    return flat, offsets


def _check_reveals(reveals, salts):
    nums, noff = _csr([r[0] for r in reveals], np.int64)
    idxs, ioff = _csr([r[2] for r in reveals], np.uint64)
    targets = np.array([r[1] for r in reveals], dtype=np.int64)
    salt_rows = np.frombuffer(b"".join(salts), np.uint8).reshape(-1, 32)
    problem = [_h(struct.pack(f"<IQ{len(n)}qq", 0, len(n), *n, t)) for n, t, _ in reveals]
    solution = [_h(struct.pack(f"<IQ{len(i)}Q", 0, len(i), *i)) for _, _, i in reveals]
    commit = [_h(p + s + q) for p, s, q in zip(problem, salts, solution)]
    expected = [problem, solution, commit]
    a = legacy.reveal_hashes(nums, noff, targets, idxs, ioff, salt_rows)
    assert [[r.tobytes() for r in x] for x in a] == expected
    for parallel in (True, False):
        b = jit.reveal_hashes(nums, noff, targets, idxs, ioff, salt_rows, parallel=parallel)
        assert [[r.tobytes() for r in x] for x in b] == expected
    assert np.array_equal(legacy.check_solutions(nums, noff, targets, idxs, ioff),
                          jit.check_solutions(nums, noff, targets, idxs, ioff))


@settings(max_examples=examples(60))
@given(st.lists(st.tuples(ps.reveals(), ps.hashes()), max_size=20))
def test_reveal_batches(items):
    _check_reveals([r for r, _ in items], [s for _, s in items])


#: numbers per reveal: problem encodings of 12 + 8k + 8 bytes, from one block of a chunk
#: to 9 chunks (a chunk tree of 4 levels), exact chunk edges included
_COUNTS = st.one_of(st.integers(0, 30), st.sampled_from((125, 126, 127, 253, 254, 509, 510,
                                                         1021, 1022, 1150)),
                    st.integers(127, 1150))


@settings(max_examples=examples(15))
@given(BIG, SEEDS, st.lists(_COUNTS, min_size=1, max_size=5),
       st.lists(st.tuples(st.integers(0, 299), ps.reveals()), max_size=4))
def test_reveal_batches_parallel(n, seed, counts, drawn):
    """64-300 reveals: runs of equal lengths share lanes, long ones span several chunks."""
    rng = np.random.default_rng(seed)
    reveals = []
    for i in range(n):
        k = counts[i % len(counts)]
        numbers = rng.integers(-2**63, 2**63, k, dtype=np.int64, endpoint=False).tolist()
        indices = rng.integers(0, 2**64, int(rng.integers(0, 300)), dtype=np.uint64,
                               endpoint=False).tolist()
        reveals.append((numbers, int(rng.integers(-2**63, 2**63, dtype=np.int64)), indices))
    for pos, reveal in drawn:
        reveals[pos % n] = reveal
    longest = max(12 + 8 * len(r[0]) + 8 for r in reveals)
    event(f"longest problem encoding: {(longest - 1) // 1024 + 1} chunk(s)")
    target(float(longest), label="longest problem encoding (bytes)")
    _check_reveals(reveals, [rng.bytes(32) for _ in range(n)])


def _status_events(statuses):
    for s in statuses:
        for name in C.rule_names(s):
            event(f"status has {name}")
    event(f"valid blocks: {sum(s == 0 for s in statuses)}/{len(statuses)}")


NOWS = st.one_of(st.just(ps.CHAIN_NOW), ps.i64s())
TARGETS = st.one_of(st.just(ps.CHAIN_TARGET), ps.hashes())


@settings(max_examples=examples(60))
@given(ps.chains(), NOWS, TARGETS)
def test_validation(chain, now, difficulty):
    blocks, anchor = chain
    a = legacy.validate_chain(blocks, now, difficulty, anchor)
    assert jit.validate_chain(blocks, now, difficulty, anchor) == a
    _status_events(a)


@settings(max_examples=examples(40))
@given(ps.chains(max_blocks=10), st.integers(1, 9))
def test_validation_split_anywhere(chain, cut):
    """Batches with carried parent and replay state equal one batch, in both twins."""
    blocks, anchor = chain
    cut = min(cut, len(blocks))
    whole = legacy.validate_chain(blocks, ps.CHAIN_NOW, ps.CHAIN_TARGET, anchor)
    for twin in (legacy, jit):
        seen = twin.new_replay_state()
        first = twin.validate_chain(blocks[:cut], ps.CHAIN_NOW, ps.CHAIN_TARGET, anchor, seen)
        parent = anchor
        if blocks[:cut]:
            h = twin.decode_header(blocks[cut - 1].header)
            parent = (h["height"], twin.hash_header(blocks[cut - 1].header), h["timestamp"])
        rest = twin.validate_chain(blocks[cut:], ps.CHAIN_NOW, ps.CHAIN_TARGET, parent, seen)
        assert first + rest == whole


def test_chains_reach_every_rule_and_are_mostly_valid():
    """A few hundred chains (derandomized except under the fuzz profile): every rule a
    block breaks on purpose shows in its legacy status, the union of the statuses covers
    all 18 rules, and most blocks are valid."""
    seen = {"union": 0, "valid": 0, "blocks": 0}

    @settings(max_examples=examples(300), derandomize=not FUZZ, database=None)
    @given(ps.labelled_chains())
    def run(chain):
        blocks, anchor, broken = chain
        statuses = legacy.validate_chain(blocks, ps.CHAIN_NOW, ps.CHAIN_TARGET, anchor)
        for status, rules in zip(statuses, broken):
            for rule in rules:
                assert status & (1 << C.RULE_BIT[rule]), (rule, C.rule_names(status))
            seen["union"] |= status
            seen["valid"] += status == 0
        seen["blocks"] += len(blocks)
        _status_events(statuses)

    run()
    assert C.rule_names(C.ALL_RULES & ~seen["union"]) == []
    assert seen["valid"] > seen["blocks"] // 2, seen


@pytest.mark.slow
@settings(max_examples=examples(6))
@given(st.integers(PARALLEL_MIN_ROWS, 300), SEEDS, st.sampled_from((0.0, 0.2, 0.5)))
def test_validation_parallel_on_generated_corpora(n, seed, fault_rate):
    """64-300 blocks validated in one batch: both twins equal the generator's truth."""
    from parity.corpus import open_corpus
    from parity.corpus.generate import GenerateOptions, generate, read_truth
    with tempfile.TemporaryDirectory() as tmp:
        generate(f"{tmp}/c", GenerateOptions(blocks=n, seed=seed, fault_rate=fault_rate))
        corpus = open_corpus(f"{tmp}/c")
        truth = read_truth(f"{tmp}/c")
        m = corpus.manifest
        for shard in corpus.shards():
            for twin in (legacy, jit):
                got = twin.validate_blocks(*shard.arrays(), now=m.now,
                                           difficulty_target=m.difficulty_target,
                                           parent=m.anchor)
                assert np.array_equal(got, truth)
