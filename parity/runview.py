"""A run directory read back: ``summary.json`` (written by both engines at the end of a
run), the checkpoint's summary for a run cut short, the mismatch log, and the corpus
headers of the blocks the records name."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from parity.errors import ParityError
from parity.outputs import atomic_write_text, read_marker
from parity.summary import RunSummary

SUMMARY_FILE = "summary.json"
SUMMARY_FORMAT = "parity-run-summary"


def write_summary(run_dir: Path, summary: RunSummary, report: dict) -> None:
    """The final summary with the report's timing, machine and engine (atomic)."""
    data = {"format": SUMMARY_FORMAT, "summary": summary.to_json(),
            "timing": report.get("timing"), "machine": report.get("machine"),
            "engine": report.get("engine") or {"name": "local"},
            "corpus_path": str(Path(summary.corpus).resolve()),
            "finished": report.get("finished")}
    atomic_write_text(run_dir / SUMMARY_FILE, json.dumps(data, default=str) + "\n")


@dataclass
class RunView:
    """What ``parity report`` rebuilds a report from."""

    path: Path
    summary: RunSummary
    records: list[dict]
    complete: bool  # a summary.json (the run finished), not just a checkpoint
    saved: dict = field(default_factory=dict)  # summary.json's timing, machine, engine

    @property
    def corpus_path(self) -> str:
        """The corpus, resolved when the run finished (the summary keeps it as given)."""
        return str(self.saved.get("corpus_path") or self.summary.corpus)

    @property
    def log_path(self) -> Path:
        return self.path / "mismatches.jsonl"

    def report(self) -> dict:
        """The JSON report as the run would have printed it (timing and machine as
        recorded; a run cut short has neither)."""
        from parity.report import build_report
        s = self.summary
        timing = self.saved.get("timing") or {}
        wall = timing.get("wall_seconds") or s.kernel_seconds + sum(s.warmup.values())
        report = build_report(s, self.records, wall=wall, log_path=str(self.log_path))
        for key in ("timing", "machine", "engine", "finished"):
            if self.saved.get(key):
                report[key] = self.saved[key]
        if not self.complete:
            report["warnings"] = [*report.get("warnings", []),
                                  f"incomplete run: {s.blocks_done:,} of {s.blocks:,} blocks "
                                  "(from the checkpoint; resume it with --resume); wall time "
                                  "and machine not recorded"]
            report["machine"] = {**report["machine"], "note": "this machine (not recorded)"}
        return report


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ParityError(f"{path}: unreadable ({exc})") from None
    if not isinstance(data, dict):
        raise ParityError(f"{path}: not a JSON object")
    return data


def load_run(path: str | Path) -> RunView:
    """Read a run directory; refuses (exit 2) anything that is not one."""
    d = Path(path)
    if not d.is_dir():
        raise ParityError(f"{d}: not a directory")
    marker = read_marker(d)
    if marker is None or marker.get("kind") != "run":
        raise ParityError(f"{d}: not a parity run directory (no run marker)")
    saved: dict = {}
    if (d / SUMMARY_FILE).is_file():
        saved = _read_json(d / SUMMARY_FILE)
        if saved.get("format") != SUMMARY_FORMAT:
            raise ParityError(f"{d / SUMMARY_FILE}: not a parity run summary")
        raw, complete = saved.get("summary"), True
    elif (d / "checkpoint.json").is_file():
        raw, complete = _read_json(d / "checkpoint.json").get("summary"), False
    else:
        raise ParityError(f"{d}: a parity run directory without summary.json or a checkpoint "
                          "(the run has not started)")
    try:
        summary = RunSummary.from_json(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise ParityError(f"{d}: unreadable run summary ({exc})") from None
    records = []
    log = d / "mismatches.jsonl"
    if log.is_file():
        with open(log, "rb") as f:
            for n, line in enumerate(f, 1):
                try:
                    records.append(json.loads(line))
                except ValueError:
                    raise ParityError(f"{log}:{n}: not a JSON record") from None
    return RunView(d, summary, records, complete, saved)


class CorpusBlocks:
    """Headers (and transaction counts) of single blocks of a corpus, read lazily; empty
    answers when the corpus is gone or unreadable (the page says so)."""

    def __init__(self, path: str) -> None:
        from parity.corpus import open_corpus
        self.error: str | None = None
        self.groups: list = []
        try:
            self.corpus = open_corpus(path, verify=False)
            self.groups = self.corpus.row_groups()
        except (ParityError, OSError, ValueError) as exc:
            self.error = str(exc)
        self._cache: dict[tuple[int, bool], object] = {}

    def _group(self, block: int) -> int | None:
        starts = [g.start for g in self.groups]
        i = int(np.searchsorted(starts, block, side="right")) - 1
        if i < 0 or block >= self.groups[i].start + self.groups[i].rows:
            return None
        return i

    def _read(self, i: int, shard: bool) -> object:
        key = (i, shard)
        if key not in self._cache:
            if len(self._cache) > 64:
                self._cache.clear()
            g = self.groups[i]
            self._cache[key] = self.corpus.read_shard(g) if shard else self.corpus.read_headers(g)
        return self._cache[key]

    def _locate(self, block: int, shard: bool) -> tuple[Any, int] | None:
        """The headers (or the whole shard) holding ``block``, and its row there; None when
        the block is unknown or the corpus cannot be read (the error is kept)."""
        i = self._group(block) if self.error is None else None
        if i is None:
            return None
        try:
            data = self._read(i, shard)
        except (ParityError, OSError) as exc:
            self.error = str(exc)
            return None
        return data, block - self.groups[i].start

    def header(self, block: int) -> bytes | None:
        found = self._locate(block, False)
        return None if found is None else bytes(found[0][found[1]])

    def tx_count(self, block: int) -> int | None:
        found = self._locate(block, True)
        if found is None:
            return None
        shard, r = found
        offsets = shard.id_offsets
        return int(offsets[r + 1] - offsets[r])
