"""Public entry points reject wrong dtypes, shapes and offsets, naming the argument."""
import numpy as np
import pytest

import kernels.jit as jit
import kernels.legacy as legacy
from kernels.jit import _selftest

TWINS = [legacy, jit]
OK_IDS = np.zeros((3, 32), np.uint8)


@pytest.mark.parametrize("twin", TWINS, ids=lambda t: t.NAME)
def test_headers_checked(twin):
    with pytest.raises(TypeError, match="headers"):
        twin.hash_headers(np.zeros((2, 276), np.int8))
    with pytest.raises(ValueError, match="headers"):
        twin.hash_headers(np.zeros((2, 275), np.uint8))
    with pytest.raises(ValueError, match="header"):
        twin.hash_header(b"\0" * 10)


@pytest.mark.parametrize("twin", TWINS, ids=lambda t: t.NAME)
@pytest.mark.parametrize("offsets, exc", [
    (np.array([0, 2], np.int32), TypeError),        # wrong dtype
    (np.array([0, 2, 1, 3], np.int64), ValueError),  # decreasing
    (np.array([1, 3], np.int64), ValueError),        # not starting at 0
    (np.array([0, 2], np.int64), ValueError),        # not ending at len(ids)
])
def test_offsets_checked(twin, offsets, exc):
    with pytest.raises(exc, match="offsets"):
        twin.merkle_roots(OK_IDS, offsets)


@pytest.mark.parametrize("twin", TWINS, ids=lambda t: t.NAME)
def test_ids_checked(twin):
    with pytest.raises(ValueError, match="ids"):
        twin.merkle_roots(np.zeros((3, 31), np.uint8), np.array([0, 3], np.int64))
    with pytest.raises(ValueError, match="txids"):
        twin.merkle_root([b"x" * 31])


@pytest.mark.parametrize("twin", TWINS, ids=lambda t: t.NAME)
def test_reveal_arrays_checked(twin):
    off = np.array([0, 1], np.int64)
    with pytest.raises(TypeError, match="numbers"):
        twin.check_solutions(np.zeros(1, np.int32), off, np.zeros(1, np.int64),
                             np.zeros(1, np.uint64), off)
    with pytest.raises(TypeError, match="indices"):
        twin.check_solutions(np.zeros(1, np.int64), off, np.zeros(1, np.int64),
                             np.zeros(1, np.int64), off)


def test_selftest_failure_blocks_the_jit_twin(monkeypatch):
    monkeypatch.setattr(_selftest, "KNOWN_ANSWERS", ((3, "00" * 32),))
    monkeypatch.setattr(_selftest, "_state", {"done": False, "error": None})
    with pytest.raises(_selftest.JitSelfTestError, match="self-test failed"):
        jit.hash_headers(np.zeros((1, 276), np.uint8))
    with pytest.raises(_selftest.JitSelfTestError):  # and it stays refused
        jit.merkle_root([bytes(32)])


def test_selftest_passes():
    _selftest.run_selftest()
