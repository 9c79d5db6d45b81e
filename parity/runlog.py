"""A run directory that survives SIGKILL: a mismatch log fsynced per shard, a results
part per shard (Arrow IPC: written and read back at memory speed; only the merged
``--results`` file is Parquet), and a checkpoint written atomically after both."""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from parity.errors import ParityError
from parity.functions import RESULT_COLUMNS
from parity.outputs import (
    PARQUET_KEY,
    OutputDir,
    OutputFile,
    atomic_write,
    atomic_write_text,
    parquet_tagged,
    read_marker,
)

#: SPEC section 6 (block, header_hash, tx_root, status), then the added functions' columns
RESULTS_SCHEMA = pa.schema([("block", pa.int64()), *RESULT_COLUMNS],
                           metadata={PARQUET_KEY: b"results"})
#: how results tables are written: the hash columns are random bytes, which neither a
#: dictionary nor compression shrinks (trying costs more than the write itself)
RESULTS_WRITE = {"use_dictionary": ["status"], "compression": "snappy"}
RUN_OWNED = ("mismatches.jsonl", "checkpoint.json", "summary.json", "results", "staged.txt",
             ".*.tmp")


def results_output(path: str | Path) -> OutputFile:
    """``--results``: replaced only when it is a results file parity wrote (and --force)."""
    return OutputFile(path, "--results", parquet_tagged("results"))


class RunDir:
    """The run directory; it carries parity's marker, and a fresh run takes it only when it
    is new, empty, or (with ``force``) an earlier parity run directory."""

    def __init__(self, path: Path, force: bool = False) -> None:
        self.path = path
        self.force = force
        self.out = OutputDir(path, "run", RUN_OWNED, "--run-dir")
        self.log_path = path / "mismatches.jsonl"
        self.checkpoint_path = path / "checkpoint.json"
        self.parts = path / "results"
        self.staged_path = path / "staged.txt"

    def check(self, resume: bool) -> None:
        """Refuse now what :meth:`start` would refuse."""
        if resume:
            if read_marker(self.path) is None:
                raise ParityError(f"--run-dir {self.path}: not a parity run directory; "
                                  "nothing to resume")
        else:
            self.out.check(self.force)

    def start(self, identity: dict, resume: bool) -> dict | None:
        """Fresh run (takes the directory) or resume (returns the checkpoint)."""
        self.check(resume)
        if resume:
            if not self.checkpoint_path.is_file():
                raise ParityError(f"{self.checkpoint_path}: nothing to resume (no checkpoint)")
            try:
                checkpoint = json.loads(self.checkpoint_path.read_text())
            except (OSError, ValueError) as exc:
                raise ParityError(f"{self.checkpoint_path}: unreadable checkpoint ({exc})") from None
            if checkpoint.get("identity") != identity:
                raise ParityError(f"{self.checkpoint_path}: the checkpoint is for another corpus or "
                                  "other options; run without --resume to start over")
            with open(self.log_path, "r+b") as f:  # drop records of the shard cut short
                f.truncate(checkpoint["log_bytes"])
            self.drop_staged()
            return checkpoint
        if read_marker(self.path) is not None:
            self.drop_staged()
        self.out.prepare(self.force)
        self.parts.mkdir()
        self.log_path.touch()
        return None

    def note_staged(self, tmp: Path | None) -> None:
        """Record the staged ``--results`` file being written (``None``: none now), so a
        later run here removes it if this one is killed before installing it."""
        if tmp is not None:
            atomic_write_text(self.staged_path, str(tmp.resolve()))
        elif self.staged_path.exists():
            self.staged_path.unlink()

    def drop_staged(self) -> None:
        """Remove the staged ``--results`` file an earlier run here left (killed)."""
        if not self.staged_path.is_file():
            return
        tmp = Path(self.staged_path.read_text().strip())
        if tmp.name.startswith(".") and tmp.name.endswith(".tmp") and tmp.is_file():
            tmp.unlink()  # a name only parity's staged files have, recorded by parity
        self.staged_path.unlink()

    def append_records(self, records: list[dict]) -> int:
        """Append and fsync; returns the log size after the append."""
        with open(self.log_path, "ab") as f:
            for r in records:
                f.write((json.dumps(r, sort_keys=True) + "\n").encode())
            f.flush()
            os.fsync(f.fileno())
            return f.tell()

    def write_part(self, index: int, table: pa.Table) -> None:
        """Shard ``index``'s results; a failed write (a full disk, a read-only directory)
        is a one-line error naming the part (the checkpoint stays at the shard before)."""
        def write(tmp: Path) -> None:
            with pa.OSFile(str(tmp), "wb") as f, ipc.new_file(f, RESULTS_SCHEMA) as w:
                w.write_table(table)
        path = self.parts / f"part-{index:06d}.arrow"
        try:
            atomic_write(path, write)
        except OSError as exc:  # Arrow's own message wraps the system's: say just that
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise ParityError(f"cannot write results part {path}: {reason}") from exc

    def read_part(self, index: int) -> pa.Table:
        """Shard ``index``'s results (a Parquet part, from a run an earlier parity began)."""
        path = self.parts / f"part-{index:06d}.arrow"
        if not path.exists() and path.with_suffix(".parquet").exists():
            return pq.read_table(path.with_suffix(".parquet"), schema=RESULTS_SCHEMA)
        with pa.OSFile(str(path), "rb") as src:
            return ipc.open_file(src).read_all()

    def checkpoint(self, data: dict) -> None:
        atomic_write_text(self.checkpoint_path, json.dumps(data))

    def records(self) -> Iterator[dict]:
        with open(self.log_path, "rb") as f:
            for line in f:
                yield json.loads(line)

    def merge_results(self, out: Path, shards: int, force: bool) -> None:
        def write(tmp: Path) -> None:
            with pq.ParquetWriter(tmp, RESULTS_SCHEMA, **RESULTS_WRITE) as writer:
                for i in range(shards):
                    writer.write_table(self.read_part(i))
        results_output(out).write(force, write)
