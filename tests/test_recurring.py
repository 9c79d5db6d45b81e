"""Exact COMMITMENT_REPLAY with replay state the size of a shard (parity.recurring):
replays within a shard, across shards, at shard boundaries, a first occurrence in a
shard's last block, the corpus' last block, many repeats, forced hash collisions,
--resume and parity replay, all equal to one legacy pass over the whole chain."""
import random
import threading

import numpy as np
import pyarrow.parquet as pq
import pytest

import kernels.legacy as legacy
from kernels import constants as C
from parity import recurring, shadow
from parity.corpus import CorpusWriter
from parity.corpus.shard import from_blocks
from parity.modes import Mode
from parity.shadow import ShadowOptions, ShadowRun
from parity.strategies import honest_block

SHARD = 10
BLOCKS = 60
#: block -> the earlier block whose commitment it repeats
REPLAYS = {5: 0, 10: 9, 11: 9, 35: 0, 40: 22, 41: 22, 42: 22, 50: 19, 55: 19, 59: 0}
ANCHOR = (1000, bytes(range(32)), 1_767_000_000)


def _commit(block):
    return block.header[C.OFF_COMMITMENT_HASH:C.OFF_COMMITMENT_HASH + 32]


def build(path):
    rng = random.Random(5)
    parent, chain = ANCHOR, []
    for i in range(BLOCKS):
        numbers = [rng.randint(1, 50) for _ in range(5)]
        b = honest_block(parent, [rng.randbytes(32) for _ in range(rng.randint(0, 4))],
                         (numbers, numbers[0] + numbers[1], [0, 1]), parent[2] + 60)
        if i in REPLAYS:
            b = b._replace(header=legacy.encode_header(dict(
                legacy.decode_header(b.header),
                commitment_hash=_commit(chain[REPLAYS[i]]))))
        chain.append(b)
        h = legacy.decode_header(b.header)
        parent = (h["height"], legacy.hash_header(b.header), h["timestamp"])
    with CorpusWriter(path, now=1_767_100_000, difficulty_target=b"\xff" * 32,
                      anchor=ANCHOR, rows_per_file=SHARD) as w:
        for lo in range(0, BLOCKS, SHARD):
            w.append(from_blocks(chain[lo:lo + SHARD]))
    return path, chain


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return build(tmp_path_factory.mktemp("recurring") / "corpus")


def reference(chain):
    """One legacy pass over the whole chain with one replay set: the truth."""
    return np.array(legacy.validate_chain(chain, 1_767_100_000, b"\xff" * 32, ANCHOR),
                    dtype=np.uint32)


def _run(tmp_path, path, mode=Mode.SHADOW, **kw):
    opts = ShadowOptions(corpus=str(path), mode=mode, run_dir=str(tmp_path / "run"),
                         results=str(tmp_path / "r.parquet"), quiet=True, force=True, **kw)
    run = ShadowRun(opts)
    return run, run.execute()


def _statuses(tmp_path):
    return pq.read_table(tmp_path / "r.parquet").column("status").to_numpy()


def test_reference_has_the_planted_replays(corpus):
    _, chain = corpus
    flagged = np.flatnonzero(reference(chain) & C.COMMITMENT_REPLAY)
    assert flagged.tolist() == sorted(REPLAYS)


@pytest.mark.parametrize("mode", [Mode.LEGACY_ONLY, Mode.SHADOW, Mode.REFACTORED_ONLY])
def test_every_mode_equals_one_pass_over_the_chain(corpus, tmp_path, mode):
    path, chain = corpus
    run, result = _run(tmp_path, path, mode)
    assert result.exit_code == 0 and result.records == []
    assert np.array_equal(_statuses(tmp_path), reference(chain))
    # the index keeps only commitments that recur: 0's, 9's, 19's and 22's
    assert len(run.recurring) == 4
    started = [s for s in (run.legacy, run.refactored) if s.replay is not None]
    assert started and all(len(_held(s.replay)) <= SHARD + 4 for s in started)


def _held(state):
    return state if isinstance(state, set) else range(len(state))


def test_forced_hash_collisions_change_nothing(corpus, tmp_path, monkeypatch):
    """Every commitment a candidate (one hash for all): still exact, the 32 bytes decide."""
    path, chain = corpus
    monkeypatch.setattr(recurring, "hash32",
                        lambda c, compiled=True: np.zeros(len(c), dtype=np.uint32))
    run, result = _run(tmp_path, path)
    assert result.exit_code == 0
    assert np.array_equal(_statuses(tmp_path), reference(chain))
    assert len(run.recurring) == BLOCKS - len(REPLAYS)  # every distinct commitment


def test_index_primes_exactly_the_earlier_recurring_commitments():
    rows = np.arange(6 * 32, dtype=np.uint8).reshape(6, 32)
    a, b, c, d = rows[0], rows[1], rows[2], rows[3]
    shards = [np.stack([a, b]), np.stack([c, a, a]), np.stack([d, b, c, a]), np.stack([d])]
    cands = recurring.candidates(recurring.hash32(s) for s in shards)
    index = recurring.RecurringIndex(cands)
    primes = [index.prime(s) for s in shards]
    assert [p.tolist() for p in primes] == [[], [a.tolist()],
                                           [b.tolist(), c.tolist(), a.tolist()], [d.tolist()]]
    assert len(index) == 4 and recurring.candidates([]).size == 0


def test_the_sieve_lets_no_near_miss_through(monkeypatch):
    """Hashes sharing a candidate's top 16 bits, or next to it, are not candidates: only
    the equal ones reach the 32-byte comparison."""
    rows = np.arange(8 * 32, dtype=np.uint8).reshape(8, 32)
    hashes = np.array([0x12340005, 0x12340006, 0x12350005, 0x12340004, 0x12340005, 7, 7, 8],
                      dtype=np.uint32)
    monkeypatch.setattr(recurring, "hash32", lambda c, compiled=True: hashes[:len(c)])
    index = recurring.RecurringIndex(recurring.candidates([hashes]))
    assert index.candidates.tolist() == [7, 0x12340005]
    assert index._candidate_rows(rows) == [rows[i].tobytes() for i in (0, 4, 5, 6)]


def test_resume_and_replay_block_use_the_index(corpus, tmp_path):
    path, chain = corpus
    truth = reference(chain)
    opts = ShadowOptions(corpus=str(path), run_dir=str(tmp_path / "run"),
                         results=str(tmp_path / "r.parquet"), quiet=True)
    calls = []

    def stop(run):
        calls.append(run.blocks_done)
        if run.blocks_done == 30:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        ShadowRun(opts).execute(on_shard=stop)
    result = ShadowRun(ShadowOptions(**{**opts.__dict__, "resume": True})).execute()
    assert result.exit_code == 0 and calls[-1] == 30
    assert np.array_equal(_statuses(tmp_path), truth)
    run = ShadowRun(ShadowOptions(corpus=str(path), run_dir=str(tmp_path / "rep"),
                                  quiet=True))
    for block in (9, 10, 11, 19, 40, 42, 50, 59):
        records, outputs = run.replay_block(block)
        assert records == []
        assert outputs["validate"] == {"legacy": int(truth[block]),
                                       "refactored": int(truth[block])}, block


def test_first_shard_runs_while_pass_1_does(corpus, tmp_path, monkeypatch):
    """No block is earlier than shard 0, so it starts with empty replay states while pass 1
    goes on; the index walks past it afterwards, so blocks 10, 11, 35 and 59 (repeating
    commitments of shard 0) are still replays."""
    path, chain = corpus
    first_done = threading.Event()
    real = shadow.scan

    def late_scan(corpus, groups):
        assert first_done.wait(60), "shard 0 waited for pass 1"
        return real(corpus, groups)
    monkeypatch.setattr(shadow, "scan", late_scan)
    for mode in (Mode.SHADOW, Mode.REFACTORED_ONLY):
        opts = ShadowOptions(corpus=str(path), mode=mode, run_dir=str(tmp_path / "run"),
                             results=str(tmp_path / "r.parquet"), quiet=True, force=True)
        first_done.clear()
        result = ShadowRun(opts).execute(on_shard=lambda run: first_done.set())
        assert result.exit_code == 0 and result.records == []
        assert np.array_equal(_statuses(tmp_path), reference(chain))


def _hash32_numpy(commits):
    """The mixing of recurring.hash32 in plain numpy (what it was before it compiled)."""
    words = np.ascontiguousarray(commits).view("<u8").reshape(-1, 4)
    x = np.zeros(words.shape[0], dtype=np.uint64)
    for j in range(4):
        x ^= words[:, j] * recurring._M[j]
        x ^= x >> np.uint64(29)
    x *= recurring._M[0]
    return (x >> np.uint64(32)).astype(np.uint32)


@pytest.mark.parametrize("rows", [0, 1, 3, 17, 1000])
def test_hash32_mixes_like_the_numpy_reference(rows):
    rng = np.random.default_rng(rows)
    cases = [rng.integers(0, 256, (rows, 32), dtype=np.uint8),
             np.full((rows, 32), 255, dtype=np.uint8), np.zeros((rows, 32), dtype=np.uint8)]
    headers = rng.integers(0, 256, (rows, C.HEADER_SIZE), dtype=np.uint8)
    headers.setflags(write=False)
    cases.append(headers[:, C.OFF_COMMITMENT_HASH:C.OFF_COMMITMENT_HASH + 32])  # a view
    cases.append(recurring.commitment_view(headers)[::-1])  # rows backwards: copied first
    wide = rng.integers(0, 256, (rows, 64), dtype=np.uint8)
    cases.append(wide[:, ::2])  # bytes not adjacent: copied first
    cases.append(wide[::3, 5:37])  # every third row of a wider array, at an odd offset
    for commits in cases:
        for compiled in (True, False):
            got = recurring.hash32(commits, compiled)
            assert got.dtype == np.uint32 and np.array_equal(got, _hash32_numpy(commits))
    if rows > 1:
        assert len(set(recurring.hash32(cases[0]).tolist())) > 1
