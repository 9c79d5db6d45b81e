"""The generator's own block arithmetic: header encoding (SPEC section 1), transaction
merkle roots (section 2), reveal hashes (section 3), and the sequential link, commit and
mine loop.

Written with the ``blake3`` package, numpy and plain Python, never with ``kernels.jit`` or
``kernels.legacy``: the corpora and ground truth the twins are tested against must not be
produced by either twin. Per-shard work is vectorized with numpy (only the hash calls
themselves run one by one); linking and mining run block after block, because each
block's ``prev_hash`` (and so its commitment and nonce) depends on the previous block's
mined hash.
"""
from __future__ import annotations

import struct
from collections.abc import Mapping

import numpy as np
from blake3 import blake3

from kernels import constants as C

#: nonces tried per block before the generator gives up (the target may be unreachable)
MAX_TRIES = 1 << 20

_FORMAT = {"u32": "<u4", "u64": "<u8", "i64": "<i8", "f64": "<f8", "b32": ("u1", (32,))}
#: SPEC section 1 as a packed numpy record: bincode order, little-endian, no padding
HEADER_DTYPE = np.dtype({
    "names": [f[0] for f in C.HEADER_FIELDS],
    "formats": [_FORMAT[f[3]] for f in C.HEADER_FIELDS],
    "offsets": [f[1] for f in C.HEADER_FIELDS],
    "itemsize": C.HEADER_SIZE,
})
_PACK_NONCE = struct.Struct("<Q").pack_into
_PREV = slice(C.OFF_PREV_HASH, C.OFF_PREV_HASH + C.HASH_SIZE)
_COMMIT = slice(C.OFF_COMMITMENT_HASH, C.OFF_COMMITMENT_HASH + C.HASH_SIZE)


def encode_headers(fields: Mapping[str, np.ndarray]) -> np.ndarray:
    """Columns ``{field: array[n] or uint8[n, 32]}`` -> headers ``uint8[n, 276]``. Values
    are stored with numpy's casts into the field types; floats keep their bits."""
    n = len(fields["version"])
    records = np.zeros(n, dtype=HEADER_DTYPE)
    for name, *_ in C.HEADER_FIELDS:
        records[name] = fields[name]
    return records.view(np.uint8).reshape(n, C.HEADER_SIZE)


def hash_slices(data: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """``H(data[bounds[i]:bounds[i + 1]])`` for every ``i``: ``uint8[len(bounds) - 1, 32]``.
    ``data`` is a 1-d uint8 array."""
    raw = np.ascontiguousarray(data, dtype=np.uint8).tobytes()
    hasher = blake3()  # one hasher reset after each input: cheaper than one per input
    update, digest, reset = hasher.update, hasher.digest, hasher.reset
    out: list[bytes] = []
    append = out.append
    edges = bounds.tolist()
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        update(raw[lo:hi])
        append(digest())
        reset()
    return np.frombuffer(b"".join(out), dtype=np.uint8).reshape(-1, C.HASH_SIZE)


def hash_rows(rows: np.ndarray) -> np.ndarray:
    """``H(row)`` of every row of a 2-d uint8 array."""
    width = rows.shape[1]
    raw = np.ascontiguousarray(rows, dtype=np.uint8).tobytes()
    hasher = blake3()
    update, digest, reset = hasher.update, hasher.digest, hasher.reset
    out: list[bytes] = []
    append = out.append
    for lo in range(0, len(raw), width):
        update(raw[lo:lo + width])
        append(digest())
        reset()
    return np.frombuffer(b"".join(out), dtype=np.uint8).reshape(-1, C.HASH_SIZE)


def _exclusive_cumsum(counts: np.ndarray) -> np.ndarray:
    """Offsets ``int64[len + 1]`` of consecutive runs of ``counts`` items."""
    out = np.zeros(counts.shape[0] + 1, dtype=np.int64)
    np.cumsum(counts, out=out[1:])
    return out


def merkle_roots(ids: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """SPEC section 2 for every block: ids ``uint8[T, 32]`` in CSR form (``offsets[n + 1]``)
    -> roots ``uint8[n, 32]``.

    All blocks climb their trees together, one level per pass: each block's nodes sit at
    ``level[start:start + count]``; a pass hashes every pair ``H(a || b)`` and every odd
    last node ``H(last)`` of every block that still has more than one node."""
    n = offsets.shape[0] - 1
    roots = np.zeros((n, C.HASH_SIZE), dtype=np.uint8)  # no ids: 32 zero bytes
    level = hash_rows(ids)                               # leaves: every id hashed again
    start = offsets[:-1].astype(np.int64)
    count = np.diff(offsets).astype(np.int64)
    while True:
        done = count == 1
        roots[done] = level[start[done]]
        live = np.flatnonzero(count > 1)
        if live.shape[0] == 0:
            return roots
        c, s = count[live], start[live]
        pairs, odd = c // 2, c % 2
        new_start = _exclusive_cumsum(pairs + odd)
        owner = np.repeat(np.arange(live.shape[0]), pairs)     # the block of each pair
        j = np.arange(owner.shape[0]) - _exclusive_cumsum(pairs)[owner]  # pair j of it
        left = s[owner] + 2 * j
        nxt = np.empty((int(new_start[-1]), C.HASH_SIZE), dtype=np.uint8)
        nxt[new_start[owner] + j] = hash_rows(np.concatenate([level[left], level[left + 1]],
                                                             axis=1))
        lone = np.flatnonzero(odd)
        nxt[new_start[lone] + pairs[lone]] = hash_rows(level[s[lone] + c[lone] - 1])
        level = nxt
        count = np.zeros(n, dtype=np.int64)
        count[live] = pairs + odd
        start = np.zeros(n, dtype=np.int64)
        start[live] = new_start[:-1]


def _bincode_lists(values: np.ndarray, offsets: np.ndarray, tail: np.ndarray | None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Every list as ``u32(0) || u64(len) || 8-byte items [|| i64 tail]``, back to back:
    (the bytes as ``uint8[...]``, byte offsets ``int64[n + 1]``)."""
    n = offsets.shape[0] - 1
    k = np.diff(offsets).astype(np.int64)
    bounds = _exclusive_cumsum(12 + 8 * k + (0 if tail is None else 8))
    buf = np.zeros(int(bounds[-1]), dtype=np.uint8)  # the u32 variant 0 stays zero

    def put(at: np.ndarray, items: np.ndarray) -> None:  # 8 little-endian bytes each
        raw = items.astype(items.dtype.newbyteorder("<")).view(np.uint8).reshape(-1, 8)
        buf[at[:, None] + np.arange(8)] = raw

    put(bounds[:-1] + 4, k.astype(np.uint64))
    owner = np.repeat(np.arange(n), k)
    put(bounds[owner] + 12 + 8 * (np.arange(owner.shape[0]) - offsets[owner]), values)
    if tail is not None:
        put(bounds[:-1] + 12 + 8 * k, tail)
    return buf, bounds


def reveal_hashes(numbers: np.ndarray, num_offsets: np.ndarray, targets: np.ndarray,
                  indices: np.ndarray, idx_offsets: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """SPEC section 3: (problem hashes, solution hashes), each ``uint8[n, 32]``."""
    problem = hash_slices(*_bincode_lists(numbers.astype(np.int64), num_offsets,
                                          targets.astype(np.int64)))
    solution = hash_slices(*_bincode_lists(indices.astype(np.uint64), idx_offsets, None))
    return problem, solution


def _mine(header: bytearray, nonce: int, target: bytes, below: bool) -> bytes | None:
    """Patch nonces ``nonce, nonce + 1, ...`` into ``header`` until its hash is below
    ``target`` (or, ``below`` false, not below it); return that hash, or None after
    :data:`MAX_TRIES` nonces. Big-endian compare = ``bytes`` order.

    Per nonce: one ``pack_into`` and one reused hasher. Copying a hasher that has absorbed
    the nonce-free first 192 bytes would also be correct, but measured slower: Python call
    overhead, not the BLAKE3 compressions, is the cost here."""
    hasher = blake3()
    update, digest, reset = hasher.update, hasher.digest, hasher.reset
    pack = _PACK_NONCE
    for candidate in range(nonce, nonce + MAX_TRIES):
        pack(header, C.OFF_NONCE, candidate)
        update(header)
        h = digest()
        reset()
        if (h < target) is below:
            return h
    return None


def link_and_mine(headers: np.ndarray, problem: np.ndarray, solution: np.ndarray,
                  keep_prev: np.ndarray, commit_mode: np.ndarray, flip_at: np.ndarray,
                  replay_pick: np.ndarray, miss_target: np.ndarray, nonce_start: np.ndarray,
                  target: bytes, parent_hash: bytes, history: list[bytes]
                  ) -> tuple[np.ndarray, np.ndarray, int]:
    """Fill ``prev_hash``, ``commitment_hash`` and ``nonce`` of every header, in order.

    ``prev_hash`` becomes the previous block's hash (``parent_hash`` for the first) unless
    ``keep_prev``. The commitment is ``H(problem || prev_hash || solution)``; with
    ``commit_mode`` 1 its bit ``flip_at`` is flipped, with 2 it is a copy of the earlier
    commitment ``history[int(replay_pick * len(history))]`` (honest while ``history`` is
    empty). Every block's commitment is appended to ``history``. The nonce is the first
    from ``nonce_start`` whose header hash is below ``target`` (at or above it where
    ``miss_target``).

    Returns (the headers as a new ``uint8[n, 276]`` array, their hashes ``uint8[m, 32]``,
    the index of the block whose mining failed or -1). On a failure ``m`` is that index
    and the headers from it on are not final."""
    n = headers.shape[0]
    raw = bytearray(np.ascontiguousarray(headers).tobytes())
    problems, solutions = problem.tobytes(), solution.tobytes()
    hashes = []
    parent = parent_hash
    hasher = blake3()
    update, digest, reset = hasher.update, hasher.digest, hasher.reset
    failed = -1
    for i, keep, mode, flip, pick, miss, nonce in zip(
            range(n), keep_prev.tolist(), commit_mode.tolist(), flip_at.tolist(),
            replay_pick.tolist(), miss_target.tolist(), nonce_start.tolist(), strict=True):
        header = raw[i * C.HEADER_SIZE:(i + 1) * C.HEADER_SIZE]
        if not keep:
            header[_PREV] = parent
        row = slice(i * C.HASH_SIZE, (i + 1) * C.HASH_SIZE)
        update(problems[row])
        update(header[_PREV])
        update(solutions[row])
        commit = digest()
        reset()
        if mode == 1:
            flipped = bytearray(commit)
            flipped[flip // 8] ^= 1 << (flip % 8)
            commit = bytes(flipped)
        elif mode == 2 and history:
            commit = history[min(len(history) - 1, int(pick * len(history)))]
        header[_COMMIT] = commit
        history.append(commit)
        found = _mine(header, nonce, target, not miss)
        if found is None:
            failed = i
            break
        raw[i * C.HEADER_SIZE:(i + 1) * C.HEADER_SIZE] = header
        hashes.append(found)
        parent = found
    out = np.frombuffer(raw, dtype=np.uint8).reshape(n, C.HEADER_SIZE)
    return (out, np.frombuffer(b"".join(hashes), dtype=np.uint8).reshape(-1, C.HASH_SIZE),
            failed)
