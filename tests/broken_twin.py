"""A refactored twin with planted bugs, chosen by $BROKEN_TWIN (comma-separated):

- ``flip``: one byte of the header hash flipped for blocks whose height is in
  $BROKEN_TWIN_HEIGHTS;
- ``odd_copy``: the odd merkle node is copied instead of re-hashed;
- ``negzero``: -0.0 is treated as negative in the float rules;
- ``noreplay``: COMMITMENT_REPLAY is never set (a replay gets through);
- ``overflow``: the subset sum wraps around in 64 bits instead of failing on overflow
  (SOLUTION_INVALID cleared when the wrapped sum equals the target);
- ``short_replay``: the replay state remembers only the last 16 commitments it was
  given between calls (an older replay gets through).

Everything else is the JIT twin.
"""
from __future__ import annotations

import os
from collections import deque

import numpy as np
from blake3 import blake3

import kernels.jit as _jit
from kernels import constants as C
from kernels.jit import commitments, decode_header  # noqa: F401  (the rest of the twin interface)


def _flavours() -> set[str]:
    return set(filter(None, os.environ.get("BROKEN_TWIN", "").split(",")))


def _heights() -> set[int]:
    return {int(h) for h in os.environ.get("BROKEN_TWIN_HEIGHTS", "").split(",") if h}


def hash_headers(headers: np.ndarray) -> np.ndarray:
    out = _jit.hash_headers(headers)
    if "flip" in _flavours():
        heights = np.ascontiguousarray(headers[:, 4:12]).view("<u8").reshape(-1)
        for i in np.flatnonzero(np.isin(heights, np.array(sorted(_heights()), dtype=np.uint64))):
            out[i, 7] ^= 0x10
    return out


def merkle_tree(txids):
    if "odd_copy" not in _flavours():
        return _jit.merkle_tree(txids)
    if not txids:
        return []
    level = [blake3(bytes(t)).digest() for t in txids]
    levels = [level]
    while len(level) > 1:
        nxt = [blake3(level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])  # the bug: copied, not re-hashed
        level = nxt
        levels.append(level)
    return levels


def merkle_roots(ids: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    if "odd_copy" not in _flavours():
        return _jit.merkle_roots(ids, offsets)
    out = np.zeros((len(offsets) - 1, 32), np.uint8)
    for b in range(len(offsets) - 1):
        tree = merkle_tree([r.tobytes() for r in ids[offsets[b]:offsets[b + 1]]])
        if tree:
            out[b] = np.frombuffer(tree[-1][0], np.uint8)
    return out


WINDOW = 16


class ShortReplay:
    """``short_replay``: only the last WINDOW commitments survive between calls."""

    def __init__(self) -> None:
        self.recent: deque[bytes] = deque(maxlen=WINDOW)

    def update(self, values) -> None:
        self.recent.extend(bytes(c) for c in values)


def new_replay_state():
    return ShortReplay() if "short_replay" in _flavours() else _jit.new_replay_state()


def _wrapping_sum_ok(nums: np.ndarray, idx: np.ndarray, target: int) -> bool:
    """SPEC 3's solution check, except that the sum wraps around in 64 bits."""
    if not 1 <= len(nums) <= C.MAX_REVEAL_ITEMS or len(idx) > C.MAX_REVEAL_ITEMS:
        return False
    if len(set(idx.tolist())) != len(idx) or any(int(i) >= len(nums) for i in idx):
        return False
    total = sum(int(nums[int(i)]) for i in idx) & C.U64_MAX
    return total - (1 << 64) * (total >> 63) == target


def validate_blocks(headers, ids, id_offsets, numbers, num_offsets, targets, indices,
                    idx_offsets, *, now, difficulty_target, parent=None, replay=None):
    short = replay if isinstance(replay, ShortReplay) else None
    if short is not None:
        replay = _jit.new_replay_state()
        if short.recent:
            replay.update(list(short.recent))
        short.update(r.tobytes() for r in
                     headers[:, C.OFF_COMMITMENT_HASH:C.OFF_COMMITMENT_HASH + 32])
    status = _jit.validate_blocks(headers, ids, id_offsets, numbers, num_offsets, targets,
                                  indices, idx_offsets, now=now,
                                  difficulty_target=difficulty_target, parent=parent,
                                  replay=replay)
    if "overflow" in _flavours():
        for b in np.flatnonzero(status & np.uint32(C.SOLUTION_INVALID)):
            if _wrapping_sum_ok(numbers[num_offsets[b]:num_offsets[b + 1]],
                                indices[idx_offsets[b]:idx_offsets[b + 1]], int(targets[b])):
                status[b] &= np.uint32(~C.SOLUTION_INVALID & 0xFFFFFFFF)
    if "noreplay" in _flavours():
        status &= np.uint32(~C.COMMITMENT_REPLAY & 0xFFFFFFFF)
    if "negzero" in _flavours():
        for off, bit in ((C.OFF_WORK_SCORE, C.WORK_SCORE_INVALID),
                         (C.OFF_COMPLEXITY_WEIGHT, C.COMPLEXITY_WEIGHT_INVALID),
                         (C.OFF_ENERGY_ESTIMATE, C.ENERGY_ESTIMATE_INVALID),
                         (C.OFF_SOLUTION_QUALITY, C.SOLUTION_QUALITY_INVALID)):
            bits = np.ascontiguousarray(headers[:, off:off + 8]).view("<u8").reshape(-1)
            status[bits == np.uint64(0x8000000000000000)] |= np.uint32(bit)
    return status
