"""The shared-memory transport of process twins (``twins/PROTOCOL.md``, "Shared memory").

A :class:`Segment` is a file in ``/dev/shm`` (mode 0600, a unique name) mapped by the
harness, which copies a request's large arrays into it; the twin maps it read-only after
``shm_attach`` names its path, and the harness unlinks the path as soon as that request
is answered (or failed), so no file outlives the exchange. ``PARITY_TWIN_SHM=0`` turns
the transport off (every array goes through the pipe); ``PARITY_TWIN_SHM=all`` sends
every array of every request through it (for tests: small corpora never reach the
thresholds).
"""
from __future__ import annotations

import mmap
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from parity.framing import SHM_ARRAY_MIN, wire

ENV = "PARITY_TWIN_SHM"
SHM_DIR = Path("/dev/shm")
PREFIX = "parity-twin-"
MIN_REQUEST = 1 << 20   # requests with fewer bytes of arrays than this use the pipe alone
GRANULE = 1 << 20       # segment sizes are multiples of this


def thresholds() -> tuple[int, int] | None:
    """The bytes of arrays a request needs and an array needs to go to shared memory,
    or None when the transport is off (``PARITY_TWIN_SHM=0``, or no ``/dev/shm``)."""
    value = os.environ.get(ENV, "1").strip().lower()
    if value == "0" or not SHM_DIR.is_dir():
        return None
    return (0, 0) if value == "all" else (MIN_REQUEST, SHM_ARRAY_MIN)


def segment_size(needed: int) -> int:
    """The size of a new segment for ``needed`` bytes: a quarter more, in whole MiB, so a
    slightly larger next request does not need a new one."""
    return max(1, -(-(needed + needed // 4) // GRANULE)) * GRANULE


class Segment:
    """A shared-memory file mapped read-write; :meth:`unlink` removes its name (the
    mapping stays), :meth:`close` unmaps it."""

    def __init__(self, size: int) -> None:
        fd, name = tempfile.mkstemp(prefix=PREFIX, dir=SHM_DIR)  # mode 0600
        self.path = Path(name)
        try:
            os.ftruncate(fd, size)
            self.map: mmap.mmap | None = mmap.mmap(fd, size)
        except BaseException:
            self.unlink()
            raise
        finally:
            os.close(fd)
        self.size = size

    def unlink(self) -> None:
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass

    def write(self, arrays: Sequence[np.ndarray], placed: Mapping[int, int]) -> None:
        """Copy the arrays numbered in ``placed`` to their offsets (one copy each)."""
        assert self.map is not None
        room = np.frombuffer(self.map, np.uint8)
        try:
            for k, offset in placed.items():
                data = wire(arrays[k])[1]
                room[offset:offset + data.size] = data
        finally:
            del room  # the mapping can only close with no views left

    def close(self) -> None:
        self.unlink()
        if self.map is not None:
            self.map.close()
            self.map = None
