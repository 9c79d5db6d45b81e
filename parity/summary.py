"""What a run has found so far: merged shard outcomes, in shard order.

Both engines (local and Dask) only schedule shards and :meth:`RunSummary.add` their
outcomes; the report is built from a summary alone.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from kernels import constants as C
from parity.modes import Mode
from parity.stats import FunctionStats
from parity.step import ShardOutcome


@dataclass
class RunSummary:
    corpus: str
    blocks: int
    functions: tuple[str, ...]
    twins: dict[str, str]
    mode_start: Mode
    repeat: int = 1
    mode: Mode = Mode.SHADOW
    mode_changes: list[dict] = field(default_factory=list)
    stats: dict[str, FunctionStats] = field(default_factory=dict)
    replays_served: int = 0
    records_logged: int = 0
    kernel_seconds: float = 0.0
    warmup: dict[str, float] = field(default_factory=dict)
    blocks_done: int = 0
    served_valid: int = 0
    served_invalid: int = 0
    rule_counts: list[int] = field(default_factory=lambda: [0] * len(C.RULE_NAMES))
    warnings: list[str] = field(default_factory=list)
    legacy_only: dict[str, str] = field(default_factory=dict)  # function -> why, not compared

    def __post_init__(self) -> None:
        if not self.stats:
            self.stats = {fn: FunctionStats() for fn in self.functions}
            self.mode = self.mode_start

    def add(self, out: ShardOutcome) -> None:
        """Merge one shard's outcome (shards must come in order)."""
        for fn, st in out.stats.items():
            self.stats[fn].merge(st)
        if out.demotion and self.mode == Mode.REFACTORED_PRIMARY:
            self.mode_changes.append({"time": time.time(), "from": self.mode.label,
                                      "to": Mode.SHADOW.label, "reason": out.demotion})
            self.mode = Mode.SHADOW
        if out.status is not None and len(out.status):
            status = out.status
            self.replays_served += int(np.count_nonzero(status & C.COMMITMENT_REPLAY))
            invalid = int(np.count_nonzero(status))
            self.served_invalid += invalid
            self.served_valid += len(status) - invalid
            for bit in range(len(C.RULE_NAMES)):
                self.rule_counts[bit] += int(np.count_nonzero(status & np.uint32(1 << bit)))
        self.records_logged += len(out.records)
        self.kernel_seconds += out.kernel_seconds
        self.blocks_done = out.start + out.blocks

    @property
    def failed(self) -> bool:
        return any(s.mismatches or s.errors for s in self.stats.values())

    def top_rules(self, k: int = 3) -> list[tuple[str, int]]:
        ranked = sorted(((n, c) for n, c in zip(C.RULE_NAMES, self.rule_counts) if c),
                        key=lambda x: -x[1])
        return ranked[:k]

    def to_json(self) -> dict:
        d = dict(self.__dict__)
        d["mode_start"], d["mode"] = int(self.mode_start), int(self.mode)
        d["stats"] = {fn: s.to_json() for fn, s in self.stats.items()}
        d["functions"] = list(self.functions)
        return d

    @classmethod
    def from_json(cls, d: dict) -> RunSummary:
        d = dict(d)
        d["mode_start"], d["mode"] = Mode(d["mode_start"]), Mode(d["mode"])
        d["stats"] = {fn: FunctionStats.from_json(s) for fn, s in d["stats"].items()}
        d["functions"] = tuple(d["functions"])
        return cls(**d)
