"""One shard through both twins: the step every engine schedules.

``process_shard(index, shard, ctx)`` runs what :mod:`parity.policy` says for the mode in
force, times each function's calls back to back in alternating order, compares, builds
typed records, picks the served outputs and returns a :class:`ShardOutcome`. The only
state it changes is the chain state of each side (parent header and replay state),
which it advances past the shard.
"""
from __future__ import annotations

import copy
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from kernels import constants as C
from parity import policy
from parity.compare import describe, mismatched_rows
from parity.corpus import Shard
from parity.corpus.manifest import Manifest
from parity.errors import ParityError
from parity.functions import RESULT_COLUMNS, BatchFunction
from parity.modes import Mode
from parity.records import Record, ShardFailure
from parity.runlog import RESULTS_SCHEMA
from parity.stats import FunctionStats


@dataclass
class Side:
    """One twin and its chain state: the parent (None, the anchor tuple, or the previous
    block's 276 header bytes) and its replay state."""

    name: str
    twin: Any
    parent: Any = None
    replay: Any = None

    def start(self, anchor: Any, replay: bool = True) -> None:
        """Chain state from ``anchor``: a fresh replay state unless ``replay`` is False
        (a partial twin that does not validate)."""
        self.replay = self.twin.new_replay_state() \
            if replay and hasattr(self.twin, "new_replay_state") else None
        self.parent = anchor

    def remember(self, headers: np.ndarray) -> None:
        """Advance past blocks this side did not validate (their commitments and parent)."""
        if len(headers) == 0:
            return
        if self.replay is not None:
            commits = headers[:, C.OFF_COMMITMENT_HASH:C.OFF_COMMITMENT_HASH + 32]
            self.replay.update([r.tobytes() for r in commits])
        self.parent = headers[-1].tobytes()


@dataclass
class ShardContext:
    manifest: Manifest
    functions: tuple[BatchFunction, ...]
    legacy: Side
    refactored: Side
    mode: Mode = Mode.SHADOW       # in force at the start of the shard
    sampled: bool = True           # mode 2: legacy runs on this shard
    repeat: int = 1
    max_records: int = 100_000     # records still allowed in this run
    replay_cmd: str = "parity replay CORPUS"
    legacy_only: frozenset[str] = frozenset()  # functions the refactored twin lacks

    def runs(self, fn: BatchFunction, mode: Mode) -> tuple[Mode, list[Side] | None]:
        """The mode ``fn`` runs in (mode 0 for a function only legacy has), and its sides
        (None: the mode's)."""
        return (Mode.LEGACY_ONLY, [self.legacy]) if fn.name in self.legacy_only else (mode, None)


@dataclass
class Call:
    out: Any = None
    error: BaseException | None = None
    seconds: float | None = None
    ran: bool = False


@dataclass
class FunctionOutcome:
    legacy_s: float | None
    refactored_s: float | None
    compared: int
    mismatched: int
    served: dict[str, int]  # which side served how many blocks


@dataclass
class ShardOutcome:
    index: int
    start: int
    blocks: int
    mode: Mode
    records: list[Record]
    results: pa.Table
    stats: dict[str, FunctionStats]
    functions: dict[str, FunctionOutcome]
    demotion: str | None = None      # why mode 2 demoted on this shard
    kernel_seconds: float = 0.0
    legacy_ran: bool = False
    status: np.ndarray | None = None  # served statuses, when validated
    statuses: dict[str, np.ndarray] = field(default_factory=dict)  # each twin's, when it ran
    tiers: dict[str, int] = field(default_factory=dict)  # validated blocks per tier
    validation_seconds: float | None = None  # the served side's validation time


def call_side(fn: BatchFunction, side: Side, shard: Shard, m: Manifest, keep_state: bool) -> Call:
    call = Call(ran=True)
    try:  # a process twin's replay state is copied in the process: it may fail
        replay = side.replay if keep_state or not fn.chain_state else copy.deepcopy(side.replay)
    except Exception as exc:
        call.error, call.seconds = exc, 0.0
        return call
    t0 = time.perf_counter_ns()
    try:
        call.out = fn.call(side.twin, shard, m, side.parent, replay)
    except Exception as exc:  # compared and reported, never fatal by itself
        call.error = exc
    call.seconds = (time.perf_counter_ns() - t0) / 1e9
    return call


def _dual(fn: BatchFunction, shard: Shard, index: int, sides: list[Side], ctx: ShardContext,
          st: FunctionStats) -> dict[str, Call]:
    """Each side's call, ``repeat`` times in alternating order; the last one counts."""
    calls: dict[str, Call] = {}
    for rep in range(ctx.repeat):
        order = sides if (index + rep) % 2 == 0 else sides[::-1]
        last = rep == ctx.repeat - 1
        seconds: dict[str, float | None] = {}
        for side in order:
            call = call_side(fn, side, shard, ctx.manifest, keep_state=last)
            st.time(side.name, call.seconds or 0.0)
            seconds[side.name] = call.seconds
            if last:
                calls[side.name] = call
        if len(seconds) == 2:
            st.pair(seconds["legacy"], seconds["refactored"])
    return calls


def _height(shard: Shard, row: int) -> int:
    return int(np.ascontiguousarray(shard.headers[row, C.OFF_HEIGHT:C.OFF_HEIGHT + 8])
               .view("<u8")[0])


def compare_outputs(fn: BatchFunction, shard: Shard, cl: Call, cr: Call, ctx: ShardContext,
             budget: int) -> tuple[np.ndarray, list[Record], bool]:
    """(rows that differ, their records, whether the whole shard failed)."""
    n = len(shard)
    if cr.error is not None or cl.error is not None:
        return np.arange(n), [ShardFailure(fn.name, shard.start, n, shard.file, shard.row,
                                           "exception", describe(cl.error),
                                           describe(cr.error))], True
    a, b = np.asarray(cl.out), np.asarray(cr.out)
    try:
        rows = mismatched_rows(a, b)
    except ValueError as exc:
        return np.arange(n), [ShardFailure(fn.name, shard.start, n, shard.file, shard.row,
                                           "shape", detail=str(exc))], True
    records: list[Record] = []
    for r in rows[:max(0, budget)]:
        r = int(r)
        block = shard.start + r
        extra = fn.localize(shard, r, a[r], b[r], ctx.legacy.twin, ctx.refactored.twin)
        records.append(fn.record(
            function=fn.name, block=block, height=_height(shard, r), file=shard.file,
            row=shard.row + r, legacy=describe(a[r]), refactored=describe(b[r]),
            replay=f"{ctx.replay_cmd} --block {block} --functions {fn.name}", **extra))
    return rows, records, False


def _serve(fn: BatchFunction, mode: Mode, cl: Call, cr: Call, rows: np.ndarray, whole: bool,
           n: int) -> tuple[Any, dict[str, int], str | None]:
    """Served outputs (policy.decide for matching and for differing rows), per-side
    counts, and the demotion reason if any."""
    compared = cl.ran and cr.ran
    same = policy.decide(mode, compared, True, False)
    differ = policy.decide(mode, True, False, cr.error is not None)
    pick = {"legacy": cl, "refactored": cr}
    if whole or not compared:
        d = differ if whole else same
        chosen = pick[d.served]
        if chosen.error is not None:
            raise ParityError(f"{d.served} {fn.name} failed in {mode.label} with nothing to "
                              f"fall back on: {type(chosen.error).__name__}: {chosen.error}")
        why = None
        if whole and d.demote:
            what = (f"raised {type(cr.error).__name__}" if cr.error is not None
                    else "returned a wrong shape")
            why = f"refactored {fn.name} {what} on blocks from {{start}}"
        return chosen.out, {str(d.served): n}, why
    if same.served == differ.served or rows.size == 0:
        return pick[same.served].out, {same.served: n}, None
    out = np.array(pick[same.served].out)
    out[rows] = np.asarray(pick[differ.served].out)[rows]
    counts: dict[str, int] = {same.served: n - int(rows.size), differ.served: int(rows.size)}
    return out, counts, "mismatch" if differ.demote else None


def process_shard(index: int, shard: Shard, ctx: ShardContext) -> ShardOutcome:
    """Both twins over one shard under ``ctx.mode``; advances both sides' chain state."""
    mode, n = ctx.mode, len(shard)
    plan = policy.plan(mode, ctx.sampled)
    sides = ([ctx.legacy] if plan.legacy else []) + ([ctx.refactored] if plan.refactored else [])
    out = ShardOutcome(index, shard.start, n, mode, [], pa.table({}), {}, {})
    served: dict[str, Any] = {}
    legacy_validated = False
    for fn in ctx.functions:
        st = out.stats[fn.name] = FunctionStats()
        fn_mode, fn_sides = ctx.runs(fn, mode)
        calls = _dual(fn, shard, index, fn_sides or sides, ctx, st)
        cl, cr = calls.get("legacy", Call()), calls.get("refactored", Call())
        if cl.error is not None:  # legacy is the trusted reference: its failure is bad input
            raise ParityError(f"legacy {fn.name} failed on blocks {shard.start}.."
                              f"{shard.start + n - 1} ({shard.file}): "
                              f"{type(cl.error).__name__}: {cl.error}")
        if policy.fallback(fn_mode, cr.error is not None, cl.ran):
            cl = call_side(fn, ctx.legacy, shard, ctx.manifest, keep_state=True)
            st.time("legacy", cl.seconds or 0.0)
        rows = np.zeros(0, dtype=np.int64)
        whole = False
        if cl.ran and cr.ran:
            rows, recs, whole = compare_outputs(fn, shard, cl, cr, ctx,
                                         ctx.max_records - len(out.records))
            st.comparisons += n
            st.mismatches += len(rows)
            st.errors += int(whole)
            out.records += recs
        served[fn.name], counts, why = _serve(fn, fn_mode, cl, cr, rows, whole, n)
        if why and out.demotion is None:
            out.demotion = (why.format(start=shard.start) if why != "mismatch" else
                            f"{fn.name} mismatch at block {shard.start + int(rows[0])}")
        out.functions[fn.name] = FunctionOutcome(cl.seconds if cl.ran else None,
                                                 cr.seconds if cr.ran else None,
                                                 n if cl.ran and cr.ran else 0, len(rows), counts)
        out.kernel_seconds += st.legacy_seconds + st.refactored_seconds
        out.legacy_ran = out.legacy_ran or (cl.ran and fn.name not in ctx.legacy_only)
        if fn.chain_state:
            legacy_validated = cl.ran
            out.status = np.asarray(served[fn.name], dtype=np.uint32)
            out.statuses = {c_name: np.asarray(c.out, dtype=np.uint32) for c_name, c in
                            (("legacy", cl), ("refactored", cr))
                            if c.ran and c.error is None and np.shape(c.out) == (n,)}
            timed = cl if fn_mode.runs_legacy and cl.ran else cr
            out.validation_seconds = timed.seconds
            out.tiers = _tiers(shard)
    _advance(shard, ctx, legacy_validated)
    out.results = results_table(shard, served, ctx.functions)
    return out


def _tiers(shard: Shard) -> dict[str, int]:
    idx, k = np.unique(C.tier_indices(np.diff(shard.num_offsets)), return_counts=True)
    return {C.TIER_NAMES[int(i)]: int(c) for i, c in zip(idx, k)}


def _advance(shard: Shard, ctx: ShardContext, legacy_validated: bool) -> None:
    """Each side's parent becomes the shard's last header; a side that skipped validation
    (mode 2, shard outside the legacy sample) still learns the shard's commitments."""
    if len(shard) == 0:
        return
    validates = any(f.chain_state for f in ctx.functions)
    for side, validated in ((ctx.legacy, legacy_validated), (ctx.refactored, True)):
        if side.replay is None:
            continue
        if validates and not validated:
            side.remember(shard.headers)
        else:
            side.parent = shard.headers[-1].tobytes()


def results_table(shard: Shard, served: dict[str, Any],
                  functions: tuple[BatchFunction, ...]) -> pa.Table:
    n = len(shard)
    by_column = {f.column: f for f in functions}
    cols: dict[str, pa.Array] = {"block": pa.array(np.arange(shard.start, shard.start + n),
                                                   pa.int64())}
    for col, typ in RESULT_COLUMNS:
        f = by_column.get(col)
        cols[col] = f.column_array(served[f.name], n) if f else pa.nulls(n, typ)
    return pa.table(cols, schema=RESULTS_SCHEMA)


COMPILE_NOTICE_AFTER = 1.0  # seconds of warm-up before "compiling kernels" is shown


class _WarmUpNotice:
    """``compiling kernels (first run only): k/N`` on a terminal's stderr, shown only once
    the warm-up has taken COMPILE_NOTICE_AFTER seconds: a warm numba cache loads every
    kernel faster than that and prints nothing."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.done, self.shown = total, 0, False
        self._lock = threading.Lock()
        self._timer = threading.Timer(COMPILE_NOTICE_AFTER, self._show) if enabled else None
        if self._timer is not None:
            self._timer.daemon = True
            self._timer.start()

    def _write(self) -> None:
        sys.stderr.write(f"\rcompiling kernels (first run only): {self.done}/{self.total}")
        sys.stderr.flush()

    def _show(self) -> None:
        with self._lock:
            self.shown = True
            self._write()

    def advance(self) -> None:
        with self._lock:
            self.done += 1
            if self.shown:
                self._write()

    def add(self, steps: int) -> None:
        """``steps`` more to count (the two-process compile of a cold cache)."""
        with self._lock:
            self.total += steps

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        with self._lock:
            if self.shown:
                sys.stderr.write("\n")
                sys.stderr.flush()


def _on_jit_kernels(twin: Any) -> bool:
    """Whether ``twin`` is built on ``kernels.jit`` (the JIT twin, or a twin file
    importing its functions)."""
    attrs = list(getattr(twin, "__dict__", {}).values())
    return any(str(getattr(a, "__module__", "")).startswith("kernels.jit") for a in attrs)


def _load_quietly() -> None:
    from kernels.jit import _precompile
    try:
        _precompile.load()
    except Exception:  # the run's own first call meets the error and reports it
        pass


def preload(twin: Any) -> threading.Thread | None:
    """Start loading the kernels of a twin built on ``kernels.jit`` from numba's warm
    cache on a thread, while the caller opens the corpus and reads (Arrow and hashing
    release the GIL); the warm-up then finds them loaded. Nothing on a cold cache: the
    warm-up compiles, with its progress count."""
    if not _on_jit_kernels(twin):
        return None
    from kernels.jit import _precompile
    if _precompile.cold():
        return None
    thread = threading.Thread(target=_load_quietly, name="parity-preload", daemon=True)
    thread.start()
    return thread


def _compile_jit_kernels(twin: Any, notice: _WarmUpNotice) -> None:
    """A refactored twin built on ``kernels.jit`` compiles those kernels on two processes
    when numba's cache is cold (a fresh clone): see kernels/jit/_precompile.py. Nothing
    happens on a warm cache."""
    if not _on_jit_kernels(twin):
        return
    from kernels.jit import _precompile
    if _precompile.cold():
        notice.add(_precompile.STEPS)
        _precompile.precompile(notice.advance)


def warm_up(shard: Shard, ctx: ShardContext, announce: bool = False) -> dict[str, float]:
    """Compile or load each running side's kernels on a slice of ``shard`` (views, so the
    array kinds match the real shards); scratch chain state, nothing timed. With
    ``announce``, a slow warm-up (a cold numba cache) reports on a terminal's stderr."""
    plan = policy.plan(ctx.mode, True)
    tiny = shard.slice(0, min(128, len(shard)), copy=False)
    sides = [s for s, runs in ((ctx.legacy, plan.legacy or bool(ctx.legacy_only)),
                               (ctx.refactored, plan.refactored)) if runs]
    notice = _WarmUpNotice(len(sides) * len(ctx.functions), announce and sys.stderr.isatty())
    seconds = {}
    try:
        t0 = time.perf_counter()
        if plan.refactored:
            _compile_jit_kernels(ctx.refactored.twin, notice)
        first_compile = time.perf_counter() - t0  # the refactored side's warm-up
        for side in sides:
            t0 = time.perf_counter() - (first_compile if side is ctx.refactored else 0.0)
            scratch = Side(side.name, side.twin)
            fns = [f for f in ctx.functions if (f.name in ctx.legacy_only) ==
                   (side is ctx.legacy) or (side is ctx.legacy and plan.legacy)]
            scratch.start(ctx.manifest.anchor, any(f.chain_state for f in fns))
            for fn in fns:
                call_side(fn, scratch, tiny, ctx.manifest, keep_state=True)
                notice.advance()
            seconds[side.name] = time.perf_counter() - t0
    finally:
        notice.close()
    return seconds
