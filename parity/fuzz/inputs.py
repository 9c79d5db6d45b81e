"""The fuzz input format: bytes <-> a base block plus a list of perturbations.

An input is a 4-byte prelude and fixed-size operations, so libFuzzer's byte mutations
stay meaningful and the custom mutator (:mod:`parity.fuzz.mutate`) can write whole
operations::

    base  u16   which pool block to start from (modulo the pool size)
    flags u8    bits 0-1 parent (0 keep, 1 none, 2 as an anchor, 3 as a header);
                bit 2 link to the parent (height, prev_hash); bit 3 recompute the
                transactions root; bit 4 recompute the reveal (target, problem hash,
                commitment); bit 5 re-mine the nonce
    ctx   u8    bits 0-2 ``now`` (:data:`NOWS`), bits 3-5 difficulty target (:data:`TARGETS`)
    op*   10 bytes each: kind u8, sel u8, value u64 (little-endian)

Missing bytes read as zero, so every byte string decodes.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

from kernels import constants as C

PRELUDE = 4
OP_SIZE = 10
MAX_OPS = 16

PARENT_KEEP, PARENT_NONE, PARENT_ANCHOR, PARENT_HEADER = range(4)
F_LINK, F_ROOT, F_REVEAL, F_MINE = 1 << 2, 1 << 3, 1 << 4, 1 << 5
F_FIXUPS = F_LINK | F_ROOT | F_REVEAL | F_MINE

#: ``now`` choices: the base's, then fixed boundaries (None = the base's)
NOWS: tuple[int | None, ...] = (None, None, None, 0, -1, C.I64_MAX - C.FUTURE_DRIFT_SECONDS,
                                C.I64_MAX, C.I64_MIN)
#: difficulty target choices (None = the base's)
TARGETS: tuple[bytes | None, ...] = (None, None, b"\xff" * 32, bytes(32),
                                     bytes.fromhex("0f" + "ff" * 31), b"\x80" + bytes(31),
                                     bytes(31) + b"\x01", b"\x00\xff" + b"\xff" * 30)

# operation kinds
(OP_FIELD, OP_TIME, OP_FLOAT, OP_TXCOUNT, OP_TXSET, OP_NUMCOUNT, OP_NUMSET, OP_INDICES,
 OP_TARGET, OP_PARENT, OP_REPLAY, OP_BYTE) = range(12)
OP_KINDS = 12


@dataclass
class Input:
    base: int = 0
    flags: int = F_FIXUPS
    ctx: int = 0
    ops: list[tuple[int, int, int]] = field(default_factory=list)


def parse(data: bytes) -> Input:
    """Any byte string as an :class:`Input` (short data padded with zeros)."""
    head = data[:PRELUDE].ljust(PRELUDE, b"\0")
    ops = []
    body = data[PRELUDE:PRELUDE + MAX_OPS * OP_SIZE]
    for at in range(0, len(body), OP_SIZE):
        chunk = body[at:at + OP_SIZE].ljust(OP_SIZE, b"\0")
        kind, sel, value = struct.unpack("<BBQ", chunk)
        ops.append((kind % OP_KINDS, sel, value))
    return Input(struct.unpack("<H", head[:2])[0], head[2], head[3], ops)


def encode(inp: Input) -> bytes:
    out = struct.pack("<HBB", inp.base & 0xFFFF, inp.flags & 0xFF, inp.ctx & 0xFF)
    return out + b"".join(struct.pack("<BBQ", k % OP_KINDS, s & 0xFF, v & C.U64_MAX)
                          for k, s, v in inp.ops[:MAX_OPS])
