"""Deterministic benchmark inputs (cached under bench/.data)."""
from __future__ import annotations

from functools import cache, lru_cache
from pathlib import Path

import numpy as np

from parity.corpus import Shard, open_corpus
from parity.corpus.generate import GenerateOptions, generate
from parity.corpus.shard import from_batch

DATA = Path(__file__).resolve().parent / ".data"


@cache
def headers(n: int) -> np.ndarray:
    return np.random.default_rng(n).integers(0, 256, (n, 276), dtype=np.uint8)


@cache
def id_lists(blocks: int, per_block: int) -> tuple[np.ndarray, np.ndarray]:
    ids = np.random.default_rng(blocks).integers(0, 256, (blocks * per_block, 32), dtype=np.uint8)
    return ids, np.arange(0, blocks * per_block + 1, per_block, dtype=np.int64)


def corpus(blocks: int, fault_rate: float = 0.0) -> Path:
    """A generated corpus of ``blocks`` blocks, honest or with ``fault_rate`` of them
    breaking rules (made once, then reused)."""
    path = DATA / (f"corpus-{blocks}" + (f"-faults-{fault_rate:g}" if fault_rate else ""))
    if not (path / "manifest.json").exists():
        generate(path, GenerateOptions(blocks=blocks, seed=blocks, fault_rate=fault_rate,
                                       shard_size=100_000, rows_per_file=1_000_000),
                 force=True)
    return path


@lru_cache(maxsize=4)
def chain(blocks: int, fault_rate: float = 0.0) -> Shard:
    """All blocks of :func:`corpus` as one shard (for validation benchmarks)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    c = open_corpus(corpus(blocks, fault_rate))
    table = pa.concat_tables([pq.read_table(c.path / f.path) for f in c.manifest.files])
    return from_batch(table)


@cache
def manifest(blocks: int, fault_rate: float = 0.0):
    """The corpus manifest, read (and checksummed) once, outside any timing."""
    return open_corpus(corpus(blocks, fault_rate)).manifest


def validate(twin, shard: Shard, blocks: int, fault_rate: float = 0.0) -> np.ndarray:
    m = manifest(blocks, fault_rate)
    return twin.validate_blocks(*shard.arrays(), now=m.now, difficulty_target=m.difficulty_target,
                                parent=m.anchor)


def commitments(twin, shard: Shard) -> np.ndarray:
    return twin.commitments(shard.headers, shard.numbers, shard.num_offsets, shard.targets,
                            shard.indices, shard.idx_offsets)
