"""A process twin in Python: the reference example of ``twins/PROTOCOL.md``.

Run by the harness as ``parity shadow CORPUS --refactored exec:"python twins/python/twin.py"``.
It reads requests on stdin and answers each on stdout, computing with ``kernels.legacy``
(or ``--impl kernels.jit``). The framing is written out here on purpose, with nothing
but ``struct`` and numpy, as a model for a twin in another language.

It offers the shared-memory transport (``hello``'s second array ``shm``): after
``shm_attach`` it maps the named file read-only with numpy, and arrays whose dtype byte
has 0x80 set are read from there at the ``u64`` offset that replaces their data
(``--no-shm`` does not offer it).

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
SHM_FLAG, SHM_ALIGN = 0x80, 64
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


def read_request(stream, segment) -> tuple[str, list[np.ndarray], str]:
    """``"PTWQ" u16 op_len op u32 n_arrays``, then each array: ``u8 dtype u8 ndim
    u64 dims... data``, or with dtype | 0x80 ``u8 dtype u8 ndim u64 dims... u64 offset``
    into ``segment`` (the mapped shared memory, or None). The whole frame is read even
    when an offset is wrong: that is this request's error (the third item), the stream
    stays in step."""
    if read_exactly(stream, 4) != b"PTWQ":
        raise ValueError("bad request magic")
    (op_len,) = struct.unpack("<H", read_exactly(stream, 2))
    op = read_exactly(stream, op_len).decode("ascii")
    (count,) = struct.unpack("<I", read_exactly(stream, 4))
    arrays, problem = [], ""
    for k in range(count):
        code, ndim = struct.unpack("<BB", read_exactly(stream, 2))
        shape = struct.unpack(f"<{ndim}Q", read_exactly(stream, 8 * ndim))
        dtype = DTYPES[code & ~SHM_FLAG]
        size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if not code & SHM_FLAG:
            arrays.append(np.frombuffer(read_exactly(stream, size), dtype).reshape(shape))
            continue
        (offset,) = struct.unpack("<Q", read_exactly(stream, 8))
        if segment is None:
            problem = problem or f"array {k} is in shared memory but none is attached"
        elif offset % SHM_ALIGN or offset + size > segment.size:
            problem = problem or (f"array {k}: bytes {offset}..{offset + size} are not an "
                                  f"aligned range of the {segment.size}-byte segment")
        else:
            arrays.append(segment[offset:offset + size].view(dtype).reshape(shape))
    return op, arrays, problem


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
        self.shm = True  # offered in hello
        self.segment: np.ndarray | None = None  # the attached shared memory

    def attach(self, path: np.ndarray, size: np.ndarray) -> list[np.ndarray]:
        """Map the named file read-only (the old segment, if any, is dropped)."""
        self.segment = None
        name, n = path.tobytes().decode(), int(size[0])
        if os.path.getsize(name) < n:
            raise ValueError(f"size {n} is larger than the file {name}")
        self.segment = np.memmap(name, np.uint8, mode="r", shape=(n,)) if n else np.zeros(0, np.uint8)
        return []

    def _new(self, state) -> list[np.ndarray]:
        handle, self.next_handle = self.next_handle, self.next_handle + 1
        self.states[handle] = state
        return [np.array([handle], np.uint64)]

    def answer(self, op: str, a: list[np.ndarray]) -> list[np.ndarray]:
        if op == "hello":
            hello = [np.frombuffer(",".join(self.functions).encode(), np.uint8)]
            return hello + [np.frombuffer(b"shm", np.uint8)] if self.shm else hello
        if op == "shm_attach" and self.shm:
            return self.attach(*a)
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
    p.add_argument("--no-shm", action="store_true", help="do not offer shared memory")
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
    twin.shm = not args.no_shm
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    calls = 0
    while True:
        try:
            op, arrays, problem = read_request(stdin, twin.segment)
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
            if problem:
                raise ValueError(problem)
            reply = ok_reply(twin.answer(op, arrays))
        except Exception as exc:  # the twin's own error: status 1, stay ready
            reply = error_reply(f"{type(exc).__name__}: {exc}")
        for part in reply:
            stdout.write(part)
        stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
