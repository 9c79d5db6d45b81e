"""Arguments and replies of process-twin calls (:mod:`parity.proctwin`): arguments as the
protocol's arrays, the parent as its bytes, replies checked against what was expected,
and the proxy for a replay state that lives in the twin process."""
from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from parity.proctwin import ProcessTwin

_U8, _U32, _I64, _U64 = (np.dtype(t) for t in ("u1", "<u4", "<i8", "<u8"))


def arg(a: Any, dtype: np.dtype, name: str) -> np.ndarray:
    """``a`` as a C-contiguous array of ``dtype``; TypeError when it does not fit safely."""
    arr = np.asarray(a)
    if arr.dtype != dtype and not np.can_cast(arr.dtype, dtype, "safe"):
        raise TypeError(f"{name}: dtype {arr.dtype} does not fit {dtype}")
    return np.ascontiguousarray(arr, dtype=dtype)


def parent_bytes(parent: Any) -> np.ndarray:
    """``parent`` as the protocol's bytes: none, a 48-byte anchor or a 276-byte header."""
    if parent is None:
        return np.zeros(0, np.uint8)
    if isinstance(parent, tuple):
        height, digest, timestamp = parent
        raw = struct.pack("<Q32sq", int(height), bytes(digest), int(timestamp))
    else:
        raw = bytes(np.asarray(parent, dtype=np.uint8).tobytes()
                    if isinstance(parent, np.ndarray) else parent)
    return np.frombuffer(raw, np.uint8).copy()


class ReplayProxy:
    """A replay state living in the twin process, named by its handle. Dropped, its
    handle is freed with the twin's next request; deep-copied, it is cloned there."""

    def __init__(self, twin: ProcessTwin, handle: int, generation: int) -> None:
        self.twin, self.handle, self.generation = twin, handle, generation

    def _h(self) -> np.ndarray:
        return np.array([self.handle], _U64)

    def update(self, commitments: Iterable[bytes]) -> None:
        rows = [bytes(c) for c in commitments]
        if any(len(r) != 32 for r in rows):
            raise ValueError("a commitment is not 32 bytes")
        arr = np.frombuffer(b"".join(rows), np.uint8).reshape(-1, 32)
        self.twin.request("replay_update", [self._h(), arr], (), len(rows), self.generation)

    def __deepcopy__(self, memo: dict) -> ReplayProxy:
        (h,) = self.twin.request("replay_clone", [self._h()], [(_U64, (1,))], 1, self.generation)
        return ReplayProxy(self.twin, int(h[0]), self.generation)

    def __del__(self) -> None:
        try:
            self.twin._drop(self.generation, self.handle)
        except Exception:  # interpreter shutdown: the process goes anyway
            pass


def check_reply(arrays: list[np.ndarray], expect: Sequence[tuple[np.dtype, tuple[int, ...]]]
                 ) -> str | None:
    """What is wrong with a reply's arrays, or None."""
    if len(arrays) != len(expect):
        return f"{len(arrays)} reply arrays, expected {len(expect)}"
    for i, (a, (dtype, shape)) in enumerate(zip(arrays, expect)):
        if a.dtype != dtype or a.shape != shape:
            return (f"reply array {i} is {a.dtype}{list(a.shape)}, expected "
                    f"{dtype}{list(shape)}")
    return None
