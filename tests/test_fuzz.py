"""``parity fuzz``: the input format, planted bugs found and saved as reproducing
regression corpora, a crashing twin reported while fuzzing goes on, usage errors and
output safety. Budgets are executions (``--runs``) with fixed seeds, never timings."""
from __future__ import annotations

import json
import os
import random
from dataclasses import replace
from pathlib import Path

import pytest

from kernels import constants as C
from parity.cli import main
from parity.functions import REGISTRY
from parity.fuzz import inputs as I
from parity.fuzz.decode import decode
from parity.fuzz.mutate import mutate, seeds
from parity.fuzz.pool import build_pool
from parity.outputs import MARKER
from parity.shrink import check_case, load_case
from parity.shrink.case import outcome

ROOT = Path(__file__).resolve().parent.parent
PLANTED = ROOT / "tests" / "planted"


@pytest.fixture(scope="module")
def pool():
    return build_pool(None)


def _fuzz(tmp: Path, *args: str, capsys) -> tuple[int, dict]:
    code = main(["fuzz", "--out", str(tmp / "fz"), "--quiet", *args])
    capsys.readouterr()
    summary = json.loads((tmp / "fz" / "summary.json").read_text())
    return code, summary


def test_every_byte_string_decodes_and_round_trips(pool):
    import kernels.legacy as legacy
    rng = random.Random(5)
    for n in range(300):
        data = rng.randbytes(rng.randrange(0, 60))
        case = decode(pool, data)
        assert len(case.block.header) == C.HEADER_SIZE
        inp = I.parse(data)
        assert I.parse(I.encode(inp)) == inp
        assert I.parse(mutate(data, 164, n, len(pool), lambda d, m: d)) is not None
        for fn in REGISTRY.values():  # the legacy twin answers every decoded input
            out = outcome(fn, legacy, replace(case, function=fn.name))
            assert out[0] != "shape"


def test_a_base_without_operations_is_the_base_block(pool):
    for b in (0, 1, len(pool) - 1):
        case = decode(pool, I.encode(I.Input(b, 0)))
        base = pool[b]
        assert (case.block, case.parent, case.now) == (base.block, base.parent, base.now)
    assert len(seeds(len(pool))) > 2 * len(pool)


def test_boundary_operations_hit_the_limits(pool):
    drift = decode(pool, I.encode(I.Input(1, I.F_FIXUPS, 0, [(I.OP_TIME, 0, 0)])))
    ts = int.from_bytes(drift.block.header[C.OFF_TIMESTAMP:C.OFF_TIMESTAMP + 8], "little")
    assert ts == drift.now + C.FUTURE_DRIFT_SECONDS
    from parity.fuzz.decode import NUM_COUNTS, TX_COUNTS
    ids = decode(pool, I.encode(I.Input(1, I.F_FIXUPS, 0,
                                        [(I.OP_TXCOUNT, 1, TX_COUNTS.index(13))])))
    nums = decode(pool, I.encode(I.Input(1, I.F_FIXUPS, 0,
                                         [(I.OP_NUMCOUNT, 1, NUM_COUNTS.index(4096))])))
    assert len(ids.block.txids) == 13 and len(nums.block.numbers) == 4096
    import kernels.legacy as legacy
    for case in (ids, nums):  # the fix-ups keep everything else valid
        status = outcome(REGISTRY["validate"], legacy, case)[2]
        assert not status & ~(C.DIFFICULTY_NOT_MET | C.TIMESTAMP_FUTURE), C.rule_names(status)


@pytest.mark.slow
@pytest.mark.parametrize("bug,function,runs", [("drift_limit", "validate", 20_000),
                                               ("merkle13", "merkle_root", 20_000),
                                               ("reveal4096", "validate", 60_000)])
def test_planted_bug_found_shrunk_and_reproduced(tmp_path, capsys, bug, function, runs):
    twin = str(PLANTED / f"{bug}.py")
    code, summary = _fuzz(tmp_path, "--refactored", twin, "--runs", str(runs), "--seed", "3",
                          "--max-findings", "1", capsys=capsys)
    assert code == 1
    [found] = summary["findings"]
    assert found["function"] == function and found["reproduces"] is True
    assert found["record"]["function"] == function
    case = load_case(found["file"])
    assert check_case(case, __import__("kernels.legacy").legacy, load_twin(twin))
    corpus = found["corpus"]
    assert main(["corpus", "verify", corpus]) == 0
    run = ["shadow", corpus, "--run-dir", str(tmp_path / "run"), "--force", "--quiet"]
    assert main([*run, "--refactored", twin]) == 1          # the planted twin: reproduced
    assert main(run) == 0                                   # the shipped twins agree
    capsys.readouterr()


def load_twin(path: str):
    from parity.twins import load_twin as load
    return load(path, "refactored")


@pytest.mark.slow
def test_a_crashing_twin_is_reported_and_fuzzing_goes_on(tmp_path, capsys):
    code, summary = _fuzz(tmp_path, "--refactored", str(PLANTED / "segv.py"), "--runs", "1500",
                          "--seed", "2", "--function", "header_hash", capsys=capsys)
    assert code == 1
    [crash] = [f for f in summary["findings"] if f.get("kind") == "crash"]
    assert crash["sides"] == {"legacy": "ok", "refactored": "SIGSEGV in header_hash"}
    assert crash["input"] and Path(crash["file"]).is_file()
    case = load_case(crash["file"])
    assert case.block.header[:4] == b"\xff\xff\xff\xff"  # the trigger is in the saved input
    assert summary["children"] >= 2 and summary["execs"] >= 1500  # restarted, budget spent
    assert main(["corpus", "verify", crash["corpus"]]) == 0
    capsys.readouterr()


@pytest.mark.slow
def test_shipped_twins_agree_and_coverage_corpora_replay(tmp_path, capsys):
    code, summary = _fuzz(tmp_path, "--runs", "1500", "--seed", "4", capsys=capsys)
    assert code == 0 and summary["findings"] == []
    assert summary["rules_never_clear"] == []
    assert len(summary["rules_seen_set"]) >= 12
    assert summary["coverage_corpora"]
    for c in summary["coverage_corpora"]:
        assert main(["corpus", "verify", c["corpus"]]) == 0
        assert main(["shadow", c["corpus"], "--run-dir", str(tmp_path / "run"), "--force",
                     "--quiet"]) == 0
    capsys.readouterr()


@pytest.mark.parametrize("args,message", [
    ([], "one of the arguments --seconds --runs is required"),
    (["--runs", "0"], "--runs 0: must be at least 1"),
    (["--seconds", "-1"], "--seconds -1.0: must be more than 0"),
    (["--runs", "5", "--function", "nope"], "unknown function 'nope'"),
    (["--runs", "5", "--corpus", "/nonexistent-corpus"], "--corpus /nonexistent-corpus: no such"),
    (["--runs", "5", "--refactored", "/nonexistent/twin.py"], "no such file"),
    (["--runs", "5", "--max-findings", "-1"], "--max-findings -1"),
])
def test_usage_errors_exit_2(tmp_path, capsys, args, message):
    code = _call(["fuzz", "--out", str(tmp_path / "fz"), *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "fz").exists()


def _call(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        return int(exc.code or 0)


def test_out_safety(tmp_path, capsys):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    assert _call(["fuzz", "--runs", "5", "--out", str(foreign), "--force"]) == 2
    assert "not written by parity" in capsys.readouterr().err
    assert (foreign / "notes.txt").read_text() == "mine"
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / MARKER).write_text(json.dumps({"tool": "parity", "kind": "fuzz"}))
    (earlier / "summary.json").write_text("{}")
    assert _call(["fuzz", "--runs", "5", "--out", str(earlier)]) == 2
    assert "use --force" in capsys.readouterr().err
    (earlier / "mine.txt").write_text("keep")
    assert _call(["fuzz", "--runs", "5", "--out", str(earlier), "--force"]) == 2
    assert "mine.txt" in capsys.readouterr().err and (earlier / "mine.txt").exists()
    cwd = os.getcwd()
    assert _call(["fuzz", "--runs", "5", "--out", cwd]) == 2
    assert "refusing" in capsys.readouterr().err


@pytest.mark.slow
def test_a_hanging_twin_is_a_timeout_finding(tmp_path, capsys):
    code, summary = _fuzz(tmp_path, "--refactored", str(PLANTED / "hang.py"), "--runs", "3000",
                          "--seed", "2", "--function", "commitment", "--timeout", "2",
                          "--max-findings", "1", capsys=capsys)
    assert code == 1
    [hang] = summary["findings"]
    assert hang["kind"] == "timeout"
    assert hang["sides"] == {"legacy": "ok", "refactored": "timeout in commitment"}
    assert load_case(hang["file"]).block.target == -1
