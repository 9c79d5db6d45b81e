"""Pipelined header hashing over a process boundary (twins/PROTOCOL.md, "Pipelining"): a
large ``header_hash`` call goes as chunks, each in its own region of the shared segment,
all written before the first reply is read; the answers equal legacy's, a fault in any
chunk is that twin's error with the stream kept in step (status 1) or the process
replaced (crash, hang, garbage), and ``parity shadow`` finds a planted bug at exactly its
blocks through it."""
import numpy as np
import pytest

import kernels.legacy as legacy
from parity import proctwin, twinshm
from parity.proctwin import ProcessTwin, TwinProcessError
from tests.conftest import shadow
from tests.test_proctwin import TWIN
from tests.test_rust_twin import PLANTED_EVERY, _binary
from tests.twin_client import RUST_TWIN, RUST_TWIN_PLANTED

CHUNK = 500  # rows per pipelined request in these tests (the Python twin is slow)


@pytest.fixture
def log(monkeypatch):
    """What the harness does, in order: ("send", op, rows) and ("reply", op of the latest
    request sent)."""
    events: list[tuple] = []
    parts, decode = proctwin.request_parts, proctwin.decode_reply

    def counted_parts(op, arrays, placed=None):
        events.append(("send", op, len(arrays[0]) if arrays else 0))
        return parts(op, arrays, placed)

    def counted_decode(*args, **kwargs):
        events.append(("reply", next(e[1] for e in reversed(events) if e[0] == "send")))
        return decode(*args, **kwargs)
    monkeypatch.setattr(proctwin, "request_parts", counted_parts)
    monkeypatch.setattr(proctwin, "decode_reply", counted_decode)
    monkeypatch.setattr(proctwin, "PIPELINE_ROWS", CHUNK)
    monkeypatch.setenv(twinshm.ENV, "all")
    return events


def _headers(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 276), dtype=np.uint8)


def _hashes_sent(events: list[tuple]) -> list[tuple]:
    return [e for e in events if e[1] == "header_hash"]


@pytest.mark.parametrize("twin", ["python", "rust"])
def test_large_calls_go_in_chunks_all_sent_before_the_first_reply(log, twin):
    command = TWIN if twin == "python" else str(_binary(RUST_TWIN))
    headers = _headers(4 * CHUNK + 7)
    with ProcessTwin(command) as t:
        for h in (headers, headers[:2 * CHUNK], headers[:2 * CHUNK - 1]):
            log.clear()
            assert np.array_equal(t.hash_headers(h), legacy.hash_headers(h))
            chunks = -(-len(h) // CHUNK) if len(h) >= 2 * CHUNK else 1
            sizes = [min(CHUNK, len(h) - k * CHUNK) for k in range(chunks)] \
                if chunks > 1 else [len(h)]
            assert _hashes_sent(log) == [("send", "header_hash", s) for s in sizes] \
                + [("reply", "header_hash")] * chunks


def test_without_shared_memory_a_large_call_is_one_request(log, monkeypatch):
    monkeypatch.setenv(twinshm.ENV, "0")
    headers = _headers(3 * CHUNK)
    with ProcessTwin(TWIN) as t:
        assert np.array_equal(t.hash_headers(headers), legacy.hash_headers(headers))
    assert _hashes_sent(log) == [("send", "header_hash", 3 * CHUNK), ("reply", "header_hash")]


def test_a_twin_without_shared_memory_gets_one_request(log):
    headers = _headers(3 * CHUNK)
    with ProcessTwin(TWIN + " --no-shm") as t:
        assert np.array_equal(t.hash_headers(headers), legacy.hash_headers(headers))
    assert _hashes_sent(log) == [("send", "header_hash", 3 * CHUNK), ("reply", "header_hash")]


def test_a_status_1_chunk_is_the_twins_error_and_the_stream_stays_in_step(log):
    headers = _headers(4 * CHUNK)
    with ProcessTwin(TWIN + " --error-at 3") as t:
        pid = t._proc.pid if t.PARITY_FUNCTIONS else 0
        with pytest.raises(TwinProcessError, match="the twin's error"):
            t.hash_headers(headers)
        assert _hashes_sent(log)[-4:] == [("reply", "header_hash")] * 4  # every reply read
        assert np.array_equal(t.hash_headers(headers), legacy.hash_headers(headers))
        assert t._proc.pid == pid  # the same process answered in step


@pytest.mark.parametrize(("fault", "match"), [("crash", "exited"), ("hang", "no reply within"),
                                               ("garbage", "malformed reply")])
def test_a_chunk_that_crashes_hangs_or_writes_garbage_replaces_the_process(log, fault, match):
    headers = _headers(4 * CHUNK)
    with ProcessTwin(TWIN + f" --{fault}-at 2", timeout=3) as t:
        pid = t._proc.pid if t.PARITY_FUNCTIONS else 0
        with pytest.raises(TwinProcessError, match=match):
            t.hash_headers(headers)
        assert t._proc is None and t._segment is None
        # a new process (whose fault comes at its second request: one call is one here)
        assert np.array_equal(t.hash_headers(headers[:CHUNK]),
                              legacy.hash_headers(headers[:CHUNK]))
        assert t._proc.pid != pid
    assert not list(twinshm.SHM_DIR.glob(twinshm.PREFIX + "*"))


@pytest.mark.parametrize("binary", [RUST_TWIN, RUST_TWIN_PLANTED])
def test_parity_shadow_through_pipelined_chunks(chain, tmp_path, monkeypatch, binary, capsys):
    """Shards of the public chain hashed in chunks of 64 headers: the Rust twin agrees on
    every block, and its planted build differs at exactly the planted blocks."""
    corpus, _, heights = chain
    monkeypatch.setattr(proctwin, "PIPELINE_ROWS", 64)
    monkeypatch.setenv(twinshm.ENV, "all")
    code, report = shadow(tmp_path, corpus, "--mode", "1", "--refactored",
                          f"exec:{_binary(binary)}")
    planted = [b for b, h in enumerate(heights) if h % PLANTED_EVERY == 0]
    if binary == RUST_TWIN:
        assert code == 0 and report["mismatch_records_total"] == 0
    else:
        assert code == 1 and report["mismatched_blocks"] == {"header_hash": planted}
    assert report["functions"]["header_hash"]["errors"] == 0
