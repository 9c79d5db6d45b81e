"""Decoding a fuzz input into a whole block in its chain context (a shrinker ``Case``).

The base block (with its true parent, ``now`` and target) is perturbed by each
operation of the input (:mod:`parity.fuzz.inputs`), then the fix-ups the flags ask for
make everything else consistent again: the height and prev_hash follow the parent, the
transactions root the ids, the target, problem hash and commitment the reveal, and the
nonce is re-mined. A field an operation set explicitly is never fixed up. The tables
below hold SPEC's boundaries, chosen by ``value % len(table)``.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from blake3 import blake3

from kernels import constants as C
from kernels.legacy import decode_header
from parity.fuzz import inputs as I
from parity.shrink.case import Case

DRIFT = C.FUTURE_DRIFT_SECONDS
_M = C.MAX_TRANSACTIONS
_R = C.MAX_REVEAL_ITEMS
TX_COUNTS = (0, 1, 2, 3, 4, 7, 8, 9, 12, 13, 15, 16, 17, 31, 32, 33, 63, 64, 65, 255, 256, 257,
             _M - 1, _M, _M + 1)
NUM_COUNTS = (0, 1, 2, 12, 13, 16, 17, 20, 21, 24, 25, 48, 255, 256, _R - 1, _R, _R + 1)
INTS = (0, 1, -1, 2, C.I64_MAX, C.I64_MIN, C.I64_MAX - 1, C.I64_MIN + 1, 1 << 62, -(1 << 62),
        1 << 32, (1 << 31) - 1)
_f = struct.Struct("<d")
FLOAT_BITS = (0, 1 << 63, 0x3FF0_0000_0000_0000, 0x3FF0_0000_0000_0001, 0x3FEF_FFFF_FFFF_FFFF,
              1, (1 << 63) | 1, 0x0010_0000_0000_0000, 0x7FEF_FFFF_FFFF_FFFF,
              0xFFEF_FFFF_FFFF_FFFF, 0x7FF0_0000_0000_0000, 0xFFF0_0000_0000_0000,
              0x7FF8_0000_0000_0000, 0x7FF0_0000_0000_0001, 0xFFF8_0000_0000_0000,
              0x7FF4_0000_DEAD_BEEF, 0xBFF0_0000_0000_0000, 0x4000_0000_0000_0000)
FLOAT_FIELDS = ("work_score", "time_asymmetry_ratio", "solution_quality", "complexity_weight",
                "energy_estimate_joules")
_U64_FIELDS = {"u32": (1 << 32) - 1, "u64": C.U64_MAX}
_FIELD = {f[0]: f for f in C.HEADER_FIELDS}


def _i64(v: int) -> int:
    v &= C.U64_MAX
    return v - (1 << 64) if v >> 63 else v


def _i8(v: int) -> int:
    v &= 0xFF
    return v - 256 if v >> 7 else v


def _h32(tag: bytes, v: int) -> bytes:
    return blake3(tag + v.to_bytes(8, "little")).digest()


@dataclass
class _Work:
    header: bytearray
    txids: list[bytes]
    numbers: list[int]
    target: int
    indices: list[int]
    parent: Any  # None, an anchor (height, hash, timestamp) or a 276-byte header
    replay: list[bytes]
    now: int
    pinned: set[str] = field(default_factory=set)
    replay_self: bool = False

    def get(self, name: str) -> int | float | bytes:
        return decode_header(bytes(self.header))[name]

    def put(self, name: str, raw: bytes, pin: bool = True) -> None:
        _n, off, size, _k = _FIELD[name]
        self.header[off:off + size] = raw[:size].ljust(size, b"\0")
        if pin:
            self.pinned.add(name)

    def put_int(self, name: str, value: int, pin: bool = True) -> None:
        kind = _FIELD[name][3]
        if kind == "i64":
            raw = struct.pack("<q", max(C.I64_MIN, min(C.I64_MAX, value)))
        else:
            raw = (value & _U64_FIELDS[kind]).to_bytes(_FIELD[name][2], "little")
        self.put(name, raw, pin)


def _hash(data: bytes) -> bytes:
    return blake3(data).digest()


def hash_header(header: bytes) -> bytes:
    """SPEC section 1 header hash (computed here, outside the instrumented twin)."""
    return _hash(header)


def merkle_root(txids: list[bytes]) -> bytes:
    """SPEC section 2 root: ids hashed once more, pairs hashed, an odd node re-hashed."""
    level = [_hash(t) for t in txids]
    if not level:
        return bytes(32)
    while len(level) > 1:
        nxt = [_hash(level[i] + level[i + 1]) for i in range(0, len(level) - 1, 2)]
        level = nxt + [_hash(level[-1])] if len(level) % 2 else nxt
    return level[0]


def problem_hash(numbers: list[int], target: int) -> bytes:
    """SPEC section 3: H(bincode of the subset-sum problem)."""
    return _hash(struct.pack(f"<IQ{len(numbers)}qq", C.SUBSET_SUM_VARIANT, len(numbers),
                             *numbers, target))


def reveal_commitment(p_hash: bytes, salt: bytes, indices: list[int]) -> bytes:
    """SPEC section 3: H(problem hash || epoch salt || H(bincode of the solution))."""
    s_hash = _hash(struct.pack(f"<IQ{len(indices)}Q", C.SUBSET_SUM_VARIANT, len(indices),
                               *[i & C.U64_MAX for i in indices]))
    return _hash(p_hash + salt + s_hash)


def _parent_triple(parent: object) -> C.Parent | None:
    if parent is None:
        return None
    if isinstance(parent, bytes):
        h = decode_header(parent)
        return (h["height"], hash_header(parent), h["timestamp"])
    return parent  # type: ignore[return-value]


def _op_field(w: _Work, sel: int, v: int) -> None:
    name, _off, size, kind = C.HEADER_FIELDS[sel % len(C.HEADER_FIELDS)]
    if kind == "b32":
        w.put(name, bytes(32) if v == 0 else b"\xff" * 32 if v == 1 else _h32(b"field", v))
    elif kind == "f64":
        w.put(name, struct.pack("<Q", v))
    elif kind == "i64":
        w.put_int(name, _i64(v))
    else:
        w.put_int(name, v)


def _op_time(w: _Work, sel: int, v: int) -> None:
    p = _parent_triple(w.parent)
    anchors = (w.now + DRIFT, p[2] if p else w.now, 0, w.now, C.I64_MAX, C.I64_MIN)
    w.put_int("timestamp", anchors[sel % len(anchors)] + _i8(v))


def _op_float(w: _Work, sel: int, v: int) -> None:
    name = FLOAT_FIELDS[sel % len(FLOAT_FIELDS)]
    bits = v if sel & 0x80 else FLOAT_BITS[v % len(FLOAT_BITS)]
    w.put(name, struct.pack("<Q", bits & C.U64_MAX))


def _op_txcount(w: _Work, sel: int, v: int) -> None:
    k = TX_COUNTS[v % len(TX_COUNTS)] if sel & 1 else (v & 0xFF) % 64
    salt = v >> 8
    w.txids = w.txids[:k] + [_h32(b"tx%d" % i, salt) for i in range(len(w.txids), k)]


def _op_txset(w: _Work, sel: int, v: int) -> None:
    if not w.txids:
        return
    i = sel % len(w.txids)
    w.txids[i] = (bytes(32), b"\xff" * 32, w.txids[(i + 1) % len(w.txids)],
                  _h32(b"txset", v))[v % 4]


def _op_numcount(w: _Work, sel: int, v: int) -> None:
    k = NUM_COUNTS[v % len(NUM_COUNTS)] if sel & 1 else (v & 0xFF) % 40
    seed = v >> 8
    w.numbers = w.numbers[:k] + [((seed + i * 2654435761) % 2001) - 1000
                                 for i in range(len(w.numbers), k)]
    w.indices = [i for i in w.indices if i < k]


def _op_numset(w: _Work, sel: int, v: int) -> None:
    if w.numbers:
        w.numbers[sel % len(w.numbers)] = _i64(v >> 8) if sel & 0x80 else INTS[v % len(INTS)]


def _op_indices(w: _Work, sel: int, v: int) -> None:
    n, sub = len(w.numbers), sel % 6
    if sub == 0 and w.indices:
        w.indices.append(w.indices[v % len(w.indices)])
    elif sub == 1:
        w.indices.append(n + (v & 1))
    elif sub == 2 and n:
        w.indices.append(v % n)
    elif sub == 3 and w.indices:
        del w.indices[v % len(w.indices)]
    elif sub == 4:
        w.indices = list(range(min(n, NUM_COUNTS[v % len(NUM_COUNTS)])))
    elif sub == 5:
        w.indices.append(v)


def _op_target(w: _Work, sel: int, v: int) -> None:
    total = sum(w.numbers[i] for i in set(w.indices) if i < len(w.numbers))
    choices = (total, total + 1, total - 1, 0, C.I64_MAX, C.I64_MIN, _i64(v >> 8))
    w.target = max(C.I64_MIN, min(C.I64_MAX, choices[v % len(choices)]))
    w.pinned.add("target")


def _op_parent(w: _Work, sel: int, v: int) -> None:
    sub = sel % 5
    if sub == 0:
        w.parent = None
        return
    p = _parent_triple(w.parent) or (0, bytes(32), 0)
    height, phash, pts = p
    if sub == 1:
        height = (height + _i8(v)) & C.U64_MAX
    elif sub == 2:
        pts = max(C.I64_MIN, min(C.I64_MAX, int(w.get("timestamp")) + _i8(v)))
    elif sub == 3:
        phash = bytes(32) if v & 1 else _h32(b"parent", v)
    else:
        height = (C.U64_MAX, 0, int(w.get("height")) - 1)[v % 3] & C.U64_MAX
    if isinstance(w.parent, bytes) and sub != 3:
        raw = bytearray(w.parent)
        raw[C.OFF_HEIGHT:C.OFF_HEIGHT + 8] = height.to_bytes(8, "little")
        raw[C.OFF_TIMESTAMP:C.OFF_TIMESTAMP + 8] = struct.pack("<q", pts)
        w.parent = bytes(raw)
    else:
        w.parent = (height, phash, pts)


def _op_replay(w: _Work, sel: int, v: int) -> None:
    sub = sel % 4
    if sub == 0:
        w.replay_self = True
    elif sub == 1:
        w.replay.append(_h32(b"replay", v))
    elif sub == 2:
        w.replay.append(bytes(32))
    else:
        w.replay.clear()
        w.replay_self = False


def _op_byte(w: _Work, sel: int, v: int) -> None:
    at = v % C.HEADER_SIZE
    w.header[at] ^= sel or 1
    w.pinned.update(name for name, off, size, _k in C.HEADER_FIELDS if off <= at < off + size)


OPS = (_op_field, _op_time, _op_float, _op_txcount, _op_txset, _op_numcount, _op_numset,
       _op_indices, _op_target, _op_parent, _op_replay, _op_byte)
assert len(OPS) == I.OP_KINDS


def _fixups(w: _Work, flags: int, target: bytes) -> None:
    p = _parent_triple(w.parent)
    if flags & I.F_LINK and p is not None:
        if "height" not in w.pinned:
            w.put_int("height", p[0] + 1, pin=False)
        if "prev_hash" not in w.pinned:
            w.put("prev_hash", p[1], pin=False)
    if flags & I.F_ROOT and "transactions_root" not in w.pinned:
        w.put("transactions_root", merkle_root(w.txids), pin=False)
    if flags & I.F_REVEAL:
        picked = [w.numbers[i] for i in dict.fromkeys(w.indices) if 0 <= i < len(w.numbers)]
        if "target" not in w.pinned and C.I64_MIN <= sum(picked) <= C.I64_MAX:
            w.target = sum(picked)
        ph = problem_hash([max(C.I64_MIN, min(C.I64_MAX, x)) for x in w.numbers], w.target)
        if "commitment_problem_hash" not in w.pinned:
            w.put("commitment_problem_hash", ph, pin=False)
        if "commitment_hash" not in w.pinned:
            salt = bytes(w.header[C.OFF_PREV_HASH:C.OFF_PREV_HASH + 32])
            w.put("commitment_hash", reveal_commitment(ph, salt, w.indices), pin=False)
    if flags & I.F_MINE and "nonce" not in w.pinned:
        for nonce in range(64):
            w.put_int("nonce", nonce, pin=False)
            if hash_header(bytes(w.header)) < target:
                break


def decode(pool: list[Case], data: bytes) -> Case:
    """The block (with parent, replay history, ``now`` and target) ``data`` describes."""
    inp = I.parse(data)
    base = pool[inp.base % len(pool)]
    now = I.NOWS[inp.ctx & 7]
    target = I.TARGETS[inp.ctx >> 3 & 7]
    b = base.block
    w = _Work(bytearray(b.header), list(b.txids), list(b.numbers), b.target, list(b.indices),
              base.parent, list(base.replay), base.now if now is None else now)
    mode = inp.flags & 3
    if mode == I.PARENT_NONE:
        w.parent = None
    elif mode == I.PARENT_ANCHOR:
        w.parent = _parent_triple(w.parent)
    elif mode == I.PARENT_HEADER and not isinstance(w.parent, bytes) and w.parent is not None:
        h, _hash, ts = w.parent
        raw = bytearray(C.HEADER_SIZE)
        raw[C.OFF_HEIGHT:C.OFF_HEIGHT + 8] = int(h).to_bytes(8, "little")
        raw[C.OFF_TIMESTAMP:C.OFF_TIMESTAMP + 8] = struct.pack("<q", ts)
        w.parent = bytes(raw)
    for kind, sel, value in inp.ops:
        OPS[kind](w, sel, value)
    tgt = base.difficulty_target if target is None else target
    _fixups(w, inp.flags, tgt)
    if w.replay_self:
        w.replay.append(bytes(w.header[C.OFF_COMMITMENT_HASH:C.OFF_COMMITMENT_HASH + 32]))
    block = C.Block(bytes(w.header), w.txids, w.numbers, w.target, w.indices)
    return Case("validate", block, w.parent, tuple(w.replay), w.now, tgt)
