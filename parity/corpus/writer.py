"""Streaming corpus writer: shards in, Parquet files and a checksummed manifest out.

The writer fills a fresh directory (in practice a :func:`parity.outputs.staging_dir`)
that :meth:`parity.outputs.OutputDir.adopt` then moves into place; it never writes
into a directory that already holds anything.
"""
from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from kernels.constants import Parent
from parity.corpus.manifest import MANIFEST, MAX_FILES, FileEntry, Manifest
from parity.corpus.reader import file_blake3
from parity.corpus.shard import SCHEMA, Shard, to_table
from parity.errors import ParityError
from parity.outputs import fsync_path, usual_mode

#: what ``--force`` may remove from a corpus directory parity wrote
CORPUS_OWNED = ("manifest.json", "blocks-*.parquet", "ground-truth.parquet")


def check_rows_per_file(rows_per_file: int, blocks: int | None = None) -> None:
    """Refuse a file size the writer cannot use, or (given ``blocks``) one that would need
    more files than a manifest may list."""
    if rows_per_file < 1:
        raise ParityError("--rows-per-file must be at least 1")
    if blocks is not None and -(-blocks // rows_per_file) > MAX_FILES:
        raise ParityError(f"--rows-per-file {rows_per_file}: {blocks:,} blocks would need more "
                          f"than {MAX_FILES:,} files; raise --rows-per-file")


#: how block files are written, per column: the header and the transaction ids are mostly
#: hash bytes, which zstd shrank by 9% and 0% (1M generated blocks) while every read paid
#: for it (pass 1's header column 0.20 -> 0.10-0.17 s, all shards 0.63-0.70 -> 0.56-0.64 s);
#: the solution numbers, targets and indices compress well. Readers take any Parquet
BLOCKS_WRITE: dict = {
    "compression": {"header": "none", "txids.list.element": "none",
                    "numbers.list.element": "zstd", "target": "zstd",
                    "indices.list.element": "zstd"},
    "use_dictionary": ["numbers.list.element", "target", "indices.list.element"]}

class CorpusWriter:
    """Append shards in chain order; files roll over every ``rows_per_file`` rows and
    each appended shard becomes one row group. ``close()`` writes the manifest.
    ``directory`` must not exist or be empty."""

    def __init__(self, directory: str | Path, *, now: int, difficulty_target: bytes,
                 anchor: Parent | None, rows_per_file: int = 100_000) -> None:
        self.dir = Path(directory)
        check_rows_per_file(rows_per_file)
        if self.dir.exists() and (not self.dir.is_dir() or any(self.dir.iterdir())):
            raise ParityError(f"{self.dir}: the corpus writer needs a new or empty directory")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.manifest = Manifest(0, now, difficulty_target, anchor, [])
        self.rows_per_file = rows_per_file
        self._writer: pq.ParquetWriter | None = None
        self._rows = 0

    def _close_file(self) -> None:
        if self._writer is not None:
            self._writer.close()
            entry = self.manifest.files[-1]
            entry.rows = self._rows
            fsync_path(self.dir / entry.path)
            entry.blake3 = file_blake3(self.dir / entry.path)
            self._writer = None

    def append(self, shard: Shard) -> None:
        lo = 0
        while lo < len(shard):
            if self._writer is None:
                if len(self.manifest.files) >= MAX_FILES:
                    raise ParityError(f"{self.dir}: a corpus may have at most {MAX_FILES:,} "
                                      "files; raise --rows-per-file")
                name = f"blocks-{len(self.manifest.files):05d}.parquet"
                self._writer = pq.ParquetWriter(self.dir / name, SCHEMA, **BLOCKS_WRITE)
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
            fsync_path(self.dir / name)
            self.manifest.files.append(FileEntry(name, 0, file_blake3(self.dir / name)))
        self.manifest.write(self.dir)
        usual_mode(self.dir / MANIFEST)
        usual_mode(self.dir)
        return self.manifest

    def __enter__(self) -> CorpusWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()
        elif self._writer is not None:
            self._writer.close()
