"""The shared-memory transport of process twins (twins/PROTOCOL.md, "Shared memory"): the
Python and Rust twins agree with legacy through ``parity shadow`` with it on and off,
bad offsets are the twin's error, and no file is left in /dev/shm after runs, crashes
and kills of either side."""
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import kernels.legacy as legacy
from parity import twinshm
from parity.framing import request_parts
from parity.proctwin import ProcessTwin, TwinProcessError
from tests.conftest import shadow
from tests.test_proctwin import TWIN, exec_twin
from tests.test_rust_twin import _binary
from tests.twin_client import RUST_TWIN, TwinError, TwinProcess

ROOT = Path(__file__).resolve().parent.parent


def _ours() -> set[str]:
    return {p.name for p in twinshm.SHM_DIR.glob(twinshm.PREFIX + "*")}


@pytest.fixture(autouse=True)
def no_leftovers():
    """Every test: no segment file of ours is left in /dev/shm afterwards."""
    before = _ours()
    yield
    assert _ours() - before == set()


@pytest.fixture
def segments(monkeypatch):
    """The sizes of the segments the harness makes, in order."""
    made: list[int] = []

    class Counted(twinshm.Segment):
        def __init__(self, size: int) -> None:
            made.append(size)
            super().__init__(size)
    monkeypatch.setattr(twinshm, "Segment", Counted)
    return made


def _headers(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 276), dtype=np.uint8)


def _rust() -> str:
    return "exec:" + str(_binary(RUST_TWIN))


@pytest.mark.parametrize("twin", ["python", "rust"])
@pytest.mark.parametrize("shm", ["all", "0", "1"])
def test_twins_agree_with_legacy_on_the_public_chain(chain, tmp_path, monkeypatch,
                                                     segments, twin, shm, capsys):
    corpus, _, _ = chain
    monkeypatch.setenv(twinshm.ENV, shm)
    code, report = shadow(tmp_path, corpus, "--refactored",
                          exec_twin() if twin == "python" else _rust())
    assert code == 0 and report["mismatch_records_total"] == 0
    for f in report["functions"].values():
        assert (f["comparisons"], f["mismatches"], f["errors"]) == (300, 0, 0)
    # "all": every request through shared memory; "0" never
    if shm != "1":  # by default only the shards' requests of at least 1 MiB use it
        assert bool(segments) == (shm == "all")


def test_a_twin_that_does_not_offer_it_gets_the_pipe(chain, tmp_path, monkeypatch,
                                                     segments, capsys):
    corpus, _, _ = chain
    monkeypatch.setenv(twinshm.ENV, "all")
    code, report = shadow(tmp_path, corpus, "--refactored", exec_twin("--no-shm"))
    assert code == 0 and report["mismatch_records_total"] == 0 and segments == []


@pytest.mark.parametrize("twin", ["python", "rust"])
def test_large_requests_grow_the_segment(monkeypatch, segments, twin):
    monkeypatch.delenv(twinshm.ENV, raising=False)  # the default thresholds
    command = TWIN if twin == "python" else str(_binary(RUST_TWIN))
    with ProcessTwin(command) as t:
        small, large = _headers(4000), _headers(12000, seed=1)
        assert np.array_equal(t.hash_headers(small[:100]), legacy.hash_headers(small[:100]))
        assert segments == []  # under 1 MiB: the pipe
        for h in (small, large, small):
            assert np.array_equal(t.hash_headers(h), legacy.hash_headers(h))
    assert segments == [twinshm.segment_size(small.nbytes), twinshm.segment_size(large.nbytes)]


def _flagged(twin: TwinProcess, offset: int, n: int) -> list[np.ndarray]:
    for part in request_parts("header_hash", [np.zeros((n, 276), np.uint8)], {0: offset}):
        twin.write(part)
    return twin.receive()


@pytest.mark.parametrize("twin", ["python", "rust"])
def test_bad_offsets_are_the_twins_error_and_it_keeps_serving(tmp_path, twin):
    argv = [sys.executable, str(ROOT / "twins/python/twin.py")] if twin == "python" \
        else [_binary(RUST_TWIN)]
    headers = _headers(10)
    seg = tmp_path / "segment"
    seg.write_bytes(bytes(64) + headers.tobytes())
    with TwinProcess(argv) as t:
        with pytest.raises(TwinError, match="none is attached"):
            _flagged(t, 64, 10)
        with pytest.raises(TwinError):
            t.request("shm_attach", np.frombuffer(b"/nonexistent/x", np.uint8),
                      np.array([4096], np.uint64))
        with pytest.raises(TwinError, match="size"):  # larger than the file
            t.request("shm_attach", np.frombuffer(os.fsencode(seg), np.uint8),
                      np.array([1 << 20], np.uint64))
        assert t.request("shm_attach", np.frombuffer(os.fsencode(seg), np.uint8),
                         np.array([seg.stat().st_size], np.uint64)) == []
        seg.unlink()  # mapped: the name is not needed any more
        for offset, n in [(32, 10), (128, 10), (64, 11), (2**64 - 64, 1)]:
            with pytest.raises(TwinError, match="segment"):
                _flagged(t, offset, n)
        (out,) = _flagged(t, 64, 10)
        assert np.array_equal(out, legacy.hash_headers(headers))
        assert t.close() == 0, t.stderr


def _kill_while_busy(pid: int) -> None:
    """SIGKILL ``pid`` once it is computing (running, not waiting for its next request):
    a kill between two requests would only start a new process, no request failing."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return
        if state == "R":
            os.kill(pid, signal.SIGKILL)
            return
        time.sleep(0.0005)


@pytest.mark.parametrize("twin", ["python", "rust"])
def test_twin_killed_mid_request(monkeypatch, segments, twin):
    """SIGKILL of the twin while it holds the segment: the request fails as that twin's
    error, nothing is left in /dev/shm, and the next request gets a new process and a
    new segment."""
    monkeypatch.setenv(twinshm.ENV, "all")
    command = TWIN if twin == "python" else str(_binary(RUST_TWIN))
    with ProcessTwin(command, timeout=60) as t:
        headers = _headers(200_000 if twin == "rust" else 20_000)  # legacy: seconds
        pid = t._proc.pid if t.PARITY_FUNCTIONS else 0
        threading.Thread(target=_kill_while_busy, args=(pid,), daemon=True).start()
        with pytest.raises(TwinProcessError, match="exited"):
            for _ in range(200):  # the Rust twin is quick: kill it in one of these
                t.hash_headers(headers)
        assert t._segment is None
        h = _headers(50)
        assert np.array_equal(t.hash_headers(h), legacy.hash_headers(h))
    assert len(segments) == 2


HARNESS = textwrap.dedent("""
    import sys, numpy as np
    from parity.proctwin import ProcessTwin
    t = ProcessTwin(sys.argv[1])
    print("sending", flush=True)
    t.hash_headers(np.zeros((int(sys.argv[2]), 276), np.uint8))
""")


def test_harness_killed_mid_request():
    """SIGKILL of the harness while the twin works on a request in shared memory: the
    file was unlinked already."""
    env = {**os.environ, twinshm.ENV: "all", "PYTHONPATH": str(ROOT)}
    harness = subprocess.Popen([sys.executable, "-c", HARNESS, TWIN + " --hang-at 1", "50"],
                               stdout=subprocess.PIPE, env=env, cwd=ROOT)
    try:
        assert harness.stdout is not None and harness.stdout.readline() == b"sending\n"
        deadline, twins = time.monotonic() + 60, []
        while not twins and time.monotonic() < deadline:  # the twin is started and hangs
            time.sleep(0.5)
            twins = [p for p in _children_of(harness.pid)
                     if "--hang-at" in (Path("/proc") / str(p) / "cmdline").read_text()]
        assert twins
        [twin] = twins
        while b"hanging on purpose" not in _stderr(twin) and time.monotonic() < deadline:
            time.sleep(0.2)  # past shm_attach: the twin holds the request
        assert "/dev/shm/" + twinshm.PREFIX in (Path("/proc") / str(twin) / "maps").read_text()
    finally:
        harness.kill()
        harness.wait()
        harness.stdout.close()
    for p in twins:
        os.kill(p, signal.SIGKILL)


def _stderr(pid: int) -> bytes:
    """What the twin wrote to its stderr (the harness's unnamed temporary file)."""
    return (Path("/proc") / str(pid) / "fd" / "2").read_bytes()


def _children_of(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(d.name))
            except (OSError, IndexError):
                continue
    return out
