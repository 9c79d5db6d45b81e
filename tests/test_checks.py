"""kernels.checks: twin-neutral argument checks and CSR packing, and both twins
rejecting bad arguments with the same exception."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import kernels.jit as jit
import kernels.legacy as legacy
from kernels import checks
from kernels import constants as C
from kernels.constants import Block


@given(st.lists(st.lists(st.integers(C.I64_MIN, C.I64_MAX), max_size=5), max_size=8))
def test_pack_unpack_round_trip(lists):
    values, offsets = checks.pack(lists, np.int64, "numbers")
    assert values.dtype == np.int64 and offsets.dtype == np.int64
    assert offsets.tolist()[0] == 0 and offsets[-1] == values.shape[0]
    assert checks.unpack(values, offsets) == lists
    checks.offsets(offsets, "num_offsets", values.shape[0], "numbers")  # packs what it checks


@given(st.lists(st.lists(st.binary(min_size=32, max_size=32), max_size=4), max_size=6))
def test_pack_fixed_width(lists):
    values, offsets = checks.pack(lists, np.uint8, "txids", 32)
    assert values.shape == (sum(map(len, lists)), 32) and values.flags.writeable
    assert checks.unpack(values, offsets) == lists


def test_pack_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"txids\[1\]\[0\]: expected 32 bytes, got 31"):
        checks.pack([[bytes(32)], [bytes(31)]], np.uint8, "txids", 32)
    with pytest.raises(ValueError, match="indices: every item must fit uint64"):
        checks.pack([[-1]], np.uint64, "indices")
    with pytest.raises(ValueError, match=r"blocks\[0\].header: expected 276 bytes"):
        checks.pack_blocks([Block(b"x", [], [], 0, [])])


def test_pack_blocks_is_validate_blocks_input():
    blocks = [Block(bytes(276), [bytes(32)] * k, list(range(k)), k, [0] * k) for k in (0, 2, 3)]
    headers, ids, id_off, nums, num_off, targets, idxs, idx_off = checks.pack_blocks(blocks)
    assert headers.shape == (3, 276) and ids.shape == (5, 32)
    assert id_off.tolist() == num_off.tolist() == idx_off.tolist() == [0, 0, 2, 5]
    assert targets.tolist() == [0, 2, 3] and idxs.dtype == np.uint64
    assert checks.pack_blocks([])[0].shape == (0, 276)


@pytest.mark.parametrize("offsets, message", [
    (np.array([0, 2], np.int32), "offsets: expected a numpy int64 array, got int32 array"),
    ([0, 3], "offsets: expected a numpy int64 array, got list"),
    (np.zeros((1, 2), np.int64), r"offsets: expected shape \[N \+ 1\], got \[1, 2\]"),
    (np.zeros(0, np.int64), "offsets: expected at least one entry"),
    (np.array([1, 3], np.int64), "offsets: must start at 0, starts at 1"),
    (np.array([0, 2, 1, 3], np.int64), "offsets: must never decrease, decreases after entry 1"),
    (np.array([0, 2], np.int64), r"offsets: must end at len\(ids\) = 3, ends at 2"),
])
def test_offsets_messages(offsets, message):
    with pytest.raises((TypeError, ValueError), match=message):
        checks.ids(np.zeros((3, 32), np.uint8), offsets)


def test_array_returns_contiguous():
    strided = np.zeros((4, 600), np.uint8)[:, ::2][:, :276]
    out = checks.headers(strided)
    assert out.flags.c_contiguous and out.shape == (4, 276)
    ok = np.zeros((2, 276), np.uint8)
    assert checks.headers(ok) is ok  # no copy when already contiguous


def _bad_inputs():
    """(function name, args, kwargs) that every twin must reject identically."""
    hdr = np.zeros((2, 276), np.uint8)
    ids, off2 = np.zeros((3, 32), np.uint8), np.array([0, 1, 3], np.int64)
    nums, idxs = np.zeros(2, np.int64), np.zeros(2, np.uint64)
    tg = np.zeros(2, np.int64)
    kw = {"now": 0, "difficulty_target": bytes(32)}
    va = (hdr, ids, off2, nums, np.array([0, 1, 2], np.int32), tg, idxs,
          np.array([0, 1, 2], np.int64))
    return [
        ("hash_headers", (np.zeros((2, 276), np.int8),), {}),
        ("hash_headers", (np.zeros(276, np.uint8),), {}),
        ("hash_header", (b"\0" * 10,), {}),
        ("decode_header", ("x" * 276,), {}),
        ("merkle_roots", (ids, np.array([0, 3, 2], np.int64)), {}),
        ("merkle_root", ([bytes(32), b"x"],), {}),
        ("check_solutions", (nums, np.array([0, 1, 2]), tg[:1], idxs, np.array([0, 2])), {}),
        ("reveal_hashes", (nums, np.array([0, 2], np.int64), tg[:1], idxs,
                           np.array([0, 2], np.int64), np.zeros((2, 32), np.uint8)), {}),
        ("commitment", (bytes(32), bytes(31), bytes(32)), {}),
        ("commitments", (hdr, nums, np.array([0, 2], np.int64), tg[:1], idxs,
                         np.array([0, 2], np.int64)), {}),
        ("validate_blocks", va, kw),
        ("validate_blocks", (hdr, ids, off2, nums, np.array([0, 1, 2], np.int64), tg, idxs,
                             np.array([0, 1, 2], np.int64)), {"now": 0,
                                                              "difficulty_target": bytes(31)}),
        ("validate_blocks", (hdr, ids, off2[:2], nums, np.array([0, 1, 2], np.int64), tg,
                             idxs, np.array([0, 1, 2], np.int64)), kw),
        ("validate_chain", ([], 0, bytes(5)), {}),
    ]


@pytest.mark.parametrize("case", range(len(_bad_inputs())))
def test_twins_reject_bad_inputs_identically(case):
    """The same exception type and message from both twins (a match in shadow mode)."""
    name, args, kwargs = _bad_inputs()[case]
    outcomes = []
    for twin in (legacy, jit):
        with pytest.raises((TypeError, ValueError)) as info:
            getattr(twin, name)(*args, **kwargs)
        outcomes.append((type(info.value), str(info.value)))
    assert outcomes[0] == outcomes[1]
