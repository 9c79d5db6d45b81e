"""The durable writes of a local run, on one thread while the next shard computes.

Each finished shard is handed over whole: its mismatch records (appended and fsynced),
its results part, then the checkpoint naming both, in that order, one shard after the
other, so a SIGKILL at any point leaves a checkpoint whose log and parts are complete.
With ``--results``, each shard's results also go into the results file as a row group
of a temporary file beside it (its data pushed to disk shard by shard), installed when
the run completes; a run that fails removes only that temporary file, and the run
directory records it (``staged.txt``) so the next run there removes one a SIGKILL left.

A failed write stops the run at the next shard handed over (or at :meth:`finish`); an
error or Ctrl-C in the caller first lets the shards already handed over be written. A
results part that cannot be written (a full disk) is an error naming it (exit 2); the
checkpoint then names the shard before it, where ``--resume`` continues.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from parity.corpus.reader import release_freed_memory
from parity.runlog import RESULTS_SCHEMA, RESULTS_WRITE, RunDir, results_output

#: ``checkpoint(next_shard, log_bytes)``: writes the run's checkpoint
Checkpoint = Callable[[int, int], None]


class _ResultsStream:
    """``--results`` written a shard at a time into a staged file (writer thread only)."""

    def __init__(self, path: Path, force: bool, run: RunDir) -> None:
        self._what = f"--results {path}"  # named in a failed write's error
        with contextlib.ExitStack() as stack:  # a failure here removes what it made
            stack.callback(run.note_staged, None)  # once the file is installed or removed
            tmp = stack.enter_context(results_output(path).staged(force))
            run.note_staged(tmp)  # a later run here removes it if this one is killed
            sink = stack.enter_context(pa.OSFile(str(tmp), "wb"))  # Arrow's own file
            self._fd = os.open(tmp, os.O_RDONLY)  # to push its data to disk
            stack.callback(os.close, self._fd)
            self._writer = stack.enter_context(
                pq.ParquetWriter(sink, RESULTS_SCHEMA, **RESULTS_WRITE))
            self._stack = stack.pop_all()

    def add(self, table: pa.Table) -> None:
        if not table.num_rows:
            return  # no empty row group
        try:
            self._writer.write_table(table)
            os.fdatasync(self._fd)  # the final fsync has one shard left to push
        except OSError as exc:  # a full disk: say which file (the command prints it)
            if exc.filename is None:
                exc.filename = self._what
            raise

    def close(self, ok: bool) -> None:
        """Install the file (``ok``) or remove the temporary one."""
        if ok:
            self._stack.close()
        else:
            self._stack.__exit__(RuntimeError, RuntimeError("run failed"), None)


class ShardWriter:
    """Writes each handed-over shard on one thread, in order (see the module)."""

    def __init__(self, run: RunDir, results: str | None, force: bool, first: int,
                 overlap: bool = True, release: bool = True) -> None:
        self.run = run
        #: False: each shard's writes end before :meth:`shard` returns (same thread, same
        #: order), so they never overlap the next shard's reading (a lower memory peak)
        self.overlap = overlap
        self.release = release  # give the writes' freed memory back after each shard
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="parity-write")
        self._last: Future | None = None
        self._error: BaseException | None = None
        self._stream: _ResultsStream | None = None
        if results:
            self._submit(self._open, Path(results), force, first)

    def _open(self, path: Path, force: bool, first: int) -> None:
        self._stream = _ResultsStream(path, force, self.run)
        for i in range(first):  # a resumed run: the shards done before
            self._stream.add(self.run.read_part(i))

    def _guarded(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run one write on the thread, unless an earlier one failed (kept in ``_error``)."""
        if self._error is not None:
            return
        try:
            fn(*args)
        except BaseException as exc:
            self._error = exc
            raise

    def _submit(self, fn: Callable[..., Any], *args: Any) -> None:
        if self._error is not None:
            raise self._error  # an earlier write failed: stop here
        self._last = self._pool.submit(self._guarded, fn, *args)

    def _write(self, index: int, records: list[dict], table: pa.Table,
               checkpoint: Checkpoint) -> None:
        log_bytes = self.run.append_records(records)
        self.run.write_part(index, table)
        checkpoint(index + 1, log_bytes)
        if self._stream is not None:
            self._stream.add(table)
        del table
        if self.release:  # this thread's own Arrow heap: freed pages back to the system
            release_freed_memory()

    def shard(self, index: int, records: list[dict], table: pa.Table,
              checkpoint: Checkpoint) -> None:
        """Hand over shard ``index``: records (JSON objects), results, then checkpoint."""
        self._submit(self._write, index, records, table, checkpoint)
        if not self.overlap and self._last is not None:
            self._last.result()

    def finish(self) -> None:
        """Wait for every write; install the results file (removed if a write failed)."""
        self._pool.shutdown(wait=True)  # interrupted: the thread keeps its stream (below)
        if self._stream is not None:
            self._stream.close(self._error is None)
        if self._error is not None:
            raise self._error

    def abort(self) -> None:
        """The run stops early: the shards handed over are still written (they are
        complete), the staged results file is removed. The caller's error stays the one
        raised; a failed write only ends the writes after it. A second Ctrl-C during
        the wait leaves the stream to the thread still writing it (never closed under
        it): the next run in this run directory removes the staged file."""
        self._pool.shutdown(wait=True)
        if self._stream is not None:
            self._stream.close(False)

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.finish()
        else:
            self.abort()
