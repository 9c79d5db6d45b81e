"""Streaming corpus writer: shards in, Parquet files and a checksummed manifest out."""
from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from kernels.constants import Parent
from parity.corpus.manifest import MANIFEST, FileEntry, Manifest
from parity.corpus.reader import file_blake3
from parity.corpus.shard import SCHEMA, Shard, to_table
from parity.errors import ParityError


class CorpusWriter:
    """Append shards in chain order; files roll over every ``rows_per_file`` rows and
    each appended shard becomes one row group. ``close()`` writes the manifest."""

    def __init__(self, directory: str | Path, *, now: int, difficulty_target: bytes,
                 anchor: Parent | None, rows_per_file: int = 100_000,
                 overwrite: bool = False) -> None:
        self.dir = Path(directory)
        if (self.dir / MANIFEST).exists() and not overwrite:
            raise ParityError(f"{self.dir}: a corpus already exists there (use --force)")
        self.dir.mkdir(parents=True, exist_ok=True)
        if rows_per_file < 1:
            raise ParityError("rows per file must be at least 1")
        self.manifest = Manifest(0, now, difficulty_target, anchor, [])
        self.rows_per_file = rows_per_file
        self._writer: pq.ParquetWriter | None = None
        self._rows = 0

    def _close_file(self) -> None:
        if self._writer is not None:
            self._writer.close()
            entry = self.manifest.files[-1]
            entry.rows = self._rows
            entry.blake3 = file_blake3(self.dir / entry.path)
            self._writer = None

    def append(self, shard: Shard) -> None:
        lo = 0
        while lo < len(shard):
            if self._writer is None:
                name = f"blocks-{len(self.manifest.files):05d}.parquet"
                self._writer = pq.ParquetWriter(self.dir / name, SCHEMA, compression="zstd")
                self.manifest.files.append(FileEntry(name, 0, ""))
                self._rows = 0
            hi = min(len(shard), lo + self.rows_per_file - self._rows)
            part = shard if (lo == 0 and hi == len(shard)) else shard.slice(lo, hi)
            self._writer.write_table(to_table(part), row_group_size=len(part) or 1)
            self._rows += len(part)
            self.manifest.blocks += len(part)
            if self._rows >= self.rows_per_file:
                self._close_file()
            lo = hi

    def close(self) -> Manifest:
        self._close_file()
        if not self.manifest.files:  # an empty corpus still has one (empty) file
            name = "blocks-00000.parquet"
            pq.write_table(SCHEMA.empty_table(), self.dir / name)
            self.manifest.files.append(FileEntry(name, 0, file_blake3(self.dir / name)))
        self.manifest.write(self.dir)
        return self.manifest

    def __enter__(self) -> CorpusWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()
        elif self._writer is not None:
            self._writer.close()
