"""A refactored twin with planted bugs, chosen by $BROKEN_TWIN (comma-separated):

- ``flip``: one byte of the header hash flipped for blocks whose height is in
  $BROKEN_TWIN_HEIGHTS;
- ``odd_copy``: the odd merkle node is copied instead of re-hashed;
- ``negzero``: -0.0 is treated as negative in the float rules;
- ``noreplay``: COMMITMENT_REPLAY is never set (a replay gets through).

Everything else is the JIT twin.
"""
from __future__ import annotations

import os

import numpy as np
from blake3 import blake3

import kernels.jit as _jit
from kernels import constants as C
from kernels.jit import commitments, decode_header, new_replay_state  # noqa: F401  (the rest of the twin interface)


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


def validate_blocks(headers, ids, id_offsets, numbers, num_offsets, targets, indices,
                    idx_offsets, *, now, difficulty_target, parent=None, replay=None):
    status = _jit.validate_blocks(headers, ids, id_offsets, numbers, num_offsets, targets,
                                  indices, idx_offsets, now=now,
                                  difficulty_target=difficulty_target, parent=parent,
                                  replay=replay)
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
