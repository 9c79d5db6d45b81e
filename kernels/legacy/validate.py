"""Block validation of SPEC section 4: the rule bitmask of every block of a sequence."""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

from kernels import checks
from kernels import constants as C
from kernels.constants import Block, Parent
from kernels.legacy.header import decode_header, hash_header
from kernels.legacy.merkle import _root_of_checked
from kernels.legacy.reveal import commitment, problem_hash, solution_hash, solution_ok

__all__ = ["Block", "Parent", "new_replay_state", "validate_block", "validate_blocks",
           "validate_chain"]


def new_replay_state() -> set[bytes]:
    """Commitment hashes seen so far; pass the same state along consecutive batches."""
    return set()


def _bad_float(x: float) -> bool:
    return math.isnan(x) or math.isinf(x)


def _parent(parent: bytes | np.ndarray | Parent | None) -> Parent | None:
    """The parent as ``(height, header hash, timestamp)``; a parent given as its 276-byte
    header is decoded and hashed here."""
    p = checks.parent(parent)
    if isinstance(p, bytes):
        h = decode_header(p)
        return (h["height"], hash_header(p), h["timestamp"])
    return p


def validate_block(block: Block, now: int, difficulty_target: bytes,
                   parent: bytes | np.ndarray | Parent | None, seen: set[bytes]) -> int:
    """The rule bitmask of one block; ``seen`` holds earlier commitments and is updated.
    ``parent`` is the parent's header, its ``(height, hash, timestamp)`` or None."""
    target = checks.fixed_bytes(difficulty_target, "difficulty_target", C.HASH_SIZE)
    return _chain([block], int(now), target, _parent(parent), seen, ids_checked=False)[0]


def _chain(blocks: Iterable[Block], now: int, difficulty_target: bytes, parent: Parent | None,
           seen: set[bytes], ids_checked: bool) -> list[int]:
    """Bitmasks of consecutive blocks, each the parent of the next; each header is decoded
    and hashed once. ``ids_checked``: every block's ids are already 32-byte ``bytes`` (the
    batch form checked its arrays), else each block's are checked here."""
    out = []
    for block in blocks:
        h = decode_header(block.header)
        txids = block.txids if ids_checked else checks.fixed_items(block.txids, "txids",
                                                                   C.HASH_SIZE)
        block_hash = hash_header(block.header)
        out.append(_status(block, h, txids, block_hash, now, difficulty_target, parent, seen))
        parent = (h["height"], block_hash, h["timestamp"])
    return out


def _status(block: Block, h: dict, txids: Sequence[bytes], block_hash: bytes, now: int,
            difficulty_target: bytes, parent: Parent | None, seen: set[bytes]) -> int:
    """The bitmask of one block: ``h`` its decoded header, ``txids`` its checked ids,
    ``block_hash`` its header hash."""
    status = 0
    if h["version"] not in C.SUPPORTED_VERSIONS:
        status |= C.VERSION_UNSUPPORTED
    ts = h["timestamp"]
    if ts < 0:
        status |= C.TIMESTAMP_NEGATIVE
    if ts > now + C.FUTURE_DRIFT_SECONDS:  # exact integers, never wrapping
        status |= C.TIMESTAMP_FUTURE
    ws = h["work_score"]
    if _bad_float(ws) or ws < 0.0:
        status |= C.WORK_SCORE_INVALID
    if _bad_float(h["time_asymmetry_ratio"]):
        status |= C.TIME_ASYMMETRY_NONFINITE
    sq = h["solution_quality"]
    if _bad_float(sq) or sq < 0.0 or sq > 1.0:
        status |= C.SOLUTION_QUALITY_INVALID
    cw = h["complexity_weight"]
    if _bad_float(cw) or cw < 0.0:
        status |= C.COMPLEXITY_WEIGHT_INVALID
    ee = h["energy_estimate_joules"]
    if _bad_float(ee) or ee < 0.0:
        status |= C.ENERGY_ESTIMATE_INVALID
    if len(txids) > C.MAX_TRANSACTIONS:
        status |= C.TOO_MANY_TRANSACTIONS
    if h["transactions_root"] != _root_of_checked(txids):
        status |= C.TX_ROOT_MISMATCH
    if parent is not None:
        p_height, p_hash, p_ts = parent
        if h["height"] != p_height + 1:
            status |= C.HEIGHT_NOT_SEQUENTIAL
        if h["prev_hash"] != p_hash:
            status |= C.PREV_HASH_MISMATCH
        if ts < p_ts:
            status |= C.TIMESTAMP_BEFORE_PARENT
    if block_hash >= difficulty_target:  # bytes compare = big-endian numbers
        status |= C.DIFFICULTY_NOT_MET
    ph = problem_hash(block.numbers, block.target)
    if h["commitment_problem_hash"] != ph:
        status |= C.PROBLEM_HASH_MISMATCH
    expected = commitment(ph, h["prev_hash"], solution_hash(block.indices))
    if h["commitment_hash"] != expected:
        status |= C.COMMITMENT_MISMATCH
    if not solution_ok(block.numbers, block.target, block.indices):
        status |= C.SOLUTION_INVALID
    if h["commitment_hash"] in seen:
        status |= C.COMMITMENT_REPLAY
    seen.add(h["commitment_hash"])
    return status


def validate_chain(blocks: Iterable[Block], now: int, difficulty_target: bytes,
                   parent: bytes | np.ndarray | Parent | None = None,
                   seen: set[bytes] | None = None) -> list[int]:
    """Bitmasks of consecutive blocks; each block is the parent of the next, and the
    first one's is ``parent`` (its header, its ``(height, hash, timestamp)`` or None)."""
    target = checks.fixed_bytes(difficulty_target, "difficulty_target", C.HASH_SIZE)
    seen = new_replay_state() if seen is None else seen
    return _chain(blocks, int(now), target, _parent(parent), seen, ids_checked=False)


def validate_blocks(headers: np.ndarray, ids: np.ndarray, id_offsets: np.ndarray,
                    numbers: np.ndarray, num_offsets: np.ndarray, targets: np.ndarray,
                    indices: np.ndarray, idx_offsets: np.ndarray, *, now: int,
                    difficulty_target: bytes, parent: bytes | np.ndarray | Parent | None = None,
                    replay: set[bytes] | None = None) -> np.ndarray:
    """Batch form over CSR arrays: ``uint32[N]`` bitmasks. ``parent`` is the first block's
    parent: its 276-byte header (``bytes`` or ``uint8[276]``, decoded and hashed here),
    its ``(height, hash, timestamp)`` (e.g. a corpus anchor) or None (no parent)."""
    headers, ids, id_offsets, numbers, num_offsets, targets, indices, idx_offsets = \
        checks.blocks(headers, ids, id_offsets, numbers, num_offsets, targets, indices,
                      idx_offsets)
    txids = checks.unpack(ids, id_offsets)
    nums = checks.unpack(numbers, num_offsets)
    idxs = checks.unpack(indices, idx_offsets)
    blocks = (Block(headers[i].tobytes(), txids[i], nums[i], int(targets[i]), idxs[i])
              for i in range(headers.shape[0]))  # made one at a time, as validated
    target = checks.fixed_bytes(difficulty_target, "difficulty_target", C.HASH_SIZE)
    seen = new_replay_state() if replay is None else replay
    status = _chain(blocks, int(now), target, _parent(parent), seen, ids_checked=True)
    return np.array(status, dtype=np.uint32)


