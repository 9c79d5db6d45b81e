"""Per-function counters and timings of a run, with the spread of the speedup."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class FunctionStats:
    comparisons: int = 0
    mismatches: int = 0
    errors: int = 0
    legacy_seconds: float = 0.0
    refactored_seconds: float = 0.0
    legacy_calls: int = 0
    refactored_calls: int = 0
    pairs: list[list[float]] = field(default_factory=list)  # [legacy s, refactored s] per shard

    def time(self, side: str, seconds: float) -> None:
        if side == "legacy":
            self.legacy_seconds += seconds
            self.legacy_calls += 1
        else:
            self.refactored_seconds += seconds
            self.refactored_calls += 1

    def pair(self, legacy: float | None, refactored: float | None) -> None:
        if legacy is not None and refactored is not None:
            self.pairs.append([legacy, refactored])

    def merge(self, other: FunctionStats) -> None:
        """Add another shard's (or run's) counts, times and timing pairs to these."""
        self.comparisons += other.comparisons
        self.mismatches += other.mismatches
        self.errors += other.errors
        self.legacy_seconds += other.legacy_seconds
        self.refactored_seconds += other.refactored_seconds
        self.legacy_calls += other.legacy_calls
        self.refactored_calls += other.refactored_calls
        self.pairs += other.pairs

    @property
    def match_rate(self) -> float | None:
        return None if not self.comparisons else 1.0 - self.mismatches / self.comparisons

    def speedup(self) -> dict | None:
        """Legacy time over refactored time: overall, and the spread over shards."""
        if not self.pairs:
            return None
        p = np.array(self.pairs)
        ok = p[:, 1] > 0
        ratios = p[ok, 0] / p[ok, 1]
        total_l, total_r = float(p[:, 0].sum()), float(p[:, 1].sum())
        if ratios.size == 0 or total_r <= 0:
            return None
        return {"overall": total_l / total_r, "median": float(np.median(ratios)),
                "p10": float(np.percentile(ratios, 10)), "p90": float(np.percentile(ratios, 90)),
                "min": float(ratios.min()), "max": float(ratios.max()), "samples": int(ratios.size)}

    def to_json(self) -> dict:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, data: dict) -> FunctionStats:
        return cls(**data)
