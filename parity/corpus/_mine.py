"""The sequential core of the generator: link, commit and mine block after block."""
from __future__ import annotations

import numpy as np
from numba import njit

from kernels import constants as C
from kernels.config import JIT_OPTIONS, LANES
from kernels.jit._blake3 import hash_words_into


@njit(**JIT_OPTIONS)
def _digest(buf, n):
    """BLAKE3 of ``buf[:n]`` (n a multiple of 4), one lane."""
    out = np.empty((1, 32), dtype=np.uint8)
    starts = np.zeros(1, dtype=np.int64)
    dest = np.zeros(1, dtype=np.int64)
    hash_words_into(buf[:n].view(np.uint32), starts, n, dest,
                    out.reshape(32).view(np.uint32), False)
    return out[0]


@njit(**JIT_OPTIONS)
def _below(h, target):
    for k in range(32):
        if h[k] != target[k]:
            return h[k] < target[k]
    return False


@njit(**JIT_OPTIONS)
def link_and_mine(headers, problem, solution, keep_prev, commit_mode, flip_at, replay_pick,
                  miss_target, nonce_start, target, parent_hash, history, history_len,
                  max_tries):
    """Fill prev_hash, commitment and nonce of every header in order; return the hashes.

    commit_mode: 0 honest, 1 one bit flipped at ``flip_at``, 2 a copy of an earlier
    block's commitment (``history``). ``miss_target`` blocks are mined to fail the
    difficulty rule. Returns -1 in the first slot of ``hashes`` rows on a mining failure.
    """
    n = headers.shape[0]
    hashes = np.zeros((n, 32), dtype=np.uint8)
    joined = np.empty(96, dtype=np.uint8)
    cand = np.empty((LANES, C.HEADER_SIZE), dtype=np.uint8)
    cand_hash = np.empty((LANES, 32), dtype=np.uint8)
    starts = np.arange(LANES) * (C.HEADER_SIZE // 4)
    dest = np.arange(LANES)
    for i in range(n):
        h = headers[i]
        if not keep_prev[i]:
            for k in range(32):
                h[C.OFF_PREV_HASH + k] = parent_hash[k]
        for k in range(32):
            joined[k] = problem[i, k]
            joined[32 + k] = h[C.OFF_PREV_HASH + k]
            joined[64 + k] = solution[i, k]
        commit = _digest(joined, 96)
        if commit_mode[i] == 1:
            commit[flip_at[i] // 8] ^= np.uint8(1 << (flip_at[i] % 8))
        elif commit_mode[i] == 2 and history_len > 0:
            src = min(history_len - 1, np.int64(replay_pick[i] * history_len))
            for k in range(32):
                commit[k] = history[src, k]
        for k in range(32):
            h[C.OFF_COMMITMENT_HASH + k] = commit[k]
            history[history_len, k] = commit[k]
        history_len += 1
        found = -1
        nonce = nonce_start[i]
        tries = 0
        while found < 0 and tries < max_tries:
            for l in range(LANES):
                for k in range(C.HEADER_SIZE):
                    cand[l, k] = h[k]
                v = nonce + np.uint64(l)
                for k in range(8):
                    cand[l, C.OFF_NONCE + k] = np.uint8((v >> np.uint64(8 * k)) & np.uint64(0xFF))
            hash_words_into(cand.reshape(LANES * C.HEADER_SIZE).view(np.uint32), starts,
                            C.HEADER_SIZE, dest, cand_hash.reshape(LANES * 32).view(np.uint32),
                            False)
            for l in range(LANES):
                if _below(cand_hash[l], target) != miss_target[i]:
                    found = l
                    break
            if found < 0:
                nonce += np.uint64(LANES)
                tries += 1
        if found < 0:
            hashes[i, 0] = 1
            return hashes, i, history_len
        for k in range(C.HEADER_SIZE):
            h[k] = cand[found, k]
        for k in range(32):
            hashes[i, k] = cand_hash[found, k]
            parent_hash[k] = cand_hash[found, k]
    return hashes, -1, history_len
