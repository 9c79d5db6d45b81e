"""A run directory that survives SIGKILL: a mismatch log fsynced per shard, a results
part per shard, and a checkpoint written atomically after both."""
from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from parity.errors import ParityError

RESULTS_SCHEMA = pa.schema([
    ("block", pa.int64()), ("header_hash", pa.binary(32)), ("tx_root", pa.binary(32)),
    ("status", pa.uint32()),
])


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class RunDir:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.log_path = path / "mismatches.jsonl"
        self.checkpoint_path = path / "checkpoint.json"
        self.parts = path / "results"

    def start(self, identity: dict, resume: bool) -> dict | None:
        """Fresh run (clears the directory) or resume (returns the checkpoint)."""
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
            return checkpoint
        if self.path.exists():
            shutil.rmtree(self.path)
        self.parts.mkdir(parents=True)
        self.log_path.touch()
        return None

    def append_records(self, records: list[dict]) -> int:
        """Append and fsync; returns the log size after the append."""
        with open(self.log_path, "ab") as f:
            for r in records:
                f.write((json.dumps(r, sort_keys=True) + "\n").encode())
            f.flush()
            os.fsync(f.fileno())
            return f.tell()

    def write_part(self, index: int, table: pa.Table) -> None:
        tmp = self.parts / f"part-{index:06d}.parquet.tmp"
        pq.write_table(table, tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        tmp.replace(self.parts / f"part-{index:06d}.parquet")

    def checkpoint(self, data: dict) -> None:
        tmp = self.checkpoint_path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            json.dump(data, f)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.checkpoint_path)
        _fsync_dir(self.path)

    def records(self) -> Iterator[dict]:
        with open(self.log_path, "rb") as f:
            for line in f:
                yield json.loads(line)

    def merge_results(self, out: Path, shards: int) -> None:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        with pq.ParquetWriter(tmp, RESULTS_SCHEMA) as writer:
            for i in range(shards):
                writer.write_table(pq.read_table(self.parts / f"part-{i:06d}.parquet"))
        tmp.replace(out)
