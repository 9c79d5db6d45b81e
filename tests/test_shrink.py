"""Shrinking mismatches: ddmin, each planted bug to a 1-minimal case that still
reproduces, the case form, ``parity shrink`` and ``parity shadow --shrink K``, speed."""
import json
import random
import struct
import time

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import kernels.jit as jit
import kernels.legacy as legacy
from kernels import constants as C
from parity.cli import main
from parity.corpus import CorpusWriter
from parity.corpus.jsonl import block_from_json, import_jsonl
from parity.corpus.shard import from_blocks
from parity.errors import ParityError
from parity.functions import REGISTRY, BatchFunction
from parity.report import cpu_name
from parity.shadow import ShadowOptions, ShadowRun
from parity.shrink import Case, Shrinker, ddmin, from_corpus, load_case, neighbours, write_case
from parity.strategies import honest_block
from tests import broken_twin
from tests.conftest import ROOT

FAULTS = ROOT / "corpora" / "sample-faults"
BIG = 27        # the block of 1,000 ids and a 4,096-number overflowing reveal
REPLAYED = 25   # replays block 3's commitment, 21 commitments back
SHRINK_BUDGET_S = 10.0


# ---- ddmin ---------------------------------------------------------------------------

@given(st.integers(1, 200), st.data())
def test_ddmin_finds_exactly_the_needed_elements(n, data):
    needed = set(data.draw(st.lists(st.integers(0, n - 1), max_size=6)))
    asked = []

    def fails(sub):
        asked.append(sub)
        return needed <= set(sub)
    assert ddmin(list(range(n)), fails) == sorted(needed)
    assert list(range(n)) not in asked and len(asked) == len({tuple(a) for a in asked})


@given(st.lists(st.integers(0, 9), min_size=1, max_size=60))
def test_ddmin_result_is_1_minimal(items):
    def fails(sub):  # at least three distinct values, one of them a 7
        return 7 in sub and len(set(sub)) >= 3
    if not fails(items):
        return
    out = ddmin(items, fails)
    assert fails(out)
    assert all(not fails(out[:i] + out[i + 1:]) for i in range(len(out)))
    assert len(out) == 3


def test_ddmin_edge_cases():
    assert ddmin([], lambda s: True) == []
    assert ddmin([1, 2, 3], lambda s: True) == []
    assert ddmin([5], lambda s: s == [5]) == [5]


# ---- a chain with the new planted bugs ---------------------------------------------

def _big_block(parent, rng):
    numbers = [rng.randint(-1000, 1000) for _ in range(C.MAX_REVEAL_ITEMS)]
    indices = rng.sample(range(len(numbers)), 8)
    numbers[indices[0]], numbers[indices[1]] = C.I64_MAX - 5, C.I64_MAX - 7
    total = sum(numbers[i] for i in indices) & C.U64_MAX
    target = total - (1 << 64) * (total >> 63)  # the wrapped sum: only the bug accepts it
    txids = [rng.randbytes(32) for _ in range(1000)]
    return honest_block(parent, txids, (numbers, target, indices), parent[2] + 60)


def build_chain(path, blocks=30):
    """An honest chain from an anchor, except: block REPLAYED replays block 3's
    commitment and block BIG carries 1,000 ids and an overflowing 4,096-number reveal."""
    rng = random.Random(13)
    parent = anchor = (1000, bytes(range(32)), 1_767_000_000)
    chain = []
    for i in range(blocks):
        if i == BIG:
            b = _big_block(parent, rng)
        else:
            numbers = [rng.randint(1, 50) for _ in range(6)]
            b = honest_block(parent, [rng.randbytes(32) for _ in range(rng.randint(0, 9))],
                             (numbers, numbers[0] + numbers[2], [0, 2]), parent[2] + 60)
        if i == REPLAYED:
            earlier = legacy.decode_header(chain[3].header)["commitment_hash"]
            b = b._replace(header=legacy.encode_header(
                dict(legacy.decode_header(b.header), commitment_hash=earlier)))
        chain.append(b)
        h = legacy.decode_header(b.header)
        parent = (h["height"], legacy.hash_header(b.header), h["timestamp"])
    with CorpusWriter(path, now=1_767_100_000, difficulty_target=b"\xff" * 32,
                      anchor=anchor, rows_per_file=10) as w:
        for lo in range(0, blocks, 10):
            w.append(from_blocks(chain[lo:lo + 10]))
    return path


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    return build_chain(tmp_path_factory.mktemp("chain") / "corpus")


def _run(tmp_path, corpus=FAULTS):
    return ShadowRun(ShadowOptions(corpus=str(corpus), run_dir=str(tmp_path / "run"),
                                   quiet=True), refactored=broken_twin)


def shrink_first(tmp_path, corpus, function, blocks=None):
    """Shrink the first block (of ``blocks``) the twins disagree on; check the written
    case reproduces and is 1-minimal. Returns (case, seconds)."""
    run = _run(tmp_path, corpus)
    s = Shrinker(function, run.legacy.twin, run.refactored.twin)
    start = next(c for c in (from_corpus(run, i, function)
                             for i in (blocks or range(run.m.blocks))) if s.disagree(c))
    result = s.shrink(start)
    case = load_case(write_case(result.case, tmp_path / "cases"))
    assert case == result.case and case.name == result.case.name
    fresh = Shrinker(function, legacy, broken_twin)  # no cache: run both twins again
    a, b = fresh.outcomes(case)
    assert a != b, "the case no longer reproduces"
    assert case.outputs == {"legacy": a[2], "refactored": b[2]}
    kept = [what for what, n in neighbours(case, REGISTRY[function].parts)
            if fresh.disagree(n)]
    assert kept == [], f"not 1-minimal: {kept} still disagree"
    return case, result.seconds


def _nonzero_fields(header):
    return [n for n, off, size, _k in C.HEADER_FIELDS if any(header[off:off + size])]


# ---- each planted bug shrinks to a 1-minimal case ------------------------------------

def test_flip_shrinks_to_the_height_field_alone(tmp_path, monkeypatch):
    run = _run(tmp_path)
    height = legacy.decode_header(from_corpus(run, 201, "header_hash").block.header)["height"]
    monkeypatch.setenv("BROKEN_TWIN", "flip")
    monkeypatch.setenv("BROKEN_TWIN_HEIGHTS", str(height))
    case, _ = shrink_first(tmp_path, FAULTS, "header_hash", [201])
    assert _nonzero_fields(case.block.header) == ["height"]
    assert legacy.decode_header(case.block.header)["height"] == height
    assert (case.parent, case.replay, list(case.block.txids)) == (None, (), [])


def test_odd_copy_shrinks_to_three_ids(tmp_path, monkeypatch):
    monkeypatch.setenv("BROKEN_TWIN", "odd_copy")
    case, _ = shrink_first(tmp_path, FAULTS, "merkle_root")
    assert list(case.block.txids) == [bytes(32)] * 3
    assert case.block.header == bytes(C.HEADER_SIZE)


def test_negzero_shrinks_to_one_f64_field_at_negative_zero(tmp_path, monkeypatch):
    monkeypatch.setenv("BROKEN_TWIN", "negzero")
    case, _ = shrink_first(tmp_path, FAULTS, "validate")
    (name,) = _nonzero_fields(case.block.header)
    off = C.FIELD_OFFSET[name]
    assert C.FIELD_KIND[name] == "f64"
    assert struct.unpack("<Q", case.block.header[off:off + 8])[0] == 0x8000000000000000
    assert case.parent is None and case.replay == () and list(case.block.txids) == []


def test_noreplay_shrinks_to_the_one_replayed_commitment(tmp_path, monkeypatch):
    monkeypatch.setenv("BROKEN_TWIN", "noreplay")
    case, _ = shrink_first(tmp_path, FAULTS, "validate")
    assert _nonzero_fields(case.block.header) == ["commitment_hash"]
    assert case.replay == (case.block.header[C.OFF_COMMITMENT_HASH:C.OFF_COMMITMENT_HASH + 32],)
    assert case.parent is None


def test_short_replay_keeps_the_commitment_and_sixteen_later_ones(tmp_path, monkeypatch,
                                                                  chain):
    monkeypatch.setenv("BROKEN_TWIN", "short_replay")
    case, _ = shrink_first(tmp_path, chain, "validate")
    commitment = case.block.header[C.OFF_COMMITMENT_HASH:C.OFF_COMMITMENT_HASH + 32]
    assert _nonzero_fields(case.block.header) == ["commitment_hash"]
    assert case.replay == (commitment,) + (bytes(32),) * broken_twin.WINDOW


def test_overflow_and_speed_on_1000_ids_and_4096_numbers(tmp_path, monkeypatch, chain,
                                                         capsys):
    monkeypatch.setenv("BROKEN_TWIN", "overflow,odd_copy")
    big = from_corpus(_run(tmp_path, chain), BIG, "validate")
    assert (len(big.block.txids), len(big.block.numbers)) == (1000, 4096)
    t0 = time.perf_counter()
    case, validate_s = shrink_first(tmp_path, chain, "validate", [BIG])
    merkle, merkle_s = shrink_first(tmp_path / "m", chain, "merkle_root", [BIG])
    total = time.perf_counter() - t0
    b = case.block
    assert list(b.txids) == [] and case.parent is None and case.replay == ()
    assert len(b.numbers) == len(b.indices) == 8  # the selected subset, nothing else
    assert sum(b.numbers) != b.target and len(merkle.block.txids) == 3
    with capsys.disabled():
        print(f"\nshrink of 1,000 ids + 4,096 numbers on {cpu_name()}: validate "
              f"{validate_s:.2f}s, merkle_root {merkle_s:.2f}s (with checks {total:.2f}s)")
    assert validate_s <= SHRINK_BUDGET_S and merkle_s <= SHRINK_BUDGET_S


def test_commitment_shrinks_through_its_declared_parts(tmp_path, chain):
    class AbsTwin:  # reads the reveal's numbers as absolute values
        @staticmethod
        def commitments(headers, numbers, *rest):
            return jit.commitments(headers, np.abs(numbers), *rest)
    s = Shrinker("commitment", legacy, AbsTwin)
    case = s.shrink(from_corpus(_run(tmp_path, chain), BIG, "commitment")).case
    b = case.block
    assert len(b.numbers) == 1 and b.numbers[0] < 0 and b.indices == [] and b.target == 0
    assert case.block.header == bytes(C.HEADER_SIZE)
    assert [w for w, n in neighbours(case, REGISTRY["commitment"].parts) if s.disagree(n)] == []


def test_any_registered_function_gets_a_shrinker_from_its_parts(monkeypatch):
    monkeypatch.setenv("BROKEN_TWIN", "odd_copy")
    fn = BatchFunction("roots_again", "merkle_roots", "x", REGISTRY["merkle_root"].arrow_type,
                       REGISTRY["merkle_root"].args, REGISTRY["merkle_root"].localize,
                       REGISTRY["merkle_root"].record, parts=("txids",))
    ids = [bytes([i]) * 32 for i in range(1, 12)]
    case = Shrinker(fn, legacy, broken_twin).shrink(
        Case("merkle_root", C.Block(bytes(276), ids, [], 0, []))).case
    assert case.function == "roots_again" and list(case.block.txids) == [bytes(32)] * 3
    with pytest.raises(ParityError, match="no shrinking pass"):
        Shrinker(BatchFunction("x", "merkle_roots", "x", fn.arrow_type, fn.args, fn.localize,
                               fn.record, parts=("mempool",)), legacy, jit)


# ---- the case form and the commands -----------------------------------------------

def test_case_file_is_jsonl_that_block_from_json_and_import_read(tmp_path, monkeypatch,
                                                                   chain):
    monkeypatch.setenv("BROKEN_TWIN", "short_replay")
    run = _run(tmp_path, chain)
    case = Shrinker("validate", legacy, broken_twin).shrink(
        from_corpus(run, REPLAYED, "validate")).case
    path = write_case(case, tmp_path / "cases")
    corpus_line, block_line = [json.loads(t) for t in path.read_text().splitlines()]
    assert corpus_line["written_by"] == "parity shrink"
    assert set(block_line) >= {"case", "function", "parent", "replay", "outputs", "header"}
    assert block_from_json(block_line) == case.block
    assert import_jsonl(path, tmp_path / "imported") == 1
    (tmp_path / "foreign.jsonl").write_text("{}\n")
    with pytest.raises(ParityError, match="not a parity case"):
        load_case(tmp_path / "foreign.jsonl")
    other = tmp_path / "cases2"
    other.mkdir()
    (other / f"{case.name}.jsonl").write_text("not parity's\n")
    with pytest.raises(ParityError, match="not written by parity"):
        write_case(case, other)


def test_parity_shrink_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BROKEN_TWIN", "negzero")
    refactored = str(ROOT / "tests" / "broken_twin.py")
    out = tmp_path / "regressions"
    assert main(["shrink", str(FAULTS), "--block", "0", "--refactored", refactored,
                 "--out", str(out)]) == 2
    assert "agree" in capsys.readouterr().err
    run = _run(tmp_path)
    s = Shrinker("validate", legacy, broken_twin)
    block = next(i for i in range(800) if s.disagree(from_corpus(run, i, "validate")))
    assert main(["shrink", str(FAULTS), "--block", str(block), "--refactored", refactored,
                 "--out", str(out)]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["function"] == "validate" and got["file"].startswith(str(out))
    assert load_case(got["file"]).name == got["case"]


def test_shadow_shrink_names_each_reproducer(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BROKEN_TWIN", "odd_copy,negzero")
    out = tmp_path / "regressions"
    code = main(["shadow", str(FAULTS), "--refactored", str(ROOT / "tests" / "broken_twin.py"),
                 "--functions", "merkle_root,validate", "--run-dir", str(tmp_path / "run"),
                 "--report", str(tmp_path / "r.json"), "--quiet", "--shrink", "3",
                 "--shrink-out", str(out)])
    assert code == 1
    table = capsys.readouterr().out
    repro = json.loads((tmp_path / "r.json").read_text())["reproducers"]
    assert len(repro) == 3 and {r["function"] for r in repro} == {"merkle_root", "validate"}
    for r in repro:
        assert f"reproducer: {r['file']}" in table
        assert load_case(r["file"]).function == r["function"]
    assert sorted(p.name for p in out.iterdir()) == sorted({f"{r['case']}.jsonl" for r in repro})
