"""The process-twin framing of ``twins/PROTOCOL.md``: requests and replies as bytes.

A request is ``"PTWQ" u16 op_len op u32 n_arrays array*``, a reply ``"PTWR" u8 status``
then either ``u32 n_arrays array*`` (status 0) or ``u32 msg_len msg`` (status 1); an
array is ``u8 dtype u8 ndim u64 dim*ndim`` and its little-endian elements in C order.
Decoding reads from a ``read(n) -> bytes`` callable that returns exactly ``n`` bytes or
raises, so the same code parses a pipe and a buffer. With the shared-memory transport
an array's dtype byte has :data:`SHM_FLAG` set and a ``u64`` byte offset into the
attached segment replaces its data (:func:`place` lays a request's arrays out there).
"""
from __future__ import annotations

import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

REQUEST_MAGIC = b"PTWQ"
REPLY_MAGIC = b"PTWR"
#: wire code -> little-endian numpy dtype
DTYPES: dict[int, np.dtype] = {1: np.dtype("u1"), 2: np.dtype("<u4"), 3: np.dtype("<i8"),
                               4: np.dtype("<u8")}
CODES = {dt: code for code, dt in DTYPES.items()}
MAX_NDIM = 8
MAX_OP = 64
MAX_ARRAYS = 64
MAX_MESSAGE = 1 << 20
SHM_FLAG = 0x80            # in a request array's dtype byte: its data is in the segment
SHM_ALIGN = 64             # the offset of an array in the segment is a multiple of this
SHM_ARRAY_MIN = 1 << 12    # arrays smaller than this stay in the pipe

Read = Callable[[int], bytes | bytearray]


class FrameError(ValueError):
    """Bytes that are not a frame of the protocol (what was wrong, in the message)."""


@dataclass
class Reply:
    status: int
    arrays: list[np.ndarray]
    message: str = ""


def wire(a: np.ndarray) -> tuple[int, np.ndarray]:
    """An array's dtype code and its little-endian C-order elements as flat bytes (a view
    of ``a`` itself when it already is that: large batches are never copied)."""
    dt = np.dtype(a.dtype).newbyteorder("<") if a.dtype.byteorder == ">" else np.dtype(a.dtype)
    code = CODES.get(dt)
    if code is None:
        raise TypeError(f"dtype {a.dtype} is not one of uint8, uint32, int64, uint64")
    if a.ndim > MAX_NDIM:
        raise ValueError(f"{a.ndim} dimensions, at most {MAX_NDIM}")
    return code, np.ascontiguousarray(a, dtype=dt).reshape(-1).view(np.uint8)


def array_parts(a: np.ndarray, offset: int | None = None) -> tuple[bytes, memoryview]:
    """One array: its dtype code and shape, then its elements, or (``offset``, the
    shared-memory form) the flagged code, the shape and the offset, with no data."""
    code, data = wire(a)
    if offset is None:
        return struct.pack(f"<BB{a.ndim}Q", code, a.ndim, *a.shape), data.data
    return (struct.pack(f"<BB{a.ndim}QQ", code | SHM_FLAG, a.ndim, *a.shape, offset),
            memoryview(b""))


def encode_array(a: np.ndarray) -> bytes:
    return b"".join(array_parts(a))


def _arrays(arrays: Sequence[np.ndarray], placed: Mapping[int, int] | None = None
            ) -> list[bytes | memoryview]:
    parts: list[bytes | memoryview] = [struct.pack("<I", len(arrays))]
    for k, a in enumerate(arrays):
        parts += array_parts(a, None if placed is None else placed.get(k))
    return parts


def request_parts(op: str, arrays: Sequence[np.ndarray],
                  placed: Mapping[int, int] | None = None) -> list[bytes | memoryview]:
    """A request as buffers to write one after the other; the arrays numbered in
    ``placed`` are sent as offsets into the segment (their data must be there)."""
    name = op.encode("ascii")
    return [REQUEST_MAGIC + struct.pack("<H", len(name)) + name, *_arrays(arrays, placed)]


def encode_request(op: str, arrays: Sequence[np.ndarray],
                   placed: Mapping[int, int] | None = None) -> bytes:
    return b"".join(request_parts(op, arrays, placed))


def place(arrays: Sequence[np.ndarray], min_array: int = SHM_ARRAY_MIN
          ) -> tuple[dict[int, int], int]:
    """Where a request's arrays of at least ``min_array`` bytes go in a segment: array
    number -> offset (multiples of :data:`SHM_ALIGN`, in order), and the bytes used."""
    placed, end = {}, 0
    for k, a in enumerate(arrays):
        if a.nbytes >= min_array:
            placed[k] = end
            end += -(-a.nbytes // SHM_ALIGN) * SHM_ALIGN
    return placed, end


def encode_reply(arrays: Sequence[np.ndarray] = (), error: str | None = None) -> bytes:
    """A status-0 reply with ``arrays``, or (``error``) a status-1 reply."""
    if error is None:
        return REPLY_MAGIC + b"\0" + b"".join(_arrays(arrays))
    msg = error.encode("utf-8")
    return REPLY_MAGIC + b"\1" + struct.pack("<I", len(msg)) + msg


def decode_array(read: Read, max_bytes: int, segment: np.ndarray | None = None
                 ) -> np.ndarray:
    """One array from the stream, or from ``segment`` (flat uint8) when its dtype byte
    has :data:`SHM_FLAG`: a view there, refused unless aligned and inside it."""
    code, ndim = struct.unpack("<BB", read(2))
    shared = bool(code & SHM_FLAG)
    code &= ~SHM_FLAG
    if code not in DTYPES:
        raise FrameError(f"unknown dtype code {code}")
    if ndim > MAX_NDIM:
        raise FrameError(f"{ndim} dimensions, at most {MAX_NDIM}")
    shape = struct.unpack(f"<{ndim}Q", read(8 * ndim))
    dt = DTYPES[code]
    count = 1
    for d in shape:
        count *= d
    size = count * dt.itemsize
    if size > max_bytes:
        raise FrameError(f"an array of shape {shape} ({size:,} bytes) is over the limit of "
                         f"{max_bytes:,}")
    if not shared:
        return np.frombuffer(read(size), dtype=dt).reshape(shape)
    (offset,) = struct.unpack("<Q", read(8))
    if segment is None:
        raise FrameError("an array in shared memory, but no segment is attached")
    if offset % SHM_ALIGN:
        raise FrameError(f"shared-memory offset {offset} is not a multiple of {SHM_ALIGN}")
    if offset + size > len(segment):
        raise FrameError(f"shared-memory bytes {offset}..{offset + size} are outside the "
                         f"segment of {len(segment):,}")
    return segment[offset:offset + size].view(dt).reshape(shape)


def decode_arrays(read: Read, max_bytes: int, segment: np.ndarray | None = None
                  ) -> list[np.ndarray]:
    (n,) = struct.unpack("<I", read(4))
    if n > MAX_ARRAYS:
        raise FrameError(f"{n} arrays, at most {MAX_ARRAYS}")
    return [decode_array(read, max_bytes, segment) for _ in range(n)]


def decode_request(read: Read, max_bytes: int = 1 << 40, segment: np.ndarray | None = None
                   ) -> tuple[str, list[np.ndarray]]:
    magic = bytes(read(4))
    if magic != REQUEST_MAGIC:
        raise FrameError(f"bad request magic {magic!r}")
    (n,) = struct.unpack("<H", read(2))
    if n > MAX_OP:
        raise FrameError(f"an op name of {n} bytes, at most {MAX_OP}")
    try:
        op = read(n).decode("ascii")
    except UnicodeDecodeError:
        raise FrameError("an op name that is not ASCII") from None
    return op, decode_arrays(read, max_bytes, segment)


def decode_reply(read: Read, max_bytes: int = 1 << 40) -> Reply:
    magic = bytes(read(4))
    if magic != REPLY_MAGIC:
        raise FrameError(f"bad reply magic {magic!r}")
    status = read(1)[0]
    if status == 0:
        return Reply(0, decode_arrays(read, max_bytes))
    if status != 1:
        raise FrameError(f"unknown reply status {status}")
    (n,) = struct.unpack("<I", read(4))
    if n > MAX_MESSAGE:
        raise FrameError(f"an error message of {n:,} bytes, at most {MAX_MESSAGE:,}")
    return Reply(1, [], read(n).decode("utf-8", errors="replace"))


def buffer_reader(data: bytes) -> Read:
    """A ``read(n)`` over ``data`` that raises :class:`FrameError` past its end."""
    view, pos = memoryview(data), 0

    def read(n: int) -> bytes:
        nonlocal pos
        if pos + n > len(view):
            raise FrameError(f"short frame: wanted {n} bytes at offset {pos}, "
                             f"{len(view) - pos} left")
        pos += n
        return bytes(view[pos - n:pos])
    return read
