"""Batch shadow runs: both twins over a corpus, shard by shard, under a codec mode.

What runs, what is served and what is compared follows SPEC section 5. Each
function's two calls on a shard are timed back to back in alternating order,
after a warm-up that keeps JIT compilation out of the timings.
"""
from __future__ import annotations

import copy
import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import numpy as np
import pyarrow as pa

from kernels import constants as C
from parity.compare import describe, diff_bytes, merkle_divergence, mismatched_rows, status_diff
from parity.corpus import Corpus, Shard, open_corpus
from parity.errors import ParityError
from parity.metrics import Metrics
from parity.modes import Mode
from parity.progress import Progress
from parity.runlog import RESULTS_SCHEMA, RunDir, results_output
from parity.stats import FunctionStats
from parity.twins import DEFAULT_LEGACY, DEFAULT_REFACTORED, load_twin

FUNCTIONS = ("header_hash", "merkle_root", "validate")
RESULT_COLUMN = {"header_hash": "header_hash", "merkle_root": "tx_root", "validate": "status"}


@dataclass
class ShadowOptions:
    corpus: str
    mode: Mode = Mode.SHADOW
    functions: tuple[str, ...] = FUNCTIONS
    legacy: str = DEFAULT_LEGACY
    refactored: str = DEFAULT_REFACTORED
    sample: float = 1.0
    results: str | None = None
    run_dir: str | None = None
    resume: bool = False
    repeat: int = 1
    seed: int = 0
    quiet: bool = False
    max_records: int = 100_000
    force: bool = False  # replace earlier parity output at --run-dir / --results

    def check(self) -> None:
        for fn in self.functions:
            if fn not in FUNCTIONS:
                raise ParityError(f"--functions: unknown function {fn!r}; choose from "
                                  f"{', '.join(FUNCTIONS)}")
        if not self.functions:
            raise ParityError("--functions: name at least one function")
        if not 0.0 < self.sample <= 1.0:
            raise ParityError(f"--sample must be within (0, 1], got {self.sample}")
        if self.repeat < 1:
            raise ParityError("--repeat must be at least 1")


@dataclass
class _Side:
    name: str
    module: ModuleType
    replay: object = None
    parent: C.Parent | None = None


@dataclass
class _Call:
    out: object = None
    error: BaseException | None = None
    seconds: float | None = None
    ran: bool = False


@dataclass
class ShadowResult:
    report: dict
    exit_code: int
    records: list[dict] = field(default_factory=list)


def _u64(headers: np.ndarray, off: int) -> np.ndarray:
    return np.ascontiguousarray(headers[:, off:off + 8]).view("<u8").reshape(-1)


def corpus_identity(corpus: Corpus) -> str:
    return hashlib.sha256((corpus.path / "manifest.json").read_bytes()).hexdigest()


class ShadowRun:
    def __init__(self, opts: ShadowOptions, metrics: Metrics | None = None,
                 legacy: ModuleType | None = None, refactored: ModuleType | None = None,
                 verify: bool = True) -> None:
        opts.check()
        self.opts = opts
        self.corpus = open_corpus(opts.corpus, verify=verify)
        self.m = self.corpus.manifest
        self.metrics = metrics or Metrics()
        self.mode = opts.mode
        self.mode_changes: list[dict] = []
        self.legacy = _Side("legacy", legacy or load_twin(opts.legacy, "legacy"))
        self.refactored = _Side("refactored", refactored or load_twin(opts.refactored, "refactored"))
        self.stats = {fn: FunctionStats() for fn in opts.functions}
        self.replays_served = 0
        self.records_logged = 0
        self.blocks_done = 0
        self.warmup: dict[str, float] = {}
        self.kernel_seconds = 0.0
        run_dir = opts.run_dir or f".parity-run/{self.corpus.path.resolve().name}"
        # the default location is parity's own: an earlier run there is replaced
        self.run = RunDir(Path(run_dir), force=opts.force or opts.run_dir is None)
        self.run.check(opts.resume)  # refuse a foreign output before any work
        if opts.results:
            results_output(opts.results).check(opts.force)
        self.replay_cmd = f"parity replay {opts.corpus}"
        if opts.legacy != DEFAULT_LEGACY:
            self.replay_cmd += f" --legacy {opts.legacy}"
        if opts.refactored != DEFAULT_REFACTORED:
            self.replay_cmd += f" --refactored {opts.refactored}"

    # --- twin calls -------------------------------------------------------------
    def _args(self, fn: str, shard: Shard, side: _Side) -> tuple[tuple, dict]:
        if fn == "header_hash":
            return (shard.headers,), {}
        if fn == "merkle_root":
            return (shard.ids, shard.id_offsets), {}
        return shard.arrays(), {"now": self.m.now, "difficulty_target": self.m.difficulty_target,
                                "parent": side.parent, "replay": side.replay}

    def _call(self, fn: str, side: _Side, shard: Shard, keep_state: bool) -> _Call:
        args, kwargs = self._args(fn, shard, side)
        if fn == "validate" and not keep_state:  # a timing repeat must not touch the state
            kwargs["replay"] = copy.deepcopy(side.replay)
        func = getattr(side.module, {"header_hash": "hash_headers", "merkle_root": "merkle_roots",
                                     "validate": "validate_blocks"}[fn])
        call = _Call(ran=True)
        t0 = time.perf_counter_ns()
        try:
            call.out = func(*args, **kwargs)
        except Exception as exc:  # compared and reported, never fatal by itself
            call.error = exc
        call.seconds = (time.perf_counter_ns() - t0) / 1e9
        return call

    def _dual(self, fn: str, shard: Shard, index: int, sides: list[_Side]) -> dict[str, _Call]:
        calls: dict[str, _Call] = {}
        for rep in range(self.opts.repeat):
            order = sides if (index + rep) % 2 == 0 else sides[::-1]  # interleaved
            last = rep == self.opts.repeat - 1
            seconds = {}
            for side in order:
                call = self._call(fn, side, shard, keep_state=last)
                self.kernel_seconds += call.seconds or 0.0
                self.stats[fn].time(side.name, call.seconds or 0.0)
                seconds[side.name] = call.seconds
                if last:
                    calls[side.name] = call
            if len(seconds) == 2:
                self.stats[fn].pair(seconds["legacy"], seconds["refactored"])
        return calls

    # --- the run --------------------------------------------------------------------
    def _warm_up(self, shard: Shard) -> None:
        sides = [s for s, runs in ((self.legacy, self.mode.runs_legacy),
                                   (self.refactored, self.mode.runs_refactored)) if runs]
        # big enough for the parallel kernels; views, so the array types match the shard's
        tiny = shard.slice(0, min(128, len(shard)), copy=False)
        for side in sides:
            t0 = time.perf_counter()
            scratch = _Side(side.name, side.module, side.module.new_replay_state(), None)
            for fn in self.opts.functions:
                self._call(fn, scratch, tiny, keep_state=True)
            self.warmup[side.name] = time.perf_counter() - t0

    def _sampled(self, index: int) -> bool:
        if self.opts.sample >= 1.0:
            return True
        return np.random.default_rng((self.opts.seed, index)).random() < self.opts.sample

    def _demote(self, reason: str) -> None:
        if self.mode == Mode.REFACTORED_PRIMARY:
            self.mode_changes.append({"time": time.time(), "from": self.mode.label,
                                      "to": Mode.SHADOW.label, "reason": reason})
            self.mode = Mode.SHADOW
            self.metrics.set_mode(self.mode)

    def _record(self, fn: str, shard: Shard, row: int, legacy: object, refactored: object,
                extra: dict) -> dict:
        block = shard.start + row
        rec = {"function": fn, "block": block,
               "height": int(_u64(shard.headers[row:row + 1], C.OFF_HEIGHT)[0]),
               "file": shard.file, "row": shard.row + row, "legacy": describe(legacy),
               "refactored": describe(refactored),
               "replay": f"{self.replay_cmd} --block {block} --functions {fn}", **extra}
        return rec

    def _compare(self, fn: str, shard: Shard, cl: _Call, cr: _Call) -> tuple[np.ndarray, list]:
        """Rows that differ and their records (an exception differs on every row)."""
        n = len(shard)
        if cr.error is not None or cl.error is not None:
            rec = {"function": fn, "block": shard.start, "blocks": n, "file": shard.file,
                   "row": shard.row, "kind": "exception", "legacy": describe(cl.error),
                   "refactored": describe(cr.error)}
            return np.arange(n), [rec]
        a, b = np.asarray(cl.out), np.asarray(cr.out)
        try:
            rows = mismatched_rows(a, b)
        except ValueError as exc:
            return np.arange(n), [{"function": fn, "block": shard.start, "blocks": n,
                                   "file": shard.file, "row": shard.row, "kind": "shape",
                                   "detail": str(exc)}]
        records = []
        for r in rows[: max(0, self.opts.max_records - self.records_logged)]:
            r = int(r)
            if fn == "validate":
                extra = status_diff(int(a[r]), int(b[r]))
            else:
                extra = diff_bytes(a[r].tobytes(), b[r].tobytes())
                if fn == "merkle_root":
                    extra["divergence"] = self._merkle_divergence(shard, r)
            records.append(self._record(fn, shard, r, a[r], b[r], extra))
        return rows, records

    def _merkle_divergence(self, shard: Shard, row: int) -> dict | None:
        trees = [getattr(side.module, "merkle_tree", None) for side in (self.legacy, self.refactored)]
        if None in trees:
            return None
        txids = [r.tobytes() for r in shard.ids[shard.id_offsets[row]:shard.id_offsets[row + 1]]]
        return merkle_divergence(trees[0](txids), trees[1](txids))

    def _process(self, index: int, shard: Shard) -> tuple[list[dict], pa.Table]:
        mode = self.mode
        run_l = mode.runs_legacy and (mode != Mode.REFACTORED_PRIMARY or self._sampled(index))
        sides = ([self.legacy] if run_l else []) + ([self.refactored] if mode.runs_refactored else [])
        n = len(shard)
        served: dict[str, object] = {}
        records: list[dict] = []
        validated_legacy = False
        for fn in self.opts.functions:
            calls = self._dual(fn, shard, index, sides)
            cl, cr = calls.get("legacy", _Call()), calls.get("refactored", _Call())
            if cl.error is not None:  # legacy is the trusted reference: its failure is bad input
                raise ParityError(f"legacy {fn} failed on blocks {shard.start}..{shard.start + n - 1}"
                                  f" ({shard.file}): {type(cl.error).__name__}: {cl.error}")
            if cr.error is not None and not cl.ran and mode != Mode.REFACTORED_ONLY:
                cl = self._call(fn, self.legacy, shard, keep_state=True)  # fallback for mode 2
                self.kernel_seconds += cl.seconds or 0.0
            rows = np.zeros(0, dtype=np.int64)
            whole = False
            if cl.ran and cr.ran:
                rows, recs = self._compare(fn, shard, cl, cr)
                whole = bool(recs) and "kind" in recs[0]
                st = self.stats[fn]
                st.comparisons += n
                st.mismatches += len(rows)
                st.errors += int(whole)
                records += recs
                self.records_logged += len(recs)
            self.metrics.observe(fn, cl.seconds if cl.ran else None,
                                 cr.seconds if cr.ran else None, n if cl.ran and cr.ran else 0,
                                 len(rows))
            served[fn] = self._serve(fn, mode, shard, cl, cr, rows, whole)
            if fn == "validate":
                validated_legacy = cl.ran
                self._observe_validation(shard, served[fn], cl if mode.runs_legacy and cl.ran else cr)
        self._advance(shard, legacy_validated=validated_legacy)
        return records, self._results(shard, served)

    def _serve(self, fn: str, mode: Mode, shard: Shard, cl: _Call, cr: _Call, rows: np.ndarray,
               whole: bool) -> object:
        """The output the mode serves (SPEC section 5); demotes mode 2 on any difference."""
        n = len(shard)
        if mode in (Mode.LEGACY_ONLY, Mode.SHADOW):
            self.metrics.served(mode, "legacy", n)
            return cl.out
        if mode == Mode.REFACTORED_ONLY:
            if cr.error is not None:
                raise ParityError(f"refactored {fn} failed in refactored_only with nothing to fall "
                                  f"back on: {type(cr.error).__name__}: {cr.error}")
            self.metrics.served(mode, "refactored", n)
            return cr.out
        if whole:  # refactored raised or returned the wrong shape: legacy for the whole shard
            self.metrics.served(mode, "legacy", n)
            why = (f"raised {type(cr.error).__name__}" if cr.error is not None
                   else "returned a wrong shape")
            self._demote(f"refactored {fn} {why} on blocks from {shard.start}")
            return cl.out
        out = np.array(cr.out)
        if rows.size:
            out[rows] = np.asarray(cl.out)[rows]
            self._demote(f"{fn} mismatch at block {shard.start + int(rows[0])}")
        self.metrics.served(mode, "refactored", n - rows.size)
        self.metrics.served(mode, "legacy", int(rows.size))
        return out

    def _observe_validation(self, shard: Shard, status: object, call: _Call) -> None:
        replays = int(np.count_nonzero(np.asarray(status) & C.COMMITMENT_REPLAY))
        self.replays_served += replays
        self.metrics.replays.inc(replays)
        counts = np.diff(shard.num_offsets)
        if call.seconds is None or len(shard) == 0:
            return
        per_block = call.seconds / len(shard)
        limits = np.array([limit for limit, _ in C.TIER_LIMITS])
        for t in np.unique(np.searchsorted(limits, counts, side="left")):
            self.metrics.block_validation.labels(tier=C.TIER_NAMES[int(t)]).observe(per_block)

    def set_parents(self, last: np.ndarray) -> None:
        """Each running side's parent from header ``last`` (``uint8[1, 276]``): its height
        and timestamp, and that side's own hash of it."""
        height = int(_u64(last, C.OFF_HEIGHT)[0])
        ts = int(_u64(last, C.OFF_TIMESTAMP)[0].astype(np.int64))
        for side in (self.legacy, self.refactored):
            if side.replay is not None:
                side.parent = (height, np.asarray(side.module.hash_headers(last))[0].tobytes(), ts)

    def _advance(self, shard: Shard, legacy_validated: bool) -> None:
        """Carry each side's parent (its own hash of the last header) and replay state."""
        if len(shard) == 0:
            return
        self.set_parents(shard.headers[-1:])
        if "validate" in self.opts.functions and not legacy_validated \
                and self.legacy.replay is not None:  # mode 2, shard outside the legacy sample
            commits = shard.headers[:, C.OFF_COMMITMENT_HASH:C.OFF_COMMITMENT_HASH + 32]
            self.legacy.replay.update([r.tobytes() for r in commits])  # type: ignore[attr-defined]

    def _results(self, shard: Shard, served: dict[str, object]) -> pa.Table:
        n = len(shard)
        cols: dict[str, pa.Array] = {"block": pa.array(np.arange(shard.start, shard.start + n),
                                                       pa.int64())}
        for fn, col in RESULT_COLUMN.items():
            typ = RESULTS_SCHEMA.field(col).type
            if fn not in served:
                cols[col] = pa.nulls(n, typ)
            elif fn == "validate":
                cols[col] = pa.array(np.asarray(served[fn], dtype=np.uint32), typ)
            else:
                raw = np.ascontiguousarray(served[fn], dtype=np.uint8)
                cols[col] = pa.FixedSizeBinaryArray.from_buffers(typ, n, [None, pa.py_buffer(raw)])
        return pa.table(cols, schema=RESULTS_SCHEMA)

    # --- resume ---------------------------------------------------------------------
    def identity(self) -> dict:
        o = self.opts
        return {"corpus": corpus_identity(self.corpus), "mode": int(o.mode),
                "functions": list(o.functions), "legacy": o.legacy, "refactored": o.refactored,
                "sample": o.sample, "seed": o.seed, "repeat": o.repeat}

    def _restore(self, checkpoint: dict, groups: list) -> int:
        self.mode = Mode(checkpoint["mode"])
        self.mode_changes = checkpoint["mode_changes"]
        self.stats = {fn: FunctionStats.from_json(v) for fn, v in checkpoint["stats"].items()}
        self.replays_served = checkpoint["replays_served"]
        self.records_logged = checkpoint["records_logged"]
        self.warmup = checkpoint["warmup"]
        self.kernel_seconds = checkpoint["kernel_seconds"]
        done = checkpoint["next_shard"]
        self.prime(groups[done].start if done < len(groups) else self.m.blocks, groups)
        return done

    def prime(self, until_block: int, groups: list | None = None) -> None:
        """Bring both sides to the state just before ``until_block``: replay states hold
        every earlier commitment, parents are the previous block (or the anchor)."""
        last = None
        for g in groups or self.corpus.row_groups():
            if g.start >= until_block:
                break
            headers = self.corpus.read_headers(g)[:until_block - g.start]
            commits = [r.tobytes() for r in
                       headers[:, C.OFF_COMMITMENT_HASH:C.OFF_COMMITMENT_HASH + 32]]
            for side in (self.legacy, self.refactored):
                if side.replay is not None:
                    side.replay.update(commits)  # type: ignore[attr-defined]
            if len(headers):
                last = headers[-1:].copy()
        if last is not None:
            self.set_parents(last)

    def replay_block(self, block: int) -> tuple[list[dict], dict]:
        """Run both twins on one block in its chain context: (mismatch records, outputs)."""
        if not 0 <= block < self.m.blocks:
            raise ParityError(f"--block {block}: the corpus has blocks 0..{self.m.blocks - 1}")
        groups = self.corpus.row_groups()
        for side in (self.legacy, self.refactored):
            side.replay = side.module.new_replay_state()
            side.parent = self.m.anchor
        self.prime(block, groups)
        g = next(g for g in groups if g.start <= block < g.start + g.rows)
        shard = self.corpus.read_shard(g).slice(block - g.start, block - g.start + 1)
        sides = [self.legacy, self.refactored]
        outputs: dict = {}
        records: list[dict] = []
        for fn in self.opts.functions:
            calls = self._dual(fn, shard, 0, sides)
            cl, cr = calls["legacy"], calls["refactored"]
            outputs[fn] = {"legacy": describe(cl.error if cl.error else np.asarray(cl.out)[0]),
                           "refactored": describe(cr.error if cr.error else np.asarray(cr.out)[0])}
            records += self._compare(fn, shard, cl, cr)[1]
        return records, outputs

    def _checkpoint(self, next_shard: int, log_bytes: int, identity: dict) -> None:
        self.run.checkpoint({
            "identity": identity, "next_shard": next_shard, "log_bytes": log_bytes,
            "mode": int(self.mode), "mode_changes": self.mode_changes,
            "stats": {fn: s.to_json() for fn, s in self.stats.items()},
            "replays_served": self.replays_served, "records_logged": self.records_logged,
            "warmup": self.warmup, "kernel_seconds": self.kernel_seconds})

    def execute(self, on_shard=None) -> ShadowResult:
        """Run (or resume) over every shard; returns the report and the exit code."""
        from parity.report import build_report
        t0 = time.perf_counter()
        identity = self.identity()
        checkpoint = self.run.start(identity, self.opts.resume)
        groups = self.corpus.row_groups()
        for side, runs in ((self.legacy, self.opts.mode.runs_legacy),
                           (self.refactored, self.opts.mode.runs_refactored)):
            if runs:
                side.replay = side.module.new_replay_state()
                side.parent = self.m.anchor
        first = self._restore(checkpoint, groups) if checkpoint else 0
        self.metrics.set_mode(self.mode)
        log_bytes = checkpoint["log_bytes"] if checkpoint else 0
        if not checkpoint:
            self._checkpoint(0, 0, identity)
        with Progress(self.m.blocks, "shadow", quiet=self.opts.quiet) as bar:
            bar.advance(sum(g.rows for g in groups[:first]))
            for index, g in enumerate(groups):
                if index < first:
                    continue
                shard = self.corpus.read_shard(g)
                if not self.warmup:
                    self._warm_up(shard)
                records, table = self._process(index, shard)
                log_bytes = self.run.append_records(records)
                self.run.write_part(index, table)
                self._checkpoint(index + 1, log_bytes, identity)
                self.blocks_done = g.start + g.rows
                bar.advance(g.rows)
                if on_shard is not None:
                    on_shard(self)
        if self.opts.results:
            self.run.merge_results(Path(self.opts.results), len(groups), self.opts.force)
        records = list(self.run.records())
        report = build_report(self, records, wall=time.perf_counter() - t0)
        failed = any(s.mismatches or s.errors for s in self.stats.values())
        return ShadowResult(report, 1 if failed else 0, records)
