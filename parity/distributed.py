"""Shadow runs on a Dask cluster: one task per shard, merged at the driver.

The answer is the single-process run's, bit for bit:

- each task runs :func:`parity.step.process_shard` on its shard, with each side's
  parent set to the last header of the shard before it (hashed by each twin inside
  its validation, as in a single process);
- COMMITMENT_REPLAY is decided across the whole corpus: a first pass finds which
  commitments may recur (:mod:`parity.recurring`), and each task primes both twins'
  replay states with exactly those earlier commitments that recur in its shard (the
  local engine does the same);
- the driver merges outcomes in shard order into one :class:`~parity.summary.RunSummary`,
  keyed by shard index, so a task that Dask retries after a worker died is never
  counted twice; mode 2 demotion is applied in shard order too.
"""
from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from parity import recurring
from parity.corpus import open_corpus
from parity.corpus.reader import RowGroup
from parity.errors import ParityError
from parity.metrics import Metrics
from parity.modes import Mode
from parity.outputs import atomic_write_text
from parity.progress import Progress
from parity.runview import write_summary
from parity.shadow import ShadowOptions, ShadowResult, ShadowRun, corpus_identity, sampled
from parity.step import ShardOutcome, process_shard, warm_up

_WARM: dict[str, bool] = {}  # per worker process: twins already compiled / warmed
#: Dask settings of the local cluster parity starts (see DaskShadow._client)
LOCAL_CLUSTER_CONFIG = {"distributed.worker.profile.enabled": False,
                        "distributed.scheduler.work-stealing": False,
                        "distributed.admin.tick.interval": "1s"}


def hashes_task(corpus_path: str, g: RowGroup) -> np.ndarray:
    """Pass 1: a 32-bit hash of every block's commitment_hash (parity.recurring)."""
    h = open_corpus(corpus_path, verify=False).read_headers(g)
    return recurring.hash32(recurring.commitment_view(h))


def candidates_task(corpus_path: str, g: RowGroup, cands: np.ndarray) -> np.ndarray:
    """Pass 1b: the commitments of one shard whose hash is a candidate (they may recur),
    ``uint8[k, 32]`` in block order."""
    c = recurring.commitments(open_corpus(corpus_path, verify=False).read_headers(g))
    return c[np.isin(recurring.hash32(c), cands)]


def shard_task(opts: dict, index: int, groups: list[RowGroup], prime: np.ndarray
               ) -> dict[str, Any]:
    """Pass 2: shard ``index`` through the shard step, in the run's mode."""
    with _worker_run(opts) as run:  # exec: twins: a process per task
        return _shard_step(run, run.opts, index, groups, prime)


def _worker_run(opts: dict) -> ShadowRun:
    """The run's twins on a worker (the corpus verified at the driver), numba on one
    thread: one per Dask worker thread."""
    import numba
    numba.set_num_threads(1)
    return ShadowRun(ShadowOptions(**opts), verify=False)


def _shard_step(run: ShadowRun, options: ShadowOptions, index: int, groups: list[RowGroup],
                prime: np.ndarray) -> dict[str, Any]:
    run.start_sides(options.mode)
    before = next((g for g in reversed(groups[:index]) if g.rows), None)
    parent = run.corpus.read_headers(before)[-1].tobytes() if before else None
    for side in (run.legacy, run.refactored):
        if side.replay is not None:
            if len(prime):
                side.replay.update([r.tobytes() for r in prime])
            if parent is not None:
                side.parent = parent
    shard = run.corpus.read_shard(groups[index])
    ctx = run.context(options.mode)
    ctx.sampled = sampled(options, index)
    key = f"{options.legacy}|{options.refactored}|{int(options.mode)}"
    warmup: dict[str, float] = {}
    if not _WARM.get(key):
        warmup = warm_up(shard, ctx)
        _WARM[key] = True
    return {"outcome": process_shard(index, shard, ctx), "warmup": warmup}


def prepare_worker(opts: dict) -> None:
    """On a worker (``client.run``, before any shard task): load the run's twins and
    their kernels on a thread while the first pass runs, so that the worker's first
    shard task does not wait for them. Its errors are left to that task, which meets and
    reports them."""
    def prepare() -> None:
        try:
            with _worker_run(opts) as run:
                if run.preloading is not None:
                    run.preloading.join()
        except Exception:  # the shard task meets the same error and reports it
            pass
    threading.Thread(target=prepare, name="parity-prepare", daemon=True).start()


def prime_sets(client: Any, corpus: str, groups: list[RowGroup],
               cands: np.ndarray | None = None) -> list[np.ndarray]:
    """For each shard, the earlier commitments that occur in it (the only ones its
    replay decisions depend on). The driver holds 4 bytes a block and the candidate
    commitments, never every commitment. ``cands``: pass 1's answer when the driver
    found it itself (:func:`parity.recurring.scan`), else tasks find it."""
    if cands is None:
        cands = recurring.candidates(client.gather(
            [client.submit(hashes_task, corpus, g, pure=False) for g in groups]))
    rows = client.gather([client.submit(candidates_task, corpus, g, cands, pure=False)
                          for g in groups])
    index = recurring.RecurringIndex(cands, compiled=False)  # the driver compiles nothing
    return [index.prime(r) for r in rows]


class DaskShadow:
    """Drive a shadow run on a Dask cluster (an address, or a local cluster of N workers)."""

    def __init__(self, opts: ShadowOptions, scheduler: str | None = None, workers: int = 2,
                 metrics: Metrics | None = None) -> None:
        try:
            import distributed  # noqa: F401
        except ImportError:
            raise ParityError("--engine dask needs dask[distributed] (pip install "
                              "'dask[distributed]')") from None
        if opts.resume:
            raise ParityError("--resume is for the local engine; a Dask run retries lost tasks")
        if workers < 1 and not scheduler:
            raise ParityError(f"--workers must be at least 1, got {workers}")
        self.opts = opts
        self.scheduler = scheduler
        self.workers = workers
        # verifies the corpus once, at the driver (which runs no kernel: none loaded here)
        self.run = ShadowRun(opts, metrics=metrics, load_kernels=False)
        self._cluster: Any = None
        self.blocks_done = 0

    @property
    def metrics(self) -> Metrics:
        return self.run.metrics

    def _client(self) -> Any:
        import dask
        from distributed import Client, LocalCluster
        if self.scheduler:
            return Client(self.scheduler, timeout=30)
        # the local cluster shares the machine with its own tasks: no dashboard, no
        # sampling profiler in the workers, no work stealing (tasks are as long as one
        # another and queued at the scheduler) and a slower event-loop tick; measured
        # idle on 2 cores: 4% of a core for driver and workers together instead of 9%.
        # Its HTTP server (health, metrics: there even without a dashboard) takes a free
        # loopback port: Dask's default, 8787, may be another cluster's (then a warning)
        with dask.config.set(LOCAL_CLUSTER_CONFIG):
            self._cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1,
                                         processes=True, dashboard_address="127.0.0.1:0",
                                         host="127.0.0.1", silence_logs=40)
            return Client(self._cluster)

    def _options(self, mode: Mode) -> dict:
        o = dataclasses.replace(self.opts, corpus=str(Path(self.opts.corpus).resolve()),
                                mode=mode, quiet=True, results=None, resume=False,
                                run_dir="/nonexistent-dask-task")
        return dataclasses.asdict(o)

    def execute(self, on_shard: Callable[[Any], None] | None = None,
                client: Any = None) -> ShadowResult:
        from distributed import as_completed
        t0 = time.perf_counter()
        run = self.run
        run.run.start(run.identity(), resume=False)  # a marked run directory, or a refusal
        corpus = str(Path(self.opts.corpus).resolve())
        groups = run.corpus.row_groups()
        own = client is None
        need_prime = any(f.chain_state for f in run.functions)
        # a local cluster shares this machine and takes seconds to start, this process
        # idle meanwhile: pass 1 runs here then (a given cluster runs it as tasks)
        pass1 = ThreadPoolExecutor(1, thread_name_prefix="parity-scan") \
            if own and need_prime else None
        scan = pass1.submit(recurring.scan, run.corpus, groups, compiled=False) \
            if pass1 is not None else None  # numpy hashes: the driver compiles nothing (RSS)
        try:
            client = client or self._client()
        finally:
            if pass1 is not None:
                pass1.shutdown(wait=False)  # its one task still runs: no thread is left idle
        try:
            opts = self._options(self.opts.mode)
            client.run(prepare_worker, opts)
            primes = prime_sets(client, corpus, groups,
                                scan.result() if scan is not None else None) if need_prime \
                else [np.zeros((0, 32), np.uint8)] * len(groups)
            futures = {client.submit(shard_task, opts, i, groups, primes[i],
                                     pure=False, retries=3): i for i in range(len(groups))}
            results: dict[int, dict] = {}
            with Progress(run.m.blocks, "shadow/dask", quiet=self.opts.quiet) as bar:
                for fut in as_completed(list(futures)):
                    res = fut.result()
                    out: ShardOutcome = self._park(res["outcome"])
                    results[out.index] = res  # by index: a retried task replaces, never adds
                    self.blocks_done += out.blocks
                    bar.advance(out.blocks)
                    if on_shard is not None:
                        on_shard(self)
            self._redo_after_demotion(client, groups, primes, results)
        except BaseException:
            if own:
                self._close(client)
            raise
        # the local cluster's workers take a second or two to exit: meanwhile, merge
        closer = threading.Thread(target=self._close, args=(client,)) if own else None
        if closer is not None:
            closer.start()
        try:
            return self._merge(groups, results, time.perf_counter() - t0)
        finally:
            if closer is not None:
                closer.join()

    def _close(self, client: Any) -> None:
        client.close()
        if self._cluster is not None:
            self._cluster.close()

    def _redo_after_demotion(self, client: Any, groups: list[RowGroup],
                             primes: list[np.ndarray], results: dict[int, dict]) -> None:
        """Mode 2 demotes at its first mismatch; later shards then run in mode 1. Those
        that skipped legacy (a sample below 1) run again, in mode 1."""
        if self.opts.mode != Mode.REFACTORED_PRIMARY:
            return
        first = next((i for i in sorted(results) if results[i]["outcome"].demotion), None)
        if first is None:
            return
        redo = [i for i in sorted(results) if i > first and not results[i]["outcome"].legacy_ran]
        opts = self._options(Mode.SHADOW)
        for res in client.gather([client.submit(shard_task, opts, i, groups, primes[i],
                                                pure=False, retries=3) for i in redo]):
            results[self._park(res["outcome"]).index] = res

    def _park(self, out: ShardOutcome) -> ShardOutcome:
        """Write a shard's served results to the run directory as a part (as the local
        engine does) and drop them here: the driver never holds every shard's results."""
        self.run.run.write_part(out.index, out.results)
        out.results = out.results.schema.empty_table()
        return out

    def _merge(self, groups: list[RowGroup], results: dict[int, dict],
               wall: float) -> ShadowResult:
        from parity.report import build_report
        run = self.run
        missing = [i for i in range(len(groups)) if i not in results]
        if missing:
            raise ParityError(f"dask: shards {missing[:5]} returned no result")
        summary = run.summary
        records: list[dict] = []
        for i in range(len(groups)):
            out: ShardOutcome = results[i]["outcome"]
            summary.add(out)
            run.metrics.observe_outcome(out)
            records += [r.to_json() for r in out.records]
            for side, secs in results[i]["warmup"].items():
                summary.warmup[side] = max(summary.warmup.get(side, 0.0), secs)
        run.metrics.set_mode(summary.mode)
        records = records[:self.opts.max_records]
        summary.records_logged = len(records)
        if self.opts.results:
            run.run.merge_results(Path(self.opts.results), len(groups), self.opts.force)
        atomic_write_text(run.run.log_path, "".join(json.dumps(r, sort_keys=True) + "\n"
                                                    for r in records))
        report = build_report(summary, records, wall=wall, log_path=str(run.run.log_path))
        report["engine"] = {"name": "dask", "scheduler": self.scheduler or "local",
                            "workers": self.workers if not self.scheduler else None,
                            "corpus_id": corpus_identity(run.corpus)}
        write_summary(run.run.path, summary, report)  # for parity report RUN_DIR
        return ShadowResult(report, 1 if summary.failed else 0, records)
