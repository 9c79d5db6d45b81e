"""A process twin in Python: the reference example of ``twins/PROTOCOL.md``.

Run by the harness as ``parity shadow CORPUS --refactored exec:"python twins/python/twin.py"``.
It reads requests on stdin and answers each on stdout, computing with ``kernels.legacy``
(or ``--impl kernels.jit``). The framing is written out here on purpose, with nothing
but ``struct`` and numpy, as a model for a twin in another language.

Options for trying the harness: ``--functions a,b`` implements only those (a partial
twin); ``--flip-heights H,...`` flips bit 0 of byte 0 of the header hash of blocks at
those heights (a planted bug); ``--crash-at N``, ``--hang-at N``, ``--garbage-at N`` and
``--error-at N`` exit abruptly, stop answering, write junk or answer status 1 on the
Nth function request (header_hash, merkle_root, commitment or validate; counted from 1,
``hello`` and the replay ops not counted).
"""
from __future__ import annotations

import argparse
import copy
import importlib
import os
import struct
import sys
import time
from pathlib import Path

import numpy as np

DTYPES = {1: np.dtype("u1"), 2: np.dtype("<u4"), 3: np.dtype("<i8"), 4: np.dtype("<u8")}
CODES = {dt: code for code, dt in DTYPES.items()}
FUNCTIONS = ("header_hash", "merkle_root", "validate", "commitment")
OFF_HEIGHT = 4  # a header's height: u64 at byte 4 (SPEC section 1)


def read_exactly(stream, n: int) -> bytearray:
    buf = bytearray(n)
    view, pos = memoryview(buf), 0
    while pos < n:
        got = stream.readinto(view[pos:])
        if not got:
            raise EOFError
        pos += got
    return buf


def read_request(stream) -> tuple[str, list[np.ndarray]]:
    """``"PTWQ" u16 op_len op u32 n_arrays``, then each array: ``u8 dtype u8 ndim
    u64 dims... data``."""
    if read_exactly(stream, 4) != b"PTWQ":
        raise ValueError("bad request magic")
    (op_len,) = struct.unpack("<H", read_exactly(stream, 2))
    op = read_exactly(stream, op_len).decode("ascii")
    (count,) = struct.unpack("<I", read_exactly(stream, 4))
    arrays = []
    for _ in range(count):
        code, ndim = struct.unpack("<BB", read_exactly(stream, 2))
        shape = struct.unpack(f"<{ndim}Q", read_exactly(stream, 8 * ndim))
        dtype = DTYPES[code]
        size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        arrays.append(np.frombuffer(read_exactly(stream, size), dtype).reshape(shape))
    return op, arrays


def ok_reply(arrays: list[np.ndarray]) -> list:
    """The reply's parts: ``"PTWR" 0 u32 n_arrays``, then each array's head and data."""
    out = [b"PTWR\0" + struct.pack("<I", len(arrays))]
    for a in arrays:
        a = np.ascontiguousarray(a)
        out.append(struct.pack(f"<BB{a.ndim}Q", CODES[a.dtype], a.ndim, *a.shape))
        out.append(memoryview(a.reshape(-1)).cast("B"))
    return out


def error_reply(message: str) -> list:
    msg = message.encode("utf-8")
    return [b"PTWR\1" + struct.pack("<I", len(msg)) + msg]


def parent_of(raw: np.ndarray):
    """No parent (0 bytes), an anchor (height u64, hash 32, timestamp i64: 48 bytes) or
    the parent's 276-byte header."""
    if raw.size == 0:
        return None
    if raw.size == 48:
        height, digest, timestamp = struct.unpack("<Q32sq", raw.tobytes())
        return (height, digest, timestamp)
    return raw.tobytes()


class Twin:
    def __init__(self, impl, functions: tuple[str, ...], flip: set[int]) -> None:
        self.impl, self.functions, self.flip = impl, functions, flip
        self.states: dict[int, object] = {}
        self.next_handle = 1

    def _new(self, state) -> list[np.ndarray]:
        handle, self.next_handle = self.next_handle, self.next_handle + 1
        self.states[handle] = state
        return [np.array([handle], np.uint64)]

    def answer(self, op: str, a: list[np.ndarray]) -> list[np.ndarray]:
        if op == "hello":
            return [np.frombuffer(",".join(self.functions).encode(), np.uint8)]
        if op in FUNCTIONS and op not in self.functions:
            raise ValueError(f"{op} is not implemented by this twin")
        if op == "header_hash":
            out = np.asarray(self.impl.hash_headers(a[0]), np.uint8)
            heights = np.ascontiguousarray(a[0][:, OFF_HEIGHT:OFF_HEIGHT + 8]).view("<u8")
            out[np.isin(heights.ravel(), list(self.flip)), 0] ^= 1
            return [out]
        if op == "merkle_root":
            return [np.asarray(self.impl.merkle_roots(a[0], a[1]), np.uint8)]
        if op == "commitment":
            return [np.asarray(self.impl.commitments(*a), np.uint8)]
        if op == "validate":
            status = self.impl.validate_blocks(
                *a[:8], now=int(a[8][0]), difficulty_target=a[9].tobytes(),
                parent=parent_of(a[10]), replay=self.states[int(a[11][0])])
            return [np.asarray(status, np.uint32)]
        if op == "replay_new":
            return self._new(self.impl.new_replay_state())
        if op == "replay_update":
            self.states[int(a[0][0])].update([r.tobytes() for r in a[1]])
            return []
        if op == "replay_clone":
            return self._new(copy.deepcopy(self.states[int(a[0][0])]))
        if op == "replay_free":
            del self.states[int(a[0][0])]
            return []
        raise ValueError(f"unknown op {op!r}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--impl", default="kernels.legacy", help="the module computing the answers")
    p.add_argument("--functions", default=",".join(FUNCTIONS),
                   help="the functions to implement, comma-separated (default all)")
    p.add_argument("--flip-heights", default="", help="heights whose header hash gets a bit flipped")
    for fault in ("crash", "hang", "garbage", "error"):
        p.add_argument(f"--{fault}-at", type=int, default=0, metavar="N")
    args = p.parse_args()
    try:
        impl = importlib.import_module(args.impl)
    except ImportError:  # run from a checkout: the project root holds kernels/
        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
        impl = importlib.import_module(args.impl)
    functions = tuple(f for f in args.functions.split(",") if f)
    twin = Twin(impl, functions, {int(h) for h in args.flip_heights.split(",") if h})
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    calls = 0
    while True:
        try:
            op, arrays = read_request(stdin)
        except EOFError:
            return 0  # stdin closed: the harness is done with us
        if op in FUNCTIONS:
            calls += 1
            if calls == args.crash_at:
                print(f"twin: crashing on purpose at request {calls}", file=sys.stderr, flush=True)
                os._exit(3)
            if calls == args.hang_at:
                print(f"twin: hanging on purpose at request {calls}", file=sys.stderr, flush=True)
                time.sleep(3600)
            if calls == args.garbage_at:
                stdout.write(b"this is not a reply" * 4)
                stdout.flush()
                continue
        try:
            if op in FUNCTIONS and calls == args.error_at:
                raise RuntimeError(f"planted error at request {calls}")
            reply = ok_reply(twin.answer(op, arrays))
        except Exception as exc:  # the twin's own error: status 1, stay ready
            reply = error_reply(f"{type(exc).__name__}: {exc}")
        for part in reply:
            stdout.write(part)
        stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
