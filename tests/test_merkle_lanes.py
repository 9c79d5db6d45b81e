"""The JIT twin's two merkle paths: blocks sharing an id count hashed one per lane (the
whole tree at once, levels never stored) and the level-by-level path for the rest,
each checked against the legacy twin and a plain reference, on batches built so that
both paths, every tree shape up to a few levels and the task and chunk boundaries
occur."""
from __future__ import annotations

import numpy as np
import pytest

import kernels.jit as jit
import kernels.legacy as legacy
from kernels import config
from kernels.jit import merkle


def _batch(sizes: list[int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    ids = rng.integers(0, 256, (int(offsets[-1]), 32), dtype=np.uint8)
    return ids, offsets


def _paths(sizes: list[int]) -> tuple[set[int], set[int]]:
    """The id counts the lane path takes and those left to the level path."""
    count = np.asarray(sizes, dtype=np.int64)
    tasks, rest = merkle._plan_lanes(count, *merkle._group_by_length(count))
    return {int(k) for k in tasks[:, 2]}, {int(count[b]) for b in rest}


def _same(n: int, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``_plan_lanes``' arguments for ``n`` blocks of ``k`` ids each: one run."""
    return np.full(n, k, np.int64), np.arange(n), np.array([0, n], np.int64)


def _check(sizes: list[int], seed: int = 1) -> None:
    ids, offsets = _batch(sizes, seed)
    expected = legacy.merkle_roots(ids, offsets)
    for parallel in (True, False):
        got = jit.merkle_roots(ids, offsets, parallel=parallel)
        bad = [b for b in range(len(sizes)) if not np.array_equal(got[b], expected[b])]
        assert not bad, f"blocks {bad[:5]} (id counts {[sizes[b] for b in bad[:5]]}) differ"


def test_every_tree_shape_up_to_70_ids_in_lanes():
    """8 blocks of each count 0..70 (shuffled): every count runs on the lane path."""
    sizes = [k for k in range(71) for _ in range(merkle.MIN_SHARED)]
    np.random.default_rng(3).shuffle(sizes)
    lanes, rest = _paths(sizes)
    assert lanes == set(range(1, 71)) and not rest
    _check(sizes)


def test_short_runs_take_the_level_path_beside_the_lanes():
    few = merkle.MIN_SHARED - 1
    sizes = [5] * few + [6] * merkle.MIN_SHARED + [1] * few + [2] * 40 + [0] * 3 + [33] * few
    lanes, rest = _paths(sizes)
    assert lanes == {6, 2} and rest == {5, 1, 33}
    _check(sizes)


@pytest.mark.parametrize("k", [1, 2, 3, 7, 64, 65, 1025])
def test_runs_longer_than_a_task_and_partial_lane_groups(k):
    """A run of one count cut into several tasks, the last lane group partly filled."""
    probe, _ = merkle._plan_lanes(*_same(100_000, k))
    step = int(probe[0, 1] - probe[0, 0])  # blocks per task: whole lane groups
    assert step % config.LANES == 0 and step * k >= merkle.TASK_LEAVES // 2
    n = 2 * step + config.LANES + 3
    assert n * k < 3_000_000
    tasks, _ = merkle._plan_lanes(*_same(n, k))
    assert len(tasks) >= 3 and tasks[-1, 1] == n and (n - tasks[-1, 0]) % config.LANES == 3
    _check([k] * n, seed=k)


def test_chunk_boundaries(monkeypatch):
    """Chunks of 50 blocks cut runs anywhere; a run may be long in one chunk, short in
    the next."""
    monkeypatch.setattr(config, "CHUNK_BLOCKS", 50)
    sizes = [4] * 57 + [9] * 45 + [4] * 12 + list(range(30))
    _check(sizes, seed=5)


def test_merkle_root_of_one_list_and_empty_batches():
    rng = np.random.default_rng(9)
    for n in (0, 1, 2, 3, 17):
        txids = [rng.bytes(32) for _ in range(n)]
        assert jit.merkle_root(txids) == legacy.merkle_root(txids)
    out = jit.merkle_roots(np.zeros((0, 32), np.uint8), np.zeros(1, np.int64))
    assert out.shape == (0, 32)
    _check([0] * 20)
