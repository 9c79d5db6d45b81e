"""The custom mutator: whole operations aimed at SPEC's boundaries, and the seed inputs.

Half of the mutations are libFuzzer's own byte mutations (``fallback``); the rest
insert, replace or delete one operation, or change the base, the fix-up flags or the
context, choosing values that hit a boundary exactly or by one: timestamps at the drift
limit and the parent's, counts at each limit, float bit patterns at the extremes,
integers at the i64/u64 edges, the block's own commitment in the replay history.
"""
from __future__ import annotations

import random
from collections.abc import Callable

from kernels import constants as C
from parity.fuzz import decode as D
from parity.fuzz import inputs as I

Fallback = Callable[[bytes, int], bytes]
_U64S = (0, 1, 2, 3, (1 << 32) - 1, 1 << 32, (1 << 63) - 1, 1 << 63, C.U64_MAX, C.U64_MAX - 1)


def boundary_op(rng: random.Random) -> tuple[int, int, int]:
    """One operation whose value sits on (or next to) a SPEC boundary."""
    kind = rng.randrange(I.OP_KINDS)
    salt = rng.getrandbits(48) << 8
    if kind == I.OP_FIELD:
        return kind, rng.randrange(len(C.HEADER_FIELDS)), rng.choice(_U64S)
    if kind == I.OP_TIME:
        return kind, rng.randrange(6), rng.choice((-2, -1, 0, 1, 2)) & 0xFF
    if kind in (I.OP_FLOAT,):
        return kind, rng.randrange(len(D.FLOAT_FIELDS)), rng.randrange(len(D.FLOAT_BITS))
    if kind == I.OP_TXCOUNT:
        return kind, 1, salt | rng.randrange(len(D.TX_COUNTS))
    if kind == I.OP_NUMCOUNT:
        return kind, 1, salt | rng.randrange(len(D.NUM_COUNTS))
    if kind == I.OP_NUMSET:
        return kind, rng.randrange(128), rng.randrange(len(D.INTS))
    if kind == I.OP_TARGET:
        return kind, 0, rng.randrange(7)
    if kind == I.OP_PARENT:
        return kind, rng.randrange(5), rng.choice((-1, 0, 1, 2)) & 0xFF
    return kind, rng.getrandbits(8), rng.getrandbits(64)


def mutate(data: bytes, max_size: int, seed: int, pool_size: int, fallback: Fallback) -> bytes:
    """One mutation of ``data`` (the atheris ``custom_mutator`` contract)."""
    rng = random.Random(seed)
    if rng.random() < 0.5:
        return fallback(data, max_size)
    inp = I.parse(data)
    r = rng.random()
    if r < 0.45 or not inp.ops:
        inp.ops.insert(rng.randint(0, len(inp.ops)), boundary_op(rng))
    elif r < 0.65:
        inp.ops[rng.randrange(len(inp.ops))] = boundary_op(rng)
    elif r < 0.8:
        del inp.ops[rng.randrange(len(inp.ops))]
    elif r < 0.88:
        inp.base = rng.randrange(pool_size)
    elif r < 0.95:
        inp.flags ^= 1 << rng.randrange(6)
    else:
        inp.ctx = rng.getrandbits(6)
    return I.encode(inp)[:max_size]


def seeds(pool_size: int, seed: int = 0) -> list[bytes]:
    """Seed inputs: every base as it is and re-fixed, and base 0 with one boundary
    operation of each kind."""
    out = []
    for b in range(pool_size):
        out += [I.encode(I.Input(b, 0)), I.encode(I.Input(b, I.F_FIXUPS))]
    rng = random.Random(seed)
    for _ in range(4 * I.OP_KINDS):
        out.append(I.encode(I.Input(rng.randrange(pool_size), I.F_FIXUPS, 0, [boundary_op(rng)])))
    return out
