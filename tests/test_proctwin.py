"""Process twins (``exec:COMMAND``, twins/PROTOCOL.md) through ``parity shadow``: the Python
reference twin agrees with legacy on the public chain in modes 1-3, a planted bug is found
at exactly its blocks, every fault is that twin's error, partial twins, start-up errors."""
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from kernels import constants as C
from parity.corpus.jsonl import block_to_json
from parity.errors import ParityError
from parity.proctwin import ProcessTwin, TwinProcessError
from tests.conftest import CHAIN_SHARD as SHARD
from tests.conftest import shadow

ROOT = Path(__file__).resolve().parent.parent
TWIN = f"{shlex.quote(sys.executable)} {ROOT / 'twins' / 'python' / 'twin.py'}"


def exec_twin(*options: str) -> str:
    return "exec:" + " ".join([TWIN, *options])


def _children() -> set[tuple[int, str]]:
    """(pid, state) of this process's children, zombies included."""
    out = set()
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == os.getpid():
                out.add((int(d.name), fields[0]))
    return out


_BEFORE: set[tuple[int, str]] = set()


@pytest.fixture(autouse=True)
def _baseline():
    """The children other tests' fixtures left running (servers, clusters) before this one."""
    _BEFORE.clear()
    _BEFORE.update(_children())


def children() -> list[tuple[int, str]]:
    """Children of this process started by the current test and still there (or zombies)."""
    return sorted(_children() - _BEFORE)


@pytest.mark.parametrize("mode", ["1", "2", "3"])
def test_reference_twin_agrees_with_legacy(chain, tmp_path, mode, capsys):
    corpus, expected, _ = chain
    code, report = shadow(tmp_path, corpus, "--mode", mode, "--refactored", exec_twin(),
                          "--results", str(tmp_path / "r.parquet"))
    assert code == 0 and report["mismatch_records_total"] == 0
    assert report["legacy_only"] == {}
    compared = 0 if mode == "3" else 300
    for f in report["functions"].values():
        assert (f["comparisons"], f["mismatches"], f["errors"]) == (compared, 0, 0)
        assert f["refactored_calls"] == 3
    assert report["mode"]["end"] == report["mode"]["start"]
    served = pq.read_table(tmp_path / "r.parquet")
    assert served.column("status").to_pylist() == expected  # mode 3: the process twin's
    assert children() == []  # the twin process stopped and reaped


def test_planted_bug_found_at_exactly_its_blocks(chain, tmp_path, capsys):
    corpus, _, heights = chain
    planted = [3, 150, 299]
    flip = ",".join(str(heights[b]) for b in planted)
    code, report = shadow(tmp_path, corpus, "--refactored", exec_twin("--flip-heights", flip))
    assert code == 1
    assert report["mismatched_blocks"] == {"header_hash": planted}
    for r in report["mismatch_records"]:
        assert (r["first_byte"], r["first_bit"], r["differing_bits"]) == (0, 0, 1)
    assert "replay: parity replay" in capsys.readouterr().out


FAULTS = [  # (twin option, what the record says, whether the process is replaced)
    ("--crash-at", "exited (exit code 3); its stderr ends: twin: crashing on purpose", True),
    ("--hang-at", "no reply within 1 s", True),
    ("--garbage-at", "malformed reply (bad reply magic b'this')", True),
    ("--error-at", "the twin's error: RuntimeError: planted error at request 5", False),
]


@pytest.mark.parametrize("mode", ["1", "2"])
@pytest.mark.parametrize("option, what, restarted", FAULTS, ids=[f[0] for f in FAULTS])
def test_faults_are_the_twins_errors(chain, tmp_path, mode, option, what, restarted, capsys):
    """Request 5 is header_hash on the second shard (two warm-up calls, two per shard)."""
    corpus, _, _ = chain
    code, report = shadow(tmp_path, corpus, "--mode", mode, "--functions",
                          "header_hash,merkle_root", "--twin-timeout", "1",
                          "--refactored", exec_twin(option, "5"),
                          "--results", str(tmp_path / "r.parquet"))
    assert code == 1  # an error is a failed run, never a crash
    hh, mr = report["functions"]["header_hash"], report["functions"]["merkle_root"]
    assert (hh["errors"], hh["mismatches"], mr["errors"], mr["mismatches"]) == (1, SHARD, 0, 0)
    [record] = report["mismatch_records"]
    assert (record["function"], record["block"], record["kind"]) == ("header_hash", SHARD,
                                                                      "exception")
    assert record["refactored"]["exception"] == "TwinProcessError"
    assert record["refactored"]["message"].startswith(f"refactored twin {exec_twin(option, '5')}"
                                                      ": header_hash: ")
    assert what in record["refactored"]["message"]
    assert report["functions"]["merkle_root"]["refactored_calls"] == 3  # the run went on
    if mode == "2":
        assert report["mode"]["end"] == "shadow"
        assert "refactored header_hash raised TwinProcessError on blocks from 100" in \
            report["mode"]["changes"][0]["reason"]
    served = pq.read_table(tmp_path / "r.parquet").column("header_hash").to_pylist()
    import kernels.legacy as legacy
    from parity.corpus import open_corpus
    headers = np.concatenate([s.headers for s in open_corpus(corpus).shards()])
    assert served == [bytes(r) for r in legacy.hash_headers(headers)]  # legacy served
    assert children() == []


def test_crash_in_validation_costs_only_the_shard_in_flight(chain, tmp_path, capsys):
    """A crash loses the process's replay states; the harness starts each shard from a
    fresh replay state (primed with the earlier commitments that recur in it), so the
    next shard validates in the new process and agrees again: one error, the run
    completes."""
    corpus, _, _ = chain
    code, report = shadow(tmp_path, corpus, "--mode", "2", "--functions", "validate",
                          "--refactored", exec_twin("--crash-at", "3"))
    validate = report["functions"]["validate"]
    assert code == 1 and validate["errors"] == 1
    (record,) = report["mismatch_records"]
    assert "exited (exit code 3)" in record["refactored"]["message"]
    assert report["mode"]["end"] == "shadow"
    assert validate["comparisons"] == 300 and validate["mismatches"] == SHARD  # the crashed shard


def test_partial_twin(chain, tmp_path, capsys):
    corpus, expected, _ = chain
    for mode in ("1", "3"):
        code, report = shadow(tmp_path, corpus, "--mode", mode, "--refactored",
                              exec_twin("--functions", "header_hash,merkle_root"),
                              "--results", str(tmp_path / f"r{mode}.parquet"), name=mode)
        assert code == 0
        reason = "the refactored twin does not implement it"
        assert report["legacy_only"] == {"validate": reason, "commitment": reason}
        for fn in ("validate", "commitment"):
            f = report["functions"][fn]
            assert f["legacy_only"] == reason and f["comparisons"] == 0
            assert f["refactored_calls"] == 0 and f["legacy_calls"] == 3
        assert report["functions"]["header_hash"]["comparisons"] == (300 if mode == "1" else 0)
        table = capsys.readouterr().out
        assert f"validate     legacy only ({reason})" in table
        assert pq.read_table(tmp_path / f"r{mode}.parquet").column("status").to_pylist() \
            == expected  # mode 3: legacy validated, with its own chain state


def test_partial_module_twin_declares_its_functions(chain, tmp_path, capsys):
    corpus, _, _ = chain
    twin = tmp_path / "half.py"
    twin.write_text("from kernels.legacy import *  # noqa\nPARITY_FUNCTIONS = ('merkle_root',)\n")
    code, report = shadow(tmp_path, corpus, "--refactored", str(twin))
    assert code == 0 and sorted(report["legacy_only"]) == ["commitment", "header_hash",
                                                           "validate"]
    assert report["functions"]["merkle_root"]["comparisons"] == 300


def test_no_function_in_common_is_a_usage_error(chain, tmp_path, capsys):
    corpus, _, _ = chain
    code, report = shadow(tmp_path, corpus, "--functions", "validate,commitment",
                          "--refactored", exec_twin("--functions", "header_hash"))
    err = capsys.readouterr().err
    assert (code, report) == (2, None) and len(err.strip().splitlines()) == 1
    assert "implements none of the requested functions (validate, commitment); it implements " \
           "header_hash" in err
    assert children() == []


@pytest.mark.parametrize("command, what", [
    ("/nonexistent/twin", "cannot start '/nonexistent/twin': No such file or directory"),
    (f"{TWIN} --no-such-option", "hello: the process exited (exit code 2); its stderr ends: "),
    (f"{shlex.quote(sys.executable)} -c pass", "hello: the process exited (exit code 0)"),
    (f"{TWIN} --functions header_hash,merkle", "declares unknown function(s) merkle"),
    ('"unbalanced', "No closing quotation"),
])
def test_bad_commands_fail_at_start_up(chain, tmp_path, command, what, capsys):
    corpus, _, _ = chain
    code, _ = shadow(tmp_path, corpus, "--refactored", f"exec:{command}")
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and what in err, err
    assert children() == []


def _script(tmp_path: Path, body: str) -> str:
    """A twin of a few lines (its hello lists header_hash) answering as ``body`` says."""
    path = tmp_path / "fake.py"
    path.write_text(f"""import sys, numpy as np
sys.path.insert(0, {str(ROOT)!r})
from parity.framing import decode_request, encode_reply
def read(n):
    b = sys.stdin.buffer.read(n)
    if len(b) < n:
        sys.exit(0)
    return b
while True:
    op, a = decode_request(read)
    if op == "hello":
        out = encode_reply([np.frombuffer(b"header_hash", np.uint8)])
    else:
{body}
    sys.stdout.buffer.write(out)
    sys.stdout.buffer.flush()
""")
    return f"{shlex.quote(sys.executable)} {path}"


@pytest.mark.parametrize("body, what", [
    ("        out = encode_reply([np.zeros((len(a[0]), 32), np.uint32)])",
     "reply array 0 is uint32[3, 32], expected uint8[3, 32]"),
    ("        out = encode_reply([np.zeros((len(a[0]), 31), np.uint8)])",
     "reply array 0 is uint8[3, 31], expected uint8[3, 32]"),
    ("        out = encode_reply([])", "0 reply arrays, expected 1"),
    ("        out = encode_reply([np.zeros((3, 32), np.uint8)])[:-5]", "no reply within 0.5 s"),
])
def test_wrong_replies(tmp_path, body, what):
    with ProcessTwin(_script(tmp_path, body), timeout=0.5) as twin:
        assert twin.PARITY_FUNCTIONS == ("header_hash",)
        with pytest.raises(TwinProcessError, match=r"refactored twin exec:.*: header_hash: ") \
                as info:
            twin.hash_headers(np.zeros((3, C.HEADER_SIZE), np.uint8))
        assert what in str(info.value)
        assert twin._proc is None  # stopped; the next request starts a new one
        assert twin.PARITY_FUNCTIONS == ("header_hash",)
    assert children() == []


def test_child_inherits_only_its_pipes(tmp_path):
    listing = "import os, sys; print(sorted(os.listdir('/proc/self/fd')), file=sys.stderr)"
    keep = os.open(os.devnull, os.O_RDONLY)  # an inheritable descriptor of ours
    os.set_inheritable(keep, True)
    try:
        twin = ProcessTwin(f"{shlex.quote(sys.executable)} -c {shlex.quote(listing)}")
        with pytest.raises(ParityError) as info:
            _ = twin.PARITY_FUNCTIONS
    finally:
        os.close(keep)
    fds = json.loads(str(info.value).rsplit("its stderr ends: ", 1)[1].replace("'", '"'))
    assert set(fds) <= {"0", "1", "2", "3"}  # 3: the listing's own


def test_twin_pickles_as_its_command_and_replay_states_copy(chain):
    import copy
    import pickle
    corpus, _, _ = chain
    twin = ProcessTwin(TWIN, "legacy", 7.0)
    try:
        assert len(twin.PARITY_FUNCTIONS) == 4
        clone = pickle.loads(pickle.dumps(twin))
        assert (clone.command, clone.role, clone.timeout, clone._proc) == (TWIN, "legacy", 7.0,
                                                                          None)
        state = twin.new_replay_state()
        state.update([bytes(32)])
        other = copy.deepcopy(state)
        assert other.handle != state.handle
        del other
        twin.hash_headers(np.zeros((0, C.HEADER_SIZE), np.uint8))  # sends the free first
        assert twin._freed == []
    finally:
        twin.close()


def test_ctrl_c_stops_the_twin(chain, tmp_path):
    corpus, _, _ = chain
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "parity", "shadow", str(corpus), "--legacy", "kernels.legacy",
           "--run-dir", str(tmp_path / "run"), "--quiet", "--refactored",
           exec_twin("--hang-at", "1")]
    harness = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        twins: list[int] = []
        while not twins and time.monotonic() < deadline:
            time.sleep(0.2)
            twins = [int(p.name) for p in Path("/proc").glob("[0-9]*")
                     if _ppid(p) == harness.pid]
        assert twins, "the twin never started"
        time.sleep(1.0)  # let it receive its first function request and hang
        harness.send_signal(signal.SIGINT)
        assert harness.wait(30) == 130
        assert b"parity: interrupted" in harness.stderr.read()
        assert not Path(f"/proc/{twins[0]}").exists()  # killed and reaped, not orphaned
    finally:
        if harness.poll() is None:
            harness.kill()
            harness.wait()
        harness.stderr.close()


def _ppid(proc: Path) -> int:
    try:
        return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


def test_live_validation_with_a_partial_exec_twin(chain, tmp_path):
    """``parity serve --chain`` loads exec: twins too: posted blocks are validated by legacy
    alone (the twin implements no validation) and the planted hash bit is caught."""
    from parity.corpus import open_corpus
    from parity.live import Chain, LiveValidator
    from parity.modes import Mode
    from parity.percall import Controller
    from parity.state import ModeState
    corpus, expected, heights = chain
    m = open_corpus(corpus).manifest
    controller = Controller(ModeState(tmp_path / "state.db", initial=Mode.SHADOW))
    twin = exec_twin("--functions", "header_hash,merkle_root", "--flip-heights", str(heights[42]))
    live = LiveValidator(controller, Chain(m.now, m.difficulty_target, m.anchor),
                         "kernels.legacy", twin, twin_timeout=30)
    try:
        assert live.legacy_only == {"validate", "commitment"}
        body = [(json.dumps(block_to_json(s.block(i))) + "\n").encode()
                for s in open_corpus(corpus).shards() for i in range(len(s))]
        answers = []
        for lo in range(0, len(body), 50):
            answers += live.submit(b"".join(body[lo:lo + 50]))["results"]
        assert [a["status"] for a in answers] == expected
        assert [i for i, a in enumerate(answers) if not a["agreed"]] == [42]
    finally:
        live.close()
    assert children() == []


@pytest.mark.slow
def test_dask_engine_with_an_exec_twin(chain, tmp_path, capsys):
    corpus, _, heights = chain
    twin = exec_twin("--flip-heights", str(heights[120]))
    single = shadow(tmp_path, corpus, "--refactored", twin, "--results",
                    str(tmp_path / "single.parquet"), name="single")
    dask = shadow(tmp_path, corpus, "--refactored", twin, "--engine", "dask", "--workers", "1",
                  "--results", str(tmp_path / "dask.parquet"), name="dask")
    assert single[0] == dask[0] == 1
    assert single[1]["mismatched_blocks"] == dask[1]["mismatched_blocks"] == \
        {"header_hash": [120]}
    assert pq.read_table(tmp_path / "single.parquet").equals(
        pq.read_table(tmp_path / "dask.parquet"))
