"""The Rust twin (twins/rust, built by ``make rust-twin``) over the process-twin protocol:
the public vectors, differential properties against the legacy twin, bad requests, the
end of input, and the planted-bug build."""
from __future__ import annotations

import os
import struct
import subprocess

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kernels.legacy as legacy
from kernels import checks
from kernels import constants as C
from parity import strategies as ps
from parity.functions import FUNCTIONS
from tests.conftest import public_chain, shadow
from tests.profiles import examples
from tests.twin_client import (
    RUST_TWIN,
    RUST_TWIN_PLANTED,
    TwinError,
    TwinProcess,
    anchor,
    handle,
    u8,
)

PLANTED_EVERY = 50  # the heights whose header hash the planted-bug build flips (header.rs)


def _binary(path):
    if not path.exists():
        message = f"{path} is missing: run `make rust-twin`"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def twin():
    """One twin process for the module: it must serve every test and exit 0 at the end."""
    proc = TwinProcess([_binary(RUST_TWIN)])
    yield proc
    assert proc.close() == 0, proc.stderr
    assert proc.stderr == ""


def _rows(raw: list[bytes], width: int) -> np.ndarray:
    return np.frombuffer(b"".join(raw), np.uint8).reshape(-1, width).copy()


def _hex_rows(a: np.ndarray) -> list[str]:
    return [r.tobytes().hex() for r in a]


def _merkle_args(lists: list[list[bytes]]) -> tuple[np.ndarray, np.ndarray]:
    ids, offsets = checks.pack(lists, np.uint8, "txids", C.HASH_SIZE)
    return ids.copy(), offsets


def _validate(twin: TwinProcess, blocks: list, now: int, target: bytes, parent: np.ndarray,
              replay: int) -> list[int]:
    arrays = checks.pack_blocks(blocks)
    (status,) = twin.request("validate", *arrays, np.array([now], np.int64), u8(target), parent,
                             handle(replay))
    assert status.dtype == np.uint32 and status.shape == (len(blocks),)
    return status.tolist()


def _new_state(twin: TwinProcess) -> int:
    (h,) = twin.request("replay_new")
    assert h.dtype == np.uint64 and h.shape == (1,)
    return int(h[0])


def test_hello_lists_what_it_implements(twin):
    names, features = twin.request("hello")
    assert features.tobytes() == b"shm"  # twins/PROTOCOL.md, "Shared memory"
    listed = names.tobytes().decode().split(",")
    assert listed == ["header_hash", "merkle_root", "commitment", "validate"]
    assert set(listed) <= set(FUNCTIONS)


def test_public_header_hashes(twin, public_vectors):
    headers = public_vectors["headers"]
    assert len(headers) == 400
    (got,) = twin.request("header_hash", _rows([bytes.fromhex(h["header"]) for h in headers], 276))
    assert got.shape == (400, 32)
    assert _hex_rows(got) == [h["hash"] for h in headers]


def test_public_merkle_roots(twin, public_vectors):
    cases = public_vectors["merkle"]
    assert len(cases) == 82
    ids, offsets = _merkle_args([[bytes.fromhex(t) for t in c["txids"]] for c in cases])
    (got,) = twin.request("merkle_root", ids, offsets)
    assert _hex_rows(got) == [c["root"] for c in cases]


def test_public_chain(twin, public_vectors):
    c, blocks, parent = public_chain(public_vectors)
    assert len(blocks) == 300
    target = bytes.fromhex(c["difficulty_target"])
    status = _validate(twin, blocks, c["now"], target, anchor(parent), _new_state(twin))
    assert status == [b["expect"]["status"] for b in c["blocks"]]
    hdr, ids, id_off, nums, num_off, tgts, idxs, idx_off = checks.pack_blocks(blocks)
    (hashes,) = twin.request("header_hash", hdr)
    assert _hex_rows(hashes) == [b["expect"]["header_hash"] for b in c["blocks"]]
    (roots,) = twin.request("merkle_root", ids, id_off)
    assert _hex_rows(roots) == [b["expect"]["tx_root"] for b in c["blocks"]]
    (commits,) = twin.request("commitment", hdr, nums, num_off, tgts, idxs, idx_off)
    assert np.array_equal(commits, legacy.commitments(hdr, nums, num_off, tgts, idxs, idx_off))


def test_public_chain_in_batches_with_replay_states(twin, public_vectors):
    """Parent and replay state carried across requests (the parent as an anchor or as the
    previous header), a cloned state, a state filled by replay_update, freed states."""
    c, blocks, first_parent = public_chain(public_vectors)
    target = bytes.fromhex(c["difficulty_target"])
    expect = [b["expect"]["status"] for b in c["blocks"]]
    state = _new_state(twin)
    got, clone = [], 0
    parent = anchor(first_parent)
    for lo, hi in ((0, 1), (1, 128), (128, 129), (129, 300)):
        if lo == 129:
            (cloned,) = twin.request("replay_clone", handle(state))
            clone = int(cloned[0])
            assert clone != state
        got += _validate(twin, blocks[lo:hi], c["now"], target, parent, state)
        parent = u8(blocks[hi - 1].header)
    assert got == expect
    # the clone was taken before the last batch: it gives the same answer once more
    assert _validate(twin, blocks[129:], c["now"], target, u8(blocks[128].header), clone) == \
        expect[129:]
    filled = _new_state(twin)
    earlier = _rows([b.header[116:148] for b in blocks[:129]], 32)
    assert twin.request("replay_update", handle(filled), earlier) == []
    assert _validate(twin, blocks[129:], c["now"], target, u8(blocks[128].header), filled) == \
        expect[129:]
    for h in (state, clone, filled):
        assert twin.request("replay_free", handle(h)) == []
    with pytest.raises(TwinError, match=f"no state with handle {state}"):
        _validate(twin, blocks[:1], c["now"], target, anchor(None), state)


@settings(max_examples=examples(60))
@given(st.lists(ps.headers(), max_size=40), st.integers(0, 300), st.integers(0, 2**32 - 1))
def test_header_hashes_match_legacy(twin, headers, extra, seed):
    rng = np.random.default_rng(seed)
    batch = _rows(headers + [rng.bytes(C.HEADER_SIZE) for _ in range(extra)], C.HEADER_SIZE)
    (got,) = twin.request("header_hash", batch)
    assert np.array_equal(got, legacy.hash_headers(batch))


@settings(max_examples=examples(60))
@given(st.lists(ps.txid_lists(), max_size=8))
def test_merkle_roots_match_legacy(twin, lists):
    ids, offsets = _merkle_args(lists)
    (got,) = twin.request("merkle_root", ids, offsets)
    assert np.array_equal(got, legacy.merkle_roots(ids, offsets))


def test_merkle_roots_of_many_sizes_match_legacy(twin):
    """Empty, one, odd and even counts, 13, powers of two and their neighbours, large."""
    rng = np.random.default_rng(17)
    sizes = [0, 1, 2, 3, 4, 5, 7, 13, 31, 32, 33, 255, 256, 257, 1000, 4097, 10_001]
    lists = [[rng.bytes(32) for _ in range(n)] for n in sizes]
    ids, offsets = _merkle_args(lists)
    (got,) = twin.request("merkle_root", ids, offsets)
    assert np.array_equal(got, legacy.merkle_roots(ids, offsets))
    assert got[0].tobytes() == bytes(32)


@settings(max_examples=examples(60))
@given(st.lists(st.tuples(ps.headers(), ps.reveals()), max_size=10))
def test_commitments_match_legacy(twin, rows):
    hdr = _rows([h for h, _ in rows], C.HEADER_SIZE)
    nums, num_off = checks.pack([r[0] for _, r in rows], np.int64, "numbers")
    tgts = np.array([r[1] for _, r in rows], np.int64)
    idxs, idx_off = checks.pack([r[2] for _, r in rows], np.uint64, "indices")
    (got,) = twin.request("commitment", hdr, nums, num_off, tgts, idxs, idx_off)
    assert np.array_equal(got, legacy.commitments(hdr, nums, num_off, tgts, idxs, idx_off))


NOWS = st.one_of(st.just(ps.CHAIN_NOW), ps.i64s())
TARGETS = st.one_of(st.just(ps.CHAIN_TARGET), ps.hashes())


@settings(max_examples=examples(60))
@given(ps.chains(), NOWS, TARGETS, st.booleans())
def test_validation_matches_legacy(twin, chain, now, target, as_header):
    blocks, parent = chain
    want = legacy.validate_chain(blocks, now, target, parent)
    state = _new_state(twin)
    given_parent = anchor(parent)
    if as_header and blocks:  # the parent as a header: validate from the second block on
        want = legacy.validate_chain(blocks[1:], now, target, blocks[0].header)
        given_parent, blocks = u8(blocks[0].header), blocks[1:]
    assert _validate(twin, blocks, now, target, given_parent, state) == want
    twin.request("replay_free", handle(state))


def _array(dtype, shape):
    return np.zeros(shape, dtype)


OFF = np.array([0, 1], np.int64)
ID = _array(np.uint8, (1, 32))
BAD = [
    ("header_hash", [], "expected 1 arrays, got 0"),
    ("header_hash", [_array(np.uint8, (2, 275))], "headers: expected uint8[N,276], got uint8[2,275]"),
    ("header_hash", [_array(np.int64, (2, 276))], "got int64[2,276]"),
    ("header_hash", [_array(np.uint8, (276,))], "got uint8[276]"),
    ("merkle_root", [ID, np.array([1, 1], np.int64)], "offsets: must start at 0"),
    ("merkle_root", [ID, np.array([0, 2, 1], np.int64)], "offsets: must never decrease"),
    ("merkle_root", [ID, np.array([0, 2], np.int64)], "offsets: must end at len(ids) = 1"),
    ("merkle_root", [ID, np.zeros(0, np.int64)], "offsets: expected at least one entry"),
    ("merkle_root", [ID, np.array([0, 1], np.uint64)], "offsets: expected int64[N+1]"),
    ("merkle_root", [_array(np.uint8, (1, 31)), OFF], "ids: expected uint8[T,32]"),
    ("commitment", [_array(np.uint8, (1, 276)), _array(np.int64, 1), OFF, _array(np.int64, 2),
                    _array(np.uint64, 0), np.zeros(2, np.int64)], "targets: expected int64[1]"),
    ("commitment", [_array(np.uint8, (1, 276)), _array(np.int64, 1), np.array([0, 1, 1], np.int64),
                    _array(np.int64, 1), _array(np.uint64, 0), np.zeros(2, np.int64)],
     "num_offsets: expected 2 entries"),
    ("validate", [ID], "expected 12 arrays, got 1"),
    ("replay_update", [handle(2**63), _array(np.uint8, (1, 32))], f"no state with handle {2**63}"),
    ("replay_update", [np.array([1, 2], np.uint64), ID], "handle: expected uint64[1]"),
    ("replay_clone", [handle(2**64 - 1)], "no state with handle 18446744073709551615"),
    ("replay_free", [handle(0)], "no state with handle 0"),
    ("hello", [ID], "expected 0 arrays, got 1"),
    ("parity", [], 'unknown op "parity"'),
    ("", [], 'unknown op ""'),
    ("h\u00e9llo", [], "not ASCII"),
]


@pytest.mark.parametrize("op, arrays, message", BAD, ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD)])
def test_bad_requests_get_status_1_and_the_twin_keeps_serving(twin, op, arrays, message):
    with pytest.raises(TwinError) as err:
        twin.request(op, *arrays)
    assert message in str(err.value)
    names, _ = twin.request("hello")
    assert names.tobytes().startswith(b"header_hash")


def test_bad_validate_arguments(twin, public_vectors):
    c, blocks, parent = public_chain(public_vectors)
    arrays = list(checks.pack_blocks(blocks[:3]))
    state = _new_state(twin)
    target = u8(bytes.fromhex(c["difficulty_target"]))
    good = arrays + [np.array([c["now"]], np.int64), target, anchor(parent), handle(state)]
    cases = {10: (u8(bytes(47)), "parent: expected 0, 48 or 276 bytes, got 47"),
             9: (u8(bytes(31)), "difficulty_target: expected uint8[32]"),
             8: (np.array([1, 2], np.int64), "now: expected int64[1]"),
             2: (np.array([0, 0, 0], np.int64), "id_offsets: expected 4 entries")}
    for k, (value, message) in cases.items():
        with pytest.raises(TwinError, match=message.replace("[", r"\[")):
            twin.request("validate", *good[:k], value, *good[k + 1:])
    # a refused request leaves the replay state untouched: the chain's start is still new
    assert twin.request("validate", *good)[0].tolist() == \
        [b["expect"]["status"] for b in c["blocks"][:3]]


def _raw_run(payload: bytes) -> tuple[int, bytes, str]:
    """Exit code, stdout and stderr of a twin given ``payload`` and then the end of input."""
    r = subprocess.run([_binary(RUST_TWIN)], input=payload, capture_output=True, timeout=60)
    return r.returncode, r.stdout, r.stderr.decode()


def test_eof_between_requests_exits_0():
    code, out, err = _raw_run(b"")
    assert (code, out, err) == (0, b"", "")
    hello = b"PTWQ" + struct.pack("<H", 5) + b"hello" + struct.pack("<I", 0)
    code, out, err = _raw_run(hello * 3)
    assert code == 0 and out.count(b"PTWR\x00") == 3 and err == ""


@pytest.mark.parametrize("payload, reply", [
    (b"XXXX" + bytes(10), "malformed request: bad magic"),
    (b"PTWQ\x05\x00hello\x01\x00\x00\x00\x09\x00", "unknown dtype 9"),
    (b"PTWQ\x05\x00hello\x01\x00\x00\x00\x01\x02" + struct.pack("<QQ", 2**40, 2**40), "more than"),
    (b"PTWQ\x05\x00hello" + struct.pack("<I", 10**6), "1000000 arrays"),
    (b"PTWQ\x05\x00hel", None),                                     # input ends inside a frame
    (b"PTWQ\x05\x00hello\x01\x00\x00\x00\x01\x01" + struct.pack("<Q", 100) + bytes(99), None),
])
def test_unframeable_input_ends_the_process_without_a_panic(payload, reply):
    """The stream cannot be resynchronized: a status-1 reply when the frame was malformed,
    then exit 1 with a one-line reason (never a panic)."""
    code, out, err = _raw_run(payload)
    assert code == 1
    assert "panicked" not in err and err.startswith("parity-rust-twin: ")
    if reply is None:
        assert out == b"" and "input ended inside a request" in err
    else:
        assert out.startswith(b"PTWR\x01") and reply in out.decode(errors="replace")


def test_a_dead_reader_is_not_a_panic():
    proc = TwinProcess([_binary(RUST_TWIN)])
    assert proc.proc.stdout is not None
    proc.proc.stdout.close()
    proc.send("header_hash", [np.zeros((10_000, 276), np.uint8)])
    assert proc.close() == 1
    assert "panicked" not in proc.stderr and "writing the reply failed" in proc.stderr


def test_timing_lines_only_when_asked():
    with TwinProcess([_binary(RUST_TWIN)], env={"PARITY_TWIN_TIMING": "1"}) as proc:
        proc.request("header_hash", np.zeros((100, 276), np.uint8))
        t = proc.timing()
        assert t["ns"] > 0 and t["read_ns"] >= 0 and t["write_ns"] > 0
        with pytest.raises(TwinError):
            proc.request("nope")
        assert set(proc.timing()) == {"ns", "read_ns", "write_ns"}


def test_planted_build_differs_at_exactly_the_planted_blocks(twin, public_vectors):
    c, blocks, parent = public_chain(public_vectors)
    raw = [bytes.fromhex(h["header"]) for h in public_vectors["headers"]] + \
        [b.header for b in blocks]
    headers = _rows(raw, C.HEADER_SIZE)
    heights = headers[:, 4:12].copy().view("<u8").ravel()
    planted = np.flatnonzero(heights % PLANTED_EVERY == 0)
    assert 3 <= len(planted) < len(raw) // 10
    (good,) = twin.request("header_hash", headers)
    with TwinProcess([_binary(RUST_TWIN_PLANTED)]) as bad:
        (flipped,) = bad.request("header_hash", headers)
        differ = np.flatnonzero((good != flipped).any(axis=1))
        assert differ.tolist() == planted.tolist()
        assert ((good ^ flipped)[differ] == np.array([1] + [0] * 31, np.uint8)).all()  # byte 0, bit 0
        # only the header_hash function is planted: validation hashes correctly
        state = _new_state(bad)
        target = bytes.fromhex(c["difficulty_target"])
        assert _validate(bad, blocks, c["now"], target, anchor(parent), state) == \
            [b["expect"]["status"] for b in c["blocks"]]


def test_overlap_gives_the_same_answers(twin):
    """Headers and ids hashed as they arrive (PARITY_TWIN_OVERLAP=1) or after the whole
    request (the default) give the same replies, over several 1 MiB pieces too."""
    rng = np.random.default_rng(3)
    headers = rng.integers(0, 256, (10_000, C.HEADER_SIZE), dtype=np.uint8)
    lists = [[rng.bytes(32) for _ in range(n)] for n in rng.integers(0, 70, 1000)]
    ids, offsets = _merkle_args(lists)
    with TwinProcess([_binary(RUST_TWIN)], env={"PARITY_TWIN_OVERLAP": "1"}) as overlap:
        for op, args in (("header_hash", (headers,)), ("merkle_root", (ids, offsets))):
            assert np.array_equal(overlap.request(op, *args)[0], twin.request(op, *args)[0])
        assert np.array_equal(overlap.request("header_hash", headers)[0],
                              legacy.hash_headers(headers))


# --- through the harness: parity shadow --refactored exec:<the Rust twin> ----------------

@pytest.mark.parametrize("mode", ["1", "2", "3"])
def test_rust_twin_agrees_through_parity_shadow(chain, tmp_path, mode, capsys):
    """Every public chain block, all four functions: no mismatch, no error, and in mode 3
    the statuses the Rust twin serves are the vectors' expected ones."""
    corpus, expected, _ = chain
    code, report = shadow(tmp_path, corpus, "--mode", mode, "--refactored",
                          f"exec:{_binary(RUST_TWIN)}", "--results", str(tmp_path / "r.parquet"))
    assert code == 0 and report["mismatch_records_total"] == 0 and report["legacy_only"] == {}
    compared = 0 if mode == "3" else len(expected)
    assert set(report["functions"]) == set(FUNCTIONS)
    for f in report["functions"].values():
        assert (f["comparisons"], f["mismatches"], f["errors"]) == (compared, 0, 0)
    assert report["mode"]["end"] == report["mode"]["start"]
    assert pq.read_table(tmp_path / "r.parquet").column("status").to_pylist() == expected


def test_rust_planted_bug_found_through_parity_shadow_at_exactly_its_blocks(chain, tmp_path,
                                                                             capsys):
    corpus, _, heights = chain
    planted = [b for b, h in enumerate(heights) if h % PLANTED_EVERY == 0]
    assert planted  # the public chain crosses heights divisible by 50
    code, report = shadow(tmp_path, corpus, "--mode", "2", "--refactored",
                          f"exec:{_binary(RUST_TWIN_PLANTED)}")
    assert code == 1
    assert report["mismatched_blocks"] == {"header_hash": planted}
    assert report["mode"]["end"] == "shadow"  # mode 2 demoted at the first planted block
