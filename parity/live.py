"""Live validation: blocks validated as they arrive, both twins under the codec mode.

Each posted batch of consecutive blocks (SPEC section 6 JSONL lines) goes through the
same shard step as a batch run (:func:`parity.step.process_shard`), so the blocks of a
live session, in order, give exactly what ``parity shadow`` gives over them as a
corpus. Each twin keeps its own parent and replay state in memory; the store keeps
the commitments seen, the tip and every result and mismatch record, written in one
transaction per batch before the batch is answered. On start both twins' states are
restored from the store.

A block re-posted at a height already validated, with identical bytes, gets its stored
result (an idempotent retry); different bytes at a validated height are refused (409).
"""
from __future__ import annotations

import json
import struct
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from blake3 import blake3
from prometheus_client import Gauge, Histogram

from kernels import constants as C
from kernels.constants import Block, Parent
from parity.corpus.manifest import Manifest
from parity.corpus.shard import Shard, from_blocks
from parity.errors import StateError
from parity.functions import FUNCTIONS, resolve
from parity.liveparse import MAX_BATCH, BadBody, Batch, parse_body
from parity.livestore import Acknowledged, LiveStore, Tip, result_json
from parity.metrics import BUCKETS, Metrics
from parity.percall import Controller
from parity.step import ShardContext, Side, process_shard, warm_up
from parity.twins import DEFAULT_LEGACY, DEFAULT_REFACTORED, close_twin, legacy_only, load_twin

__all__ = ["MAX_BATCH", "Chain", "LiveValidator", "Refused", "block_digest", "install",
           "parse_batch"]


class Refused(Exception):
    """A batch refused as a whole; ``status`` is the HTTP status (400 or 409)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Chain:
    """What validation needs besides the blocks: a fixed clock (or the wall clock when
    None), the difficulty target and the anchor (the first block's parent)."""

    now: int | None
    difficulty_target: bytes
    anchor: Parent | None

    def params(self) -> dict:
        a = self.anchor
        return {"now": self.now, "difficulty_target": self.difficulty_target.hex(),
                "anchor": None if a is None else [a[0], a[1].hex(), a[2]]}


def block_digest(b: Block) -> bytes:
    """BLAKE3 over every byte of a block (header, ids, reveal), with lengths (the
    per-object definition; :func:`parity.liveparse.digests` computes it over a shard)."""
    h = blake3(bytes(b.header))
    h.update(struct.pack("<Q", len(b.txids)) + b"".join(bytes(t) for t in b.txids))
    h.update(struct.pack(f"<Q{len(b.numbers)}q", len(b.numbers), *b.numbers))
    h.update(struct.pack(f"<qQ{len(b.indices)}Q", b.target, len(b.indices), *b.indices))
    return h.digest()


def parse_batch(body: bytes) -> Batch:
    """The posted body as a batch; Refused(400) names what is wrong (the first bad line)."""
    try:
        return parse_body(body)
    except BadBody as exc:
        raise Refused(400, str(exc)) from None


class LiveMetrics:
    """The live exporter's own series, on the controller's registry."""

    def __init__(self, metrics: Metrics) -> None:
        r = metrics.registry
        self.cache_size = Gauge("epoch_replay_cache_size",
                                "Commitments in the durable replay cache", registry=r)
        self.persist = Histogram("cache_persist_duration_seconds",
                                 "Time to make one acknowledged batch durable (one transaction)",
                                 buckets=BUCKETS, registry=r)


class LiveValidator:
    """Validates posted batches; one per serving process, one store per deployment."""

    def __init__(self, controller: Controller, chain: Chain, legacy: str = DEFAULT_LEGACY,
                 refactored: str = DEFAULT_REFACTORED, functions: tuple[str, ...] = FUNCTIONS,
                 twin_timeout: float | None = None) -> None:
        self.controller = controller
        self.chain = chain
        self.functions = resolve(functions)
        self.store = LiveStore(controller.state, chain.params())
        self.legacy = Side("legacy", load_twin(legacy, "legacy", self.functions, twin_timeout))
        self.refactored = Side("refactored", load_twin(refactored, "refactored", self.functions,
                                                       twin_timeout, partial=True))
        #: functions a partial refactored twin lacks: legacy alone runs them
        self.legacy_only = frozenset(legacy_only(self.refactored.twin,
                                                 f"--refactored {refactored}", self.functions))
        self.live_metrics = LiveMetrics(controller.metrics)
        self._lock = threading.Lock()
        self._warm = False
        self.restore()

    def close(self) -> None:
        """Stop the twins that run as processes (``exec:``)."""
        for side in (self.legacy, self.refactored):
            close_twin(side.twin)

    def restore(self) -> None:
        """Both twins' chain state from the store: every commitment seen, the tip."""
        commits = self.store.commitments()
        tip = self.store.tip()
        validates = any(f.chain_state and f.name not in self.legacy_only for f in self.functions)
        for side in (self.legacy, self.refactored):
            side.start(self.chain.anchor, side is self.legacy or validates)
            if commits and side.replay is not None:
                side.replay.update(commits)
            if tip is not None:
                side.parent = tip.header
        self.tip = tip
        self.live_metrics.cache_size.set(len(commits))

    def warm_up(self) -> None:
        """Compile or load the running twins' kernels before the first batch (on one
        scratch block, with scratch chain state), so no client waits for it."""
        if self._warm:
            return
        scratch = from_blocks([Block(bytes(C.HEADER_SIZE), [bytes(C.HASH_SIZE)], [1, 2], 3, [0])])
        warm_up(scratch, ShardContext(self._manifest(), self.functions, self.legacy,
                                      self.refactored, self.controller.mode,
                                      legacy_only=self.legacy_only))
        self._warm = True

    def _manifest(self) -> Manifest:
        now = self.chain.now if self.chain.now is not None else int(time.time())
        return Manifest(0, now, self.chain.difficulty_target, self.chain.anchor, [])

    def submit(self, body: bytes) -> dict:
        """Validate (or look up) a batch; the per-block answers. Refused or StateError."""
        batch = parse_batch(body)
        digests, heights = batch.digests, batch.heights
        with self._lock:
            known = self.store.known(heights)
            answers: list[dict | None] = [None] * len(heights)
            first_new = None
            for i, (h, d) in enumerate(zip(heights, digests, strict=True)):
                if h in known:
                    if known[h][1] != d:
                        raise Refused(409, f"block {i + 1} (height {h}): a different block was "
                                           "already validated at this height")
                    if first_new is not None:
                        raise Refused(409, f"block {i + 1} (height {h}) was validated before "
                                           "the blocks ahead of it in this batch")
                    answers[i] = {**known[h][2], "retry": True}
                elif first_new is None:
                    first_new = i
            if first_new is not None:
                shard = batch.shard if first_new == 0 else \
                    batch.shard.slice(first_new, len(heights))
                fresh = self._validate(shard, digests[first_new:], heights[first_new:])
                answers[first_new:] = fresh
        return {"results": answers, "mode": self.controller.mode.label}

    def _validate(self, shard: Shard, digests: list[bytes], heights: list[int]) -> list[dict]:
        seq0 = self.tip.seq + 1 if self.tip else 0
        shard.start = seq0
        mode = self.controller.mode
        ctx = ShardContext(self._manifest(), self.functions, self.legacy, self.refactored, mode,
                           sampled=self.controller.rng.random() < self.controller.sample,
                           replay_cmd="live", legacy_only=self.legacy_only)
        if not self._warm:  # not warmed at start: on this batch's first blocks
            warm_up(shard, ctx)
            self._warm = True
        try:
            out = process_shard(seq0, shard, ctx)
        except Exception:
            self.restore()  # a twin's state may have moved: back to what is durable
            raise
        rows, ack = self._rows(shard, digests, heights, seq0, out)
        t0 = time.perf_counter()
        try:  # a demotion is only ever decided in mode 2 (policy.decide)
            added = self.store.acknowledge(ack, out.demotion)
        except StateError:
            self.restore()  # nothing of this batch was acknowledged
            raise
        self.live_metrics.persist.observe(time.perf_counter() - t0)
        self.tip = ack.tip
        self.live_metrics.cache_size.inc(added)  # no COUNT(*) over the cache per batch
        self.controller.metrics.observe_outcome(out)
        compared = sum(f.compared for f in out.functions.values())
        mismatched = sum(f.mismatched for f in out.functions.values())
        self.controller.state.record(compared, mismatched)
        return rows

    def _rows(self, shard: Shard, digests: list[bytes], heights: list[int], seq0: int,
              out: Any) -> tuple[list[dict], Acknowledged]:
        table = out.results.to_pydict()
        differing = {r.block for r in out.records if hasattr(r, "height")}
        whole = any(not hasattr(r, "height") for r in out.records)
        compared = any(f.compared for f in out.functions.values())
        rows, stored = [], []
        for i in range(len(heights)):
            status = table["status"][i]
            row = {"height": heights[i],
                   "header_hash": _hex(table["header_hash"][i]),
                   "tx_root": _hex(table["tx_root"][i]),
                   "commitment": _hex(table["commitment"][i]),
                   "status": status,
                   "rules": C.rule_names(status) if status is not None else None,
                   "agreed": (not whole and seq0 + i not in differing) if compared else None}
            rows.append(row)
            stored.append((seq0 + i, heights[i], digests[i], result_json(row)))
        commits = list(zip(_rows_bytes(shard.headers[:, C.OFF_COMMITMENT_HASH:
                                                     C.OFF_COMMITMENT_HASH + 32]), heights))
        records = [(getattr(r, "block", seq0), getattr(r, "height", None), r.function,
                    json.dumps(r.to_json(), sort_keys=True)) for r in out.records]
        last = shard.headers[-1].tobytes()
        tip = Tip(seq0 + len(heights) - 1, heights[-1], blake3(last).digest(),
                  int(np.frombuffer(last, "<i8", 1, C.OFF_TIMESTAMP)[0]), last)
        return rows, Acknowledged(stored, commits, records, tip)


def _rows_bytes(a: np.ndarray) -> list[bytes]:
    return [r.tobytes() for r in a]


def _hex(value: bytes | None) -> str | None:
    return None if value is None else bytes(value).hex()


def _query_int(request: Any, name: str, default: int, lo: int, hi: int) -> int:
    raw = getattr(request, "query", {}).get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise Refused(400, f"?{name}= takes an integer, got {raw[:40]!r}") from None
    if not lo <= value <= hi:
        raise Refused(400, f"?{name}={value} is outside [{lo}, {hi}]")
    return value


def install(server: Any, live: LiveValidator) -> None:
    """Add the live routes to a :class:`parity.server.ParityServer`."""
    from parity.server import error, json_response

    def guarded(fn: Any) -> Any:
        def route(request: bytes) -> Any:
            try:
                return json_response(200, fn(request))
            except Refused as exc:
                return error(exc.status, str(exc))
        return route

    def chain(request: bytes) -> dict:
        tip = live.store.tip()
        return {"tip": None if tip is None else {"seq": tip.seq, "height": tip.height,
                                                 "hash": tip.hash.hex(),
                                                 "timestamp": tip.timestamp},
                "chain": live.chain.params(), "mode": live.controller.mode.label,
                **live.store.counts()}

    def results(request: bytes) -> dict:
        after = _query_int(request, "after", -1, -1, 2**62)
        rows = live.store.results(after, _query_int(request, "limit", 1000, 1, 10_000))
        return {"results": rows, "next": rows[-1]["seq"] if rows else after}

    def mismatches(request: bytes) -> dict:
        since = _query_int(request, "since", 0, 0, 2**62)
        rows = live.store.mismatches(since, _query_int(request, "limit", 1000, 1, 10_000))
        return {"mismatches": rows, "next": rows[-1]["id"] if rows else since}

    server.routes[("POST", "/blocks")] = guarded(live.submit)
    server.routes[("GET", "/chain")] = guarded(chain)
    server.routes[("GET", "/results")] = guarded(results)
    server.routes[("GET", "/mismatches")] = guarded(mismatches)
