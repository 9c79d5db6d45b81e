"""Prometheus metrics with the names of the monitoring catalog our users' dashboards use."""
from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from kernels.constants import COMMITMENT_REPLAY, TIER_NAMES
from parity.functions import REGISTRY
from parity.modes import Mode
from parity.stats import FunctionStats

if TYPE_CHECKING:
    from parity.step import ShardOutcome

#: microseconds to seconds: 1us .. 10s
BUCKETS = (1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3,
           0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_FUNCTIONS = tuple(REGISTRY)  # every compared function, at 0 from the start
MAX_FUNCTIONS = 32
SERVED = ("legacy", "refactored")
IMPLEMENTATIONS = ("legacy", "refactored")


class _BeforeCollect:
    """A collector that yields nothing but runs hooks first (registered before the rest,
    so the series read afterwards are up to date)."""

    def __init__(self, hooks: list[Callable[[], None]]) -> None:
        self.hooks = hooks

    def collect(self) -> list:
        for hook in list(self.hooks):
            hook()
        return []


class Metrics:
    """One registry per process (or per batch run); every labelled counter starts at 0."""

    def __init__(self, functions: tuple[str, ...] = BATCH_FUNCTIONS,
                 registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        #: run before every collection (first in the registry): per-call experiments move
        #: their lock-free counts into the series below
        self.before_collect: list[Callable[[], None]] = []
        r.register(_BeforeCollect(self.before_collect))
        self._lock = threading.Lock()
        self.functions: set[str] = set()
        self.match_rate = Gauge("dual_run_parity_match_rate",
                                "Share of compared outputs that matched bit for bit (NaN before "
                                "the first comparison)", ["function"], registry=r)
        self.comparisons = Counter("dual_run_comparisons_total", "Outputs compared",
                                   ["function"], registry=r)
        self.mismatches = Counter("dual_run_mismatches_total", "Compared outputs that differed",
                                  ["function"], registry=r)
        self.legacy_duration = Histogram("dual_run_legacy_duration_seconds",
                                         "Duration of a legacy call", ["function"],
                                         buckets=BUCKETS, registry=r)
        self.refactored_duration = Histogram("dual_run_refactored_duration_seconds",
                                             "Duration of a refactored call", ["function"],
                                             buckets=BUCKETS, registry=r)
        self.speedup = Gauge("dual_run_speedup_ratio",
                             "Legacy mean duration over refactored mean duration",
                             ["function"], registry=r)
        self.mode_active = Gauge("codec_mode_active", "Codec mode in force (0-3)", registry=r)
        self.mode_requests = Counter("codec_mode_requests_total",
                                     "Requests by mode and by the implementation served",
                                     ["mode", "served"], registry=r)
        self.header_hash = Histogram("header_hash_duration_seconds",
                                     "Header hashing duration per call", ["implementation"],
                                     buckets=BUCKETS, registry=r)
        self.merkle_root = Histogram("merkle_root_duration_seconds",
                                     "Merkle root duration per call", ["implementation"],
                                     buckets=BUCKETS, registry=r)
        self.block_validation = Histogram(
            "block_validation_duration_seconds",
            "Validation duration per block: one observation per block validated (in batch "
            "runs each block of a batch observes the batch's per-block mean)", ["tier"],
            buckets=BUCKETS, registry=r)
        self.replays = Counter("epoch_replay_detected_total",
                               "Blocks served with COMMITMENT_REPLAY set", registry=r)
        self.bypasses = Counter("epoch_replay_bypass_successful_total",
                                "Blocks served without COMMITMENT_REPLAY while the other twin "
                                "set it (a replay got through: P0)", registry=r)
        self._sums: dict[str, FunctionStats] = {}  # behind the rate and speedup gauges
        self._children: dict[str, tuple] = {}
        self._served = {(m, s): self.mode_requests.labels(mode=m.label, served=s)
                        for m in Mode for s in SERVED}
        for impl in IMPLEMENTATIONS:
            self.header_hash.labels(implementation=impl)
            self.merkle_root.labels(implementation=impl)
        for tier in TIER_NAMES:
            self.block_validation.labels(tier=tier)
        for fn in functions:
            self.add_function(fn)

    def add_function(self, fn: str) -> None:
        with self._lock:
            if fn in self.functions:
                return
            if len(self.functions) >= MAX_FUNCTIONS:
                raise ValueError(f"too many function labels (at most {MAX_FUNCTIONS})")
            self.functions.add(fn)
            self.match_rate.labels(function=fn).set(math.nan)
            self.comparisons.labels(function=fn)
            self.mismatches.labels(function=fn)
            self.legacy_duration.labels(function=fn)
            self.refactored_duration.labels(function=fn)
            self.speedup.labels(function=fn).set(math.nan)
            self._sums[fn] = FunctionStats()
            impl = {"header_hash": self.header_hash, "merkle_root": self.merkle_root}.get(fn)
            self._children[fn] = (  # .labels() is slow: look each child up once
                self.legacy_duration.labels(function=fn), self.refactored_duration.labels(function=fn),
                self.comparisons.labels(function=fn), self.mismatches.labels(function=fn),
                self.match_rate.labels(function=fn), self.speedup.labels(function=fn),
                impl.labels(implementation="legacy") if impl else None,
                impl.labels(implementation="refactored") if impl else None)

    def set_mode(self, mode: Mode) -> None:
        self.mode_active.set(int(mode))

    def observe(self, fn: str, legacy_s: float | None, refactored_s: float | None,
                compared: int = 0, mismatched: int = 0) -> None:
        """One dual (or single) call of ``fn``: durations and comparison counts."""
        if fn not in self._children:
            self.add_function(fn)
        leg, ref, cmp_, mis, rate, speed, impl_l, impl_r = self._children[fn]
        with self._lock:
            s = self._sums[fn]
            if legacy_s is not None:
                leg.observe(legacy_s)
                if impl_l is not None:
                    impl_l.observe(legacy_s)
                s.time("legacy", legacy_s)
            if refactored_s is not None:
                ref.observe(refactored_s)
                if impl_r is not None:
                    impl_r.observe(refactored_s)
                s.time("refactored", refactored_s)
            if compared:
                cmp_.inc(compared)
                s.comparisons += compared
                if mismatched:
                    mis.inc(mismatched)
                    s.mismatches += mismatched
                rate.set(1.0 - s.mismatches / s.comparisons)
            if compared and s.legacy_calls and s.refactored_calls and s.refactored_seconds > 0:
                speed.set((s.legacy_seconds / s.legacy_calls)
                          / (s.refactored_seconds / s.refactored_calls))

    def served(self, mode: Mode, which: str, n: int = 1) -> None:
        self._served[(mode, which)].inc(n)

    def observe_outcome(self, out: ShardOutcome) -> None:
        """A shard's calls, comparisons, served counts, replays and per-block validation
        times (one observation per block validated, at the shard's per-block mean)."""
        for fn, fo in out.functions.items():
            self.observe(fn, fo.legacy_s, fo.refactored_s, fo.compared, fo.mismatched)
            for which, n in fo.served.items():
                self.served(out.mode, which, n)
        if out.status is not None:
            self.replays.inc(int(np.count_nonzero(out.status & COMMITMENT_REPLAY)))
            self.bypasses.inc(replay_bypasses(out.status, out.statuses.values()))
        if out.validation_seconds is not None and out.blocks:
            per_block = out.validation_seconds / out.blocks
            for tier, count in out.tiers.items():
                observe_many(self.block_validation.labels(tier=tier), per_block, count)


def observe_many(child: Any, value: float, count: int) -> None:
    """``count`` observations of ``value`` in one step (prometheus_client has no bulk
    observe; this adds to the same bucket and sum values ``observe`` does)."""
    if count <= 0:
        return
    buckets, upper = getattr(child, "_buckets", None), getattr(child, "_upper_bounds", None)
    if buckets is None or upper is None:  # another client version: the slow, sure way
        for _ in range(count):
            child.observe(value)
        return
    child._sum.inc(value * count)
    for i, bound in enumerate(upper):
        if value <= bound:
            buckets[i].inc(count)
            break


def replay_bypasses(served: np.ndarray, statuses: Any) -> int:
    """Blocks served without COMMITMENT_REPLAY although a twin set it (so the other twin,
    the one served, let the replay through). Only countable where both twins ran."""
    flagged = np.zeros(served.shape, dtype=bool)
    for s in statuses:
        flagged |= (s & COMMITMENT_REPLAY) != 0
    return int(np.count_nonzero(flagged & ((served & COMMITMENT_REPLAY) == 0)))
