"""Open a corpus, verify it against its manifest, and iterate it shard by shard.

Memory stays bounded by a row group or two: shards are read one at a time, or one ahead
of the shard being worked on (:meth:`Corpus.read_ahead`). Row groups of
zero rows hold no blocks and are skipped (SPEC section 6: they change nothing).
"""
from __future__ import annotations

import ctypes
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from blake3 import blake3

from kernels.constants import HEADER_SIZE
from parity.corpus.manifest import MANIFEST, FileEntry, Manifest, read_manifest
from parity.corpus.shard import SCHEMA, Shard, from_batch, one_chunk
from parity.errors import CorpusError

#: bytes read and hashed per step of :func:`file_blake3`
CHECKSUM_STEP = 1 << 25


def file_blake3(path: Path) -> str:
    """The BLAKE3 hex digest of a file, read in 32 MiB steps into one buffer. Each step
    takes the GIL back twice (after the read, after the hash); beside a thread running
    Python, as when the checksums run while a run loads its kernels, each take waits up
    to the 5 ms switch interval: 515 MB in 4 MiB steps took 1.5 s there, in 32 MiB steps
    0.45 s (0.15 s either way alone). The buffer is no larger than the file: it is
    zero-filled when made, and 32 MiB for each of many small files cost 22 ms a file."""
    h = blake3(max_threads=blake3.AUTO)
    with open(path, "rb", buffering=0) as f:
        buf = memoryview(bytearray(max(1, min(CHECKSUM_STEP, os.fstat(f.fileno()).st_size))))
        while n := f.readinto(buf):
            h.update(buf[:n])
    return h.hexdigest()


def _check_schema(path: Path, schema: pa.Schema) -> None:
    names = [f.name for f in schema]
    if names != SCHEMA.names:
        raise CorpusError(path, f"columns {names} differ from {SCHEMA.names}")
    for want in SCHEMA:
        got = schema.field(want.name).type
        same = got == want.type
        if pa.types.is_list(got) and pa.types.is_list(want.type):
            same = got.value_type == want.type.value_type  # the list item's name is free
        if not same:
            raise CorpusError(path, f"column {want.name} has type {got}, expected {want.type}")


class RowGroup(NamedTuple):
    """One shard: Parquet row group ``group`` of ``file``, blocks ``start..start+rows``,
    whose first row is row ``row`` of its file."""

    file: str
    group: int
    start: int
    rows: int
    row: int


@dataclass
class Corpus:
    """A verified corpus: its manifest and a shard iterator over its Parquet files."""

    path: Path
    manifest: Manifest
    #: give freed memory back after each row group read (:func:`release_freed_memory`):
    #: a flat peak RSS, for some page faults on the next read (see ``ShadowRun.execute``)
    release_memory: bool = True

    @property
    def blocks(self) -> int:
        return self.manifest.blocks

    def row_groups(self) -> list[RowGroup]:
        """Every shard (Parquet row group holding at least one row) in chain order."""
        out = []
        start = 0
        for entry in self.manifest.files:
            meta = _parquet(self.path / entry.path).metadata
            row = 0
            for g in range(meta.num_row_groups):
                rows = meta.row_group(g).num_rows
                if rows:
                    out.append(RowGroup(entry.path, g, start, rows, row))
                start += rows
                row += rows
        return out

    def read_shard(self, g: RowGroup) -> Shard:
        path = self.path / g.file
        try:
            table = pq.ParquetFile(path).read_row_group(g.group)
        except (OSError, pa.ArrowException) as exc:
            raise CorpusError(path, f"unreadable row group {g.group}: {exc}") from None
        if table.num_rows != g.rows:
            raise CorpusError(path, f"row group {g.group} holds {table.num_rows} rows, its "
                                    f"metadata says {g.rows}")
        try:
            shard = from_batch(table, start=g.start, file=g.file, row=g.row)
        except (pa.ArrowException, ValueError) as exc:
            raise CorpusError(path, f"row group {g.group}: {exc}") from None
        del table
        if self.release_memory:
            release_freed_memory()
        return shard

    def read_headers(self, g: RowGroup, file: pq.ParquetFile | None = None) -> np.ndarray:
        """Only the ``header`` column of one row group: ``uint8[n, 276]`` (read-only).
        ``file``: ``g.file`` already open (:meth:`headers_of`)."""
        path = self.path / g.file
        try:
            table = (file or pq.ParquetFile(path)).read_row_group(g.group, columns=["header"])
        except (OSError, pa.ArrowException) as exc:
            raise CorpusError(path, f"unreadable row group {g.group}: {exc}") from None
        raw = one_chunk(table.column("header"))
        if raw.null_count or len(raw) != g.rows:
            raise CorpusError(path, f"row group {g.group}: column header has {raw.null_count} "
                                    f"null values in {len(raw)} rows (metadata says {g.rows})")
        return np.frombuffer(raw.buffers()[1], np.uint8)[
            raw.offset * HEADER_SIZE:(raw.offset + len(raw)) * HEADER_SIZE].reshape(-1, HEADER_SIZE)

    def headers_of(self, groups: Sequence[RowGroup]) -> Iterator[np.ndarray]:
        """:meth:`read_headers` of each of ``groups`` in turn, each file opened once for
        its consecutive groups (opening parses the file's footer: on a thread beside one
        running Python, ten opens of one file cost 0.15-0.37 s of waits for the GIL)."""
        name, file = None, None
        for g in groups:
            if g.file != name:
                name, file = g.file, None
                try:
                    file = pq.ParquetFile(self.path / g.file)
                except (OSError, pa.ArrowException) as exc:
                    raise CorpusError(self.path / g.file, f"unreadable: {exc}") from None
            yield self.read_headers(g, file)

    def read_ahead(self, groups: Sequence[RowGroup], ahead: bool = True) -> Iterator[Shard]:
        """The shards of ``groups`` in order, each read (and decompressed, in Arrow code
        that releases the GIL) on a thread while the caller works on the one before: at
        most two shards are held. A row group that cannot be read raises when its turn
        comes, exactly where a plain sequential read would. ``ahead=False``: one shard
        at a time, read when its turn comes."""
        if not ahead:
            yield from (self.read_shard(g) for g in groups)
            return
        if not groups:
            return
        with ThreadPoolExecutor(1, thread_name_prefix="parity-read") as pool:
            pending = pool.submit(self.read_shard, groups[0])
            try:
                for g in groups[1:]:
                    shard = pending.result()
                    pending = pool.submit(self.read_shard, g)
                    yield shard
                yield pending.result()
            finally:
                pending.cancel()

    def shards(self, first_block: int = 0) -> Iterator[Shard]:
        """Shards (one Parquet row group each) in chain order, from ``first_block`` on."""
        for g in self.row_groups():
            if g.start + g.rows > first_block:
                yield self.read_shard(g)


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(None).malloc_trim  # glibc
    except (OSError, AttributeError):
        return None


_TRIM = _malloc_trim()


def release_freed_memory() -> None:
    """Give memory freed by Arrow's pool and by C's allocator back to the system. Both
    keep it otherwise (mimalloc; glibc, in one arena per thread), and the peak RSS of a
    long run grows with the row groups read (measured: +126 MiB over the header columns
    of 10 row groups) instead of staying at about one shard's worth."""
    pa.default_memory_pool().release_unused()
    if _TRIM is not None:
        _TRIM(0)


def _parquet(file: Path) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(file)
    except (OSError, pa.ArrowException) as exc:
        raise CorpusError(file, f"not a readable Parquet file ({exc})") from None


def _data_file(root: Path, entry: FileEntry, seen: dict[tuple[int, int], str]) -> Path:
    """``root / entry.path`` once checked: it exists, is a regular file, resolves (symlinks
    followed) inside the corpus directory ``root`` and is no file listed before."""
    file = root / entry.path
    try:
        real = file.resolve(strict=True)
        st = real.stat()
    except FileNotFoundError:
        raise CorpusError(file, "missing data file listed in the manifest") from None
    except (OSError, RuntimeError) as exc:  # a symlink loop, a name too long, ...
        raise CorpusError(file, f"cannot open ({getattr(exc, 'strerror', None) or exc})") from None
    if root not in real.parents:
        raise CorpusError(file, f"resolves to {real}, outside the corpus directory {root}")
    if not stat.S_ISREG(st.st_mode):
        raise CorpusError(file, "not a regular file")
    key = (st.st_dev, st.st_ino)
    if key in seen:
        raise CorpusError(file, f"is the same file as {seen[key]} (each file may be listed once)")
    seen[key] = entry.path
    return file


def open_corpus(path: str | Path, verify: bool = True) -> Corpus:
    """Open a corpus; with ``verify``, check checksums, row counts, types and block count.

    Data files must resolve inside the corpus directory and be listed once, verified or
    not. Nulls are refused when shards are read (:func:`~parity.corpus.shard.from_batch`).
    """
    directory = Path(path)
    manifest = read_manifest(directory)
    root = directory.resolve()
    seen: dict[tuple[int, int], str] = {}
    total = 0
    for entry in manifest.files:
        file = _data_file(root, entry, seen)
        if verify:
            digest = file_blake3(file)
            if digest != entry.blake3:
                raise CorpusError(file, f"checksum mismatch: blake3 {digest}, manifest says "
                                        f"{entry.blake3}")
        pf = _parquet(file)
        _check_schema(file, pf.schema_arrow)
        meta = pf.metadata
        rows = meta.num_rows
        if rows != entry.rows:
            raise CorpusError(file, f"has {rows} rows, manifest says {entry.rows}")
        if sum(meta.row_group(g).num_rows for g in range(meta.num_row_groups)) != rows:
            raise CorpusError(file, "row groups do not add up to the file's row count")
        total += rows
    if total != manifest.blocks:
        raise CorpusError(directory / MANIFEST,
                          f"files hold {total} blocks, manifest says {manifest.blocks}")
    return Corpus(directory, manifest)
