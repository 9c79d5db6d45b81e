"""A minimal client of the process-twin protocol (twins/PROTOCOL.md) for the Rust twin's
tests: start a twin process, send any request (also ones the harness never sends), read
replies. The frames are the harness's own (:mod:`parity.framing`)."""
from __future__ import annotations

import fcntl
import os
import struct
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from parity.framing import REQUEST_MAGIC, FrameError, decode_reply, request_parts

ROOT = Path(__file__).resolve().parent.parent

RUST_TWIN = ROOT / "twins" / "rust" / "target" / "release" / "parity-rust-twin"
RUST_TWIN_PLANTED = ROOT / "twins" / "rust" / "target" / "planted" / "release" / "parity-rust-twin"


class TwinError(Exception):
    """A status-1 reply: the twin's own error for one request."""


ProtocolError = FrameError  # a reply that breaks the framing (short, wrong magic, bad dtype)


def encode(op: str, arrays: Sequence[np.ndarray] = ()) -> list[bytes | memoryview]:
    """A request frame as a list of buffers (large arrays are not copied). The op name
    goes as UTF-8, so a test can send a name the harness (ASCII only) never would."""
    name = op.encode()
    _, *arrays_parts = request_parts("", arrays)
    return [REQUEST_MAGIC + struct.pack("<H", len(name)) + name, *arrays_parts]


class TwinProcess:
    """One twin process; ``request`` sends one frame and returns the reply's arrays."""

    def __init__(self, argv: Sequence[str | Path], env: dict[str, str] | None = None,
                 timeout: float = 120.0, pipe_size: int = 0) -> None:
        self.proc = subprocess.Popen([str(a) for a in argv], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0,
                                     env={**os.environ, **(env or {})})
        self.timeout = timeout
        if pipe_size:  # fewer, larger pipe transfers for large batches (Linux only)
            for f in (self.proc.stdin, self.proc.stdout):
                try:
                    fcntl.fcntl(f.fileno(), fcntl.F_SETPIPE_SZ, pipe_size)  # type: ignore[union-attr]
                except (OSError, AttributeError):
                    pass
        self.stderr = ""  # what the process wrote to stderr, once closed
        self._closed = False

    def __enter__(self) -> TwinProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write(self, data: bytes | memoryview) -> None:
        assert self.proc.stdin is not None
        view = memoryview(data)
        while view:
            n = self.proc.stdin.write(view)
            view = view[n:]

    def send(self, op: str, arrays: Sequence[np.ndarray] = ()) -> None:
        for part in encode(op, arrays):
            self.write(part)

    def _read(self, n: int) -> bytearray:
        buf = bytearray(n)
        view, got = memoryview(buf), 0
        assert self.proc.stdout is not None
        while got < n:
            k = self.proc.stdout.readinto(view[got:])
            if not k:
                raise ProtocolError(f"reply ended after {got} of {n} bytes")
            got += k
        return buf

    def receive(self) -> list[np.ndarray]:
        """The next reply's arrays; ``TwinError`` for status 1."""
        reply = decode_reply(self._read)
        if reply.status == 1:
            raise TwinError(reply.message)
        return reply.arrays

    def request(self, op: str, *arrays: np.ndarray) -> list[np.ndarray]:
        """Sends one request and reads its reply; the process is killed when the reply
        does not come within the timeout (the read then fails)."""
        timer = threading.Timer(self.timeout, self.proc.kill)
        timer.start()
        try:
            self.send(op, arrays)
            return self.receive()
        finally:
            timer.cancel()

    def timing(self) -> dict[str, int]:
        """What the twin reported on stderr for its last reply, with ``PARITY_TWIN_TIMING=1``
        (``parity-twin-timing op=NAME ns=N read_ns=R write_ns=W``): the numbers by key."""
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline().decode()
        if not line.startswith("parity-twin-timing "):
            raise ProtocolError(f"expected a timing line, got {line!r}")
        fields = dict(f.split("=", 1) for f in line.split()[1:])
        return {k: int(v) for k, v in fields.items() if k != "op"}

    def close(self, timeout: float = 30.0) -> int:
        """Closes stdin, waits and returns the exit code (stderr's text kept in ``stderr``)."""
        if not self._closed:
            self._closed = True
            try:
                _, err = self.proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                _, err = self.proc.communicate()
            self.stderr = err.decode(errors="replace")
        return self.proc.returncode


def u8(data: bytes) -> np.ndarray:
    return np.frombuffer(data, np.uint8).copy()


def handle(h: int) -> np.ndarray:
    return np.array([h], np.uint64)


def anchor(parent: tuple[int, bytes, int] | None) -> np.ndarray:
    """A parent as the ``validate`` request's ``uint8[P]``: none, or the 48-byte anchor."""
    if parent is None:
        return np.zeros(0, np.uint8)
    height, p_hash, ts = parent
    return u8(struct.pack("<Q", height) + p_hash + struct.pack("<q", ts))
