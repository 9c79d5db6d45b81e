"""Once-per-process self-test of the numba BLAKE3 before the JIT twin is used.

Known-answer digests are the official BLAKE3 vectors (input byte i = i % 251),
covering one block, a partial block, one chunk and a chunk tree.
"""
from __future__ import annotations

import threading

import numpy as np

from kernels.jit._blake3 import hash_rows_into

KNOWN_ANSWERS: tuple[tuple[int, str], ...] = (
    (0, "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"),
    (1, "2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213"),
    (64, "4eed7141ea4a5cd4b788606bd23f46e212af9cacebacdc7d1f4c6dc7f2511b98"),
    (65, "de1e5fa0be70df6d2be8fffd0e99ceaa8eb6e8c93a63f2d8d1c30ecb6b263dee"),
    (1024, "42214739f095a406f3fc83deb889744ac00df831c10daa55189b5d121c855af7"),
    (1025, "d00278ae47eb27b34faecf67b4fe263f82d5412916c1ffd97c8cb7fb814b8444"),
    (3073, "7124b49501012f81cc7f11ca069ec9226cecb8a2c850cfe644e327d22d3e1cd3"),
)


class JitSelfTestError(RuntimeError):
    """The numba kernels gave a wrong answer on a known vector: do not use them."""


_lock = threading.Lock()
_state: dict[str, object] = {"done": False, "error": None}


def _replay_selftest() -> None:
    """The replay table must find every repeat, across a growth (rehash) of the table."""
    from kernels.jit._replay import ReplayState
    keys = np.arange(400, dtype=np.uint64).repeat(4).reshape(-1, 4)
    state = ReplayState(16)
    first = state.mark(keys)
    again = state.mark(keys[::-1].copy())
    if first.any() or not again.all() or len(state) != 400:
        raise JitSelfTestError("numba replay-table self-test failed: repeats missed or invented")


def run_selftest() -> None:
    """Hash every known-answer input, alone and as 17 equal rows (full lanes and a tail),
    then check the replay table."""
    for length, expected in KNOWN_ANSWERS:
        data = (np.arange(length, dtype=np.int64) % 251).astype(np.uint8)
        for rows in (1, 17):
            out = np.empty((rows, 32), dtype=np.uint8)
            hash_rows_into(np.ascontiguousarray(np.tile(data, (rows, 1))), out, False)
            for r in range(rows):
                if out[r].tobytes().hex() != expected:
                    raise JitSelfTestError(
                        f"numba BLAKE3 self-test failed: input of {length} bytes "
                        f"(row {r} of {rows}) hashed to {out[r].tobytes().hex()}, "
                        f"expected {expected}")
    _replay_selftest()


def is_ready() -> bool:
    """True once the self-test has passed in this process (a cheap check per call)."""
    return bool(_state["done"]) and _state["error"] is None


def ensure_ready() -> None:
    """Run the self-test once per process; raise :class:`JitSelfTestError` on failure."""
    if _state["done"]:
        if _state["error"] is not None:
            raise JitSelfTestError(str(_state["error"]))
        return
    with _lock:
        if not _state["done"]:
            try:
                run_selftest()
            except JitSelfTestError as exc:
                _state["error"] = exc
            _state["done"] = True
    if _state["error"] is not None:
        raise JitSelfTestError(str(_state["error"]))
