"""Batch shadow runs on one machine: the local engine.

It schedules shards through :func:`parity.step.process_shard` in chain order, merges
their outcomes into a :class:`~parity.summary.RunSummary`, and keeps a run directory
that survives SIGKILL (mismatch log fsynced per shard, a results part per shard, a
checkpoint written atomically after both, on the writer's thread: parity.shardwriter).
``--resume`` continues after the last completed shard.
"""
from __future__ import annotations

import hashlib
import os
import shlex
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from parity.corpus import Corpus, open_corpus
from parity.corpus.reader import release_freed_memory
from parity.corpus.shard import Shard
from parity.errors import ParityError
from parity.functions import FUNCTIONS, BatchFunction, resolve
from parity.metrics import Metrics
from parity.modes import Mode
from parity.proctwin import DEFAULT_TIMEOUT
from parity.progress import Progress
from parity.records import from_json
from parity.recurring import (
    NO_COMMITMENTS,
    RecurringIndex,
    commitment_view,
    commitments,
    fresh_replay,
    scan,
)
from parity.runlog import RunDir, results_output
from parity.runview import write_summary
from parity.shardwriter import ShardWriter
from parity.step import ShardContext, Side, preload, process_shard, warm_up
from parity.summary import RunSummary
from parity.twins import (
    DEFAULT_LEGACY,
    DEFAULT_REFACTORED,
    EXEC,
    LEGACY_ONLY_REASON,
    check_twin,
    close_twin,
    legacy_only,
    load_twin,
)


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
    shrink: int = 0      # shrink the first K distinct mismatches at the end of the run
    shrink_out: str = "tests/regressions"
    twin_timeout: float = DEFAULT_TIMEOUT  # exec: twins, seconds per request of 100,000 rows

    def check(self) -> tuple[BatchFunction, ...]:
        if not 0.0 < self.sample <= 1.0:
            raise ParityError(f"--sample must be within (0, 1], got {self.sample}")
        if self.repeat < 1:
            raise ParityError("--repeat must be at least 1")
        if self.max_records < 0:
            raise ParityError("--max-records must be at least 0")
        if not self.twin_timeout > 0:
            raise ParityError(f"--twin-timeout must be above 0, got {self.twin_timeout}")
        if self.shrink < 0:
            raise ParityError("--shrink must be at least 0")
        if self.shrink and Path(self.shrink_out).exists() and not Path(self.shrink_out).is_dir():
            raise ParityError(f"--shrink-out {self.shrink_out}: not a directory")
        return resolve(self.functions)


@dataclass
class ShadowResult:
    report: dict
    exit_code: int
    records: list[dict] = field(default_factory=list)


def corpus_identity(corpus: Corpus) -> str:
    return hashlib.sha256((corpus.path / "manifest.json").read_bytes()).hexdigest()


def sampled(opts: ShadowOptions, index: int) -> bool:
    """Mode 2: whether legacy runs on shard ``index`` (a seeded draw per shard)."""
    return opts.sample >= 1.0 or \
        bool(np.random.default_rng((opts.seed, index)).random() < opts.sample)


def _portable(twin: str) -> str:
    """A twin's name as a replay command needs it: a file path made absolute (so the
    command works from any directory), a module name as given."""
    if twin.startswith(EXEC):
        return twin  # a command: as given (run the replay where the run ran)
    return os.path.abspath(twin) if twin.endswith(".py") or os.path.isfile(twin) else twin


def replay_command(opts: ShadowOptions) -> str:
    """``parity replay`` for this run's corpus and twins, runnable from any directory."""
    cmd = f"parity replay {shlex.quote(os.path.abspath(opts.corpus))}"
    if opts.legacy != DEFAULT_LEGACY:
        cmd += f" --legacy {shlex.quote(_portable(opts.legacy))}"
    if opts.refactored != DEFAULT_REFACTORED:
        cmd += f" --refactored {shlex.quote(_portable(opts.refactored))}"
    return cmd


def default_run_dir(corpus: str | Path) -> str:
    """The run directory when ``--run-dir`` is not given: parity's own, per corpus."""
    return f".parity-run/{Path(corpus).resolve().name}"


class ShadowRun:
    """The local engine; also the place a run's corpus, twins and metrics live."""

    def __init__(self, opts: ShadowOptions, metrics: Metrics | None = None,
                 legacy: Any = None, refactored: Any = None, verify: bool = True,
                 load_kernels: bool = True) -> None:
        self.functions = opts.check()
        self.opts = opts
        self.metrics = metrics or Metrics()
        self.legacy, self.refactored = Side("legacy", None), Side("refactored", None)
        # the checksums (blake3 releases the GIL) run on a thread while the twins import
        opening = ThreadPoolExecutor(1, thread_name_prefix="parity-verify")
        corpus = opening.submit(open_corpus, opts.corpus, verify=verify)
        opening.shutdown(wait=False)
        try:  # a refusal stops the exec: twins already started
            try:
                self._load(legacy, refactored)
                #: the thread loading the refactored twin's kernels, if any
                self.preloading = preload(self.refactored.twin) \
                    if load_kernels and opts.mode.runs_refactored else None  # while reading
            finally:  # a bad corpus is refused first, even beside a bad twin
                self.corpus = corpus.result()
            self.m = self.corpus.manifest
            run_dir = opts.run_dir or default_run_dir(self.corpus.path)
            # the default location is parity's own: an earlier run there is replaced
            self.run = RunDir(Path(run_dir), force=opts.force or opts.run_dir is None)
            self.run.check(opts.resume)  # refuse a foreign output before any work
            if opts.results:
                results_output(opts.results).check(opts.force)
        except BaseException:
            self.close()
            raise
        self.summary = self.new_summary()
        self.recurring: RecurringIndex | None = None  # set by index(), when validating

    def _load(self, legacy: Any, refactored: Any) -> None:
        o, fns = self.opts, self.functions
        self.legacy.twin = check_twin(legacy, "legacy twin", fns) if legacy is not None else \
            load_twin(o.legacy, "legacy", fns, o.twin_timeout)
        self.refactored.twin = refactored if refactored is not None else \
            load_twin(o.refactored, "refactored", fns, o.twin_timeout, partial=True)
        #: functions the refactored twin does not implement: legacy alone runs them
        self.legacy_only = legacy_only(self.refactored.twin, "refactored twin" if refactored
                                       is not None else f"--refactored {o.refactored}", fns)

    @property
    def blocks_done(self) -> int:
        return self.summary.blocks_done

    def new_summary(self) -> RunSummary:
        o = self.opts
        return RunSummary(str(self.corpus.path), self.m.blocks, tuple(f.name for f in
                                                                      self.functions),
                          {"legacy": o.legacy, "refactored": o.refactored}, o.mode, o.repeat,
                          legacy_only={f: LEGACY_ONLY_REASON for f in self.legacy_only})

    def context(self, mode: Mode) -> ShardContext:
        return ShardContext(self.m, self.functions, self.legacy, self.refactored, mode,
                            repeat=self.opts.repeat, max_records=self.opts.max_records,
                            replay_cmd=replay_command(self.opts),
                            legacy_only=frozenset(self.legacy_only))

    def start_sides(self, mode: Mode) -> None:
        """Fresh chain state for the sides ``mode`` runs (mode 2: both), and for legacy
        when it alone validates (a partial refactored twin); replay states only for a side
        that validates."""
        validates = {f.name for f in self.functions if f.chain_state}
        alone = bool(validates & set(self.legacy_only))
        for side, runs, state in (
                (self.legacy, mode.runs_legacy or alone, True),
                (self.refactored, mode.runs_refactored, bool(validates - set(self.legacy_only)))):
            side.replay, side.parent = None, None
            if runs:
                side.start(self.m.anchor, state)

    def index(self, groups: list) -> None:
        """Pass 1 (parity.recurring): when a function keeps chain state, find which
        commitments recur, so each shard's replay state starts with only those."""
        self.recurring = RecurringIndex(scan(self.corpus, groups)) \
            if any(f.chain_state for f in self.functions) else None

    def start_shard(self, shard: Shard) -> None:
        """Each started side gets a fresh replay state holding the earlier commitments
        that recur in ``shard`` (exact: the whole corpus before it is accounted for)."""
        if self.recurring is None:
            return
        prime = self.recurring.prime(commitment_view(shard.headers))
        for side in (self.legacy, self.refactored):
            fresh_replay(side, prime)

    def start_first_shard(self, shard: Shard) -> np.ndarray | None:
        """Shard 0 of a fresh run, started while pass 1 may still run: no block is earlier,
        so its replay states start empty. Returns its commitments, for the index to walk
        past (:meth:`RecurringIndex.record`) once pass 1 is done; None: no chain state."""
        if not any(f.chain_state for f in self.functions):
            return None
        for side in (self.legacy, self.refactored):
            fresh_replay(side, NO_COMMITMENTS)
        return commitments(shard.headers)

    def prime(self, until_block: int, groups: list | None = None) -> None:
        """Bring the started sides to the state just before ``until_block``: the recurring
        index has walked every earlier block, parents are the previous block's header
        (the replay states themselves are made by :meth:`start_shard`)."""
        groups = groups or self.corpus.row_groups()
        self.index(groups)
        for g in groups:
            if g.start >= until_block:
                break
            headers = self.corpus.read_headers(g)[:until_block - g.start]
            if self.recurring is not None:
                self.recurring.record(commitment_view(headers))
            for side in (self.legacy, self.refactored):
                if side.replay is not None and len(headers):
                    side.parent = headers[-1].tobytes()

    def identity(self) -> dict:
        o = self.opts
        ident = {"corpus": corpus_identity(self.corpus), "mode": int(o.mode),
                 "functions": [f.name for f in self.functions], "legacy": o.legacy,
                 "refactored": o.refactored, "sample": o.sample, "seed": o.seed,
                 "repeat": o.repeat}
        if self.legacy_only:
            ident["legacy_only"] = list(self.legacy_only)
        return ident

    def close(self) -> None:
        """Stop the twins that run as processes (the others have nothing to stop)."""
        for side in (self.legacy, self.refactored):
            close_twin(side.twin)

    def __enter__(self) -> ShadowRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _checkpoint(self, next_shard: int, log_bytes: int, identity: dict,
                    summary: dict | None = None) -> None:
        self.run.checkpoint({"identity": identity, "next_shard": next_shard,
                             "log_bytes": log_bytes,
                             "summary": self.summary.to_json() if summary is None else summary})

    def execute(self, on_shard: Callable[[ShadowRun], None] | None = None) -> ShadowResult:
        """Run (or resume) over every shard; returns the report and the exit code."""
        from parity.report import build_report
        t0 = time.perf_counter()
        identity = self.identity()
        groups = self.corpus.row_groups()
        self.corpus.release_memory = self.summary.mode.runs_legacy  # for pass 1: see ahead
        pool = ThreadPoolExecutor(1, thread_name_prefix="parity-scan")
        # pass 1 on a thread (Arrow and numpy release the GIL) from here on, while the run
        # directory starts and the warm-up loads the kernels; the index is complete before
        # the first shard starts. A resumed run primes its index instead (self.prime)
        scan: Future | None = None if self.opts.resume else pool.submit(self.index, groups)
        try:
            checkpoint = self.run.start(identity, self.opts.resume)
            self.start_sides(self.opts.mode)
            first = 0
            if checkpoint:
                self.summary = RunSummary.from_json(checkpoint["summary"])
                first = checkpoint["next_shard"]
                self.prime(groups[first].start if first < len(groups) else self.m.blocks,
                           groups)
            else:
                if scan is None:  # --resume with nothing to resume
                    scan = pool.submit(self.index, groups)
                self._checkpoint(0, 0, identity)
        except BaseException:
            pool.shutdown(cancel_futures=True)
            raise
        # reading ahead holds a second shard, writing on while the next shard is read holds
        # its results, and keeping freed memory for the next shard saves its page faults
        # (1M blocks, mode 3: 145k page faults -> 53k, median wall 5.46 -> 4.96 s): all three
        # raise the peak RSS and pay only when the legacy twin does not run (mode 3: reading
        # is then a third of the work; with legacy, under 2%)
        ahead = not self.summary.mode.runs_legacy  # a resumed run's mode may have rolled back
        self.corpus.release_memory = not ahead
        self.metrics.set_mode(self.summary.mode)
        with pool, Progress(self.m.blocks, "shadow", quiet=self.opts.quiet) as bar, \
                ShardWriter(self.run, self.opts.results, self.opts.force, first,
                            overlap=ahead, release=not ahead) as writer:
            bar.advance(sum(g.rows for g in groups[:first]))
            walk_past: np.ndarray | None = None
            for index, shard in enumerate(self.corpus.read_ahead(groups[first:], ahead), first):
                g = groups[index]
                ctx = self.context(self.summary.mode)
                ctx.sampled = sampled(self.opts, index)
                ctx.max_records = self.opts.max_records - self.summary.records_logged
                if not self.summary.warmup:  # scratch chain state: no replay state needed
                    self.summary.warmup = warm_up(shard, ctx, announce=not self.opts.quiet)
                if scan is not None and index == 0:
                    walk_past = self.start_first_shard(shard)  # pass 1 goes on meanwhile
                else:
                    if scan is not None:
                        scan.result()
                        scan = None
                        if walk_past is not None and self.recurring is not None:
                            self.recurring.record(walk_past)
                        walk_past = None
                    self.start_shard(shard)
                out = process_shard(index, shard, ctx)
                self.summary.add(out)
                self.metrics.observe_outcome(out)
                self.metrics.set_mode(self.summary.mode)
                # written on the writer's thread, in order, while the next shard computes
                writer.shard(index, [r.to_json() for r in out.records], out.results,
                             partial(self._checkpoint, identity=identity,
                                     summary=self.summary.to_json()))
                del shard, out  # one shard in memory at a time: not two while reading
                if not ahead:
                    release_freed_memory()
                bar.advance(g.rows)
                if on_shard is not None:
                    on_shard(self)
        records = list(self.run.records())
        report = build_report(self.summary, records, wall=time.perf_counter() - t0,
                              log_path=str(self.run.log_path))
        if self.opts.shrink:
            report["reproducers"] = self.reproducers(records)
        write_summary(self.run.path, self.summary, report)  # for parity report RUN_DIR
        return ShadowResult(report, 1 if self.summary.failed else 0, records)

    def reproducers(self, records: list[dict]) -> list[dict]:
        """``--shrink K``: the first K distinct mismatches shrunk to case files."""
        from parity.shrink import shrink_records
        return shrink_records(self, records, self.opts.shrink, self.opts.shrink_out)

    def replay_block(self, block: int) -> tuple[list[dict], dict]:
        """Run both twins on one block in its chain context: (mismatch records, outputs)."""
        from parity.compare import describe
        from parity.step import call_side, compare_outputs
        if not 0 <= block < self.m.blocks:
            raise ParityError(f"--block {block}: the corpus has blocks 0..{self.m.blocks - 1}")
        groups = self.corpus.row_groups()
        self.start_sides(Mode.SHADOW)
        self.prime(block, groups)
        g = next(g for g in groups if g.start <= block < g.start + g.rows)
        shard = self.corpus.read_shard(g).slice(block - g.start, block - g.start + 1)
        self.start_shard(shard)
        ctx = self.context(Mode.SHADOW)
        outputs: dict = {}
        records: list[dict] = []
        for fn in self.functions:
            cl = call_side(fn, self.legacy, shard, self.m, keep_state=True)
            if fn.name in self.legacy_only:
                outputs[fn.name] = {"legacy": describe(cl.error if cl.error else
                                                       np.asarray(cl.out)[0]),
                                    "refactored": LEGACY_ONLY_REASON}
                continue
            cr = call_side(fn, self.refactored, shard, self.m, keep_state=True)
            outputs[fn.name] = {
                "legacy": describe(cl.error if cl.error else np.asarray(cl.out)[0]),
                "refactored": describe(cr.error if cr.error else np.asarray(cr.out)[0])}
            records += [r.to_json() for r in compare_outputs(fn, shard, cl, cr, ctx, 1)[1]]
        return records, outputs


__all__ = ["ShadowOptions", "ShadowResult", "ShadowRun", "corpus_identity", "from_json"]
