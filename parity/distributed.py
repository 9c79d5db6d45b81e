"""Shadow runs on a Dask cluster: one task per shard, merged at the driver.

The answer is the single-process run's, bit for bit:

- each task reads its shard and the last header of the shard before it, so each
  twin validates the chain rules against its own hash of the parent;
- COMMITMENT_REPLAY is decided across the whole corpus: a first pass collects
  every block's commitment, and each task primes both twins' replay states with
  exactly those earlier commitments that recur in its shard;
- the driver merges results in shard order, keyed by shard index, so a task that
  Dask retries after a worker died is never counted twice.
"""
from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from kernels import constants as C
from parity.corpus import open_corpus
from parity.corpus.reader import RowGroup
from parity.errors import ParityError
from parity.metrics import Metrics
from parity.modes import Mode
from parity.outputs import atomic_write_text
from parity.progress import Progress
from parity.runlog import RESULTS_SCHEMA, results_output
from parity.shadow import ShadowOptions, ShadowResult, ShadowRun, corpus_identity
from parity.stats import FunctionStats

_WARM: dict[str, bool] = {}  # per worker process: twins already compiled / warmed


def commitments_task(corpus_path: str, g: RowGroup) -> np.ndarray:
    """Pass 1: the commitment_hash of every block of one shard, ``uint8[n, 32]``."""
    h = open_corpus(corpus_path, verify=False).read_headers(g)
    return np.ascontiguousarray(h[:, C.OFF_COMMITMENT_HASH:C.OFF_COMMITMENT_HASH + 32])


def shard_task(opts: dict, index: int, groups: list[RowGroup], prime: np.ndarray) -> dict:
    """Pass 2: both twins over shard ``index`` in the run's mode; compact results."""
    import numba
    numba.set_num_threads(1)  # one thread per Dask worker thread
    options = ShadowOptions(**opts)
    run = ShadowRun(options, verify=False)
    shard = run.corpus.read_shard(groups[index])
    for side, runs in ((run.legacy, options.mode.runs_legacy),
                       (run.refactored, options.mode.runs_refactored)):
        if runs:
            side.replay = side.module.new_replay_state()
            if len(prime):
                side.replay.update([r.tobytes() for r in prime])  # type: ignore[attr-defined]
            side.parent = run.m.anchor
    if index > 0:
        run.set_parents(run.corpus.read_headers(groups[index - 1])[-1:].copy())
    key = f"{options.legacy}|{options.refactored}|{int(options.mode)}"
    warmup = {}
    if not _WARM.get(key):
        run._warm_up(shard)
        warmup = run.warmup
        _WARM[key] = True
    records, table = run._process(index, shard)
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return {"index": index, "records": records, "results": sink.getvalue(),
            "stats": {fn: s.to_json() for fn, s in run.stats.items()},
            "mode_changes": run.mode_changes, "replays_served": run.replays_served,
            "kernel_seconds": run.kernel_seconds, "warmup": warmup,
            "legacy_ran": any(s.legacy_calls for s in run.stats.values()), "blocks": len(shard)}


def _prime_sets(commits: list[np.ndarray], starts: list[int]) -> list[np.ndarray]:
    """For each shard, the earlier commitments that occur in it (the only ones its
    replay decisions depend on)."""
    if not commits:
        return []
    allc = np.concatenate(commits) if commits else np.zeros((0, 32), np.uint8)
    keys = allc.view("<u8").reshape(-1, 4)
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    first_of_block = first[inverse.reshape(-1)]
    out = []
    for k, start in enumerate(starts):
        n = commits[k].shape[0]
        seen_before = first_of_block[start:start + n] < start
        out.append(np.unique(allc[start:start + n][seen_before], axis=0)
                   if seen_before.any() else np.zeros((0, 32), np.uint8))
    return out


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
        self.opts = opts
        self.scheduler = scheduler
        self.workers = workers
        self.run = ShadowRun(opts, metrics=metrics)  # verifies the corpus once, at the driver
        self._cluster = None

    def _client(self):
        from distributed import Client, LocalCluster
        if self.scheduler:
            return Client(self.scheduler, timeout=30)
        self._cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1,
                                     processes=True, dashboard_address=":0",
                                     host="127.0.0.1", silence_logs=40)
        return Client(self._cluster)

    def _options(self) -> dict:
        o = self.opts
        return {"corpus": str(Path(o.corpus).resolve()), "mode": o.mode, "functions": o.functions,
                "legacy": o.legacy, "refactored": o.refactored, "sample": o.sample,
                "repeat": o.repeat, "seed": o.seed, "quiet": True, "max_records": o.max_records,
                "run_dir": "/nonexistent-dask-task"}

    def execute(self, on_shard=None, client=None) -> ShadowResult:
        from distributed import as_completed
        from parity.report import build_report
        t0 = time.perf_counter()
        run = self.run
        run.run.start(run.identity(), resume=False)  # a marked run directory, or a refusal
        corpus = str(Path(self.opts.corpus).resolve())
        groups = run.corpus.row_groups()
        own = client is None
        client = client or self._client()
        try:
            need_prime = "validate" in self.opts.functions
            commits = client.gather([client.submit(commitments_task, corpus, g, pure=False)
                                     for g in groups]) if need_prime else []
            primes = _prime_sets(commits, [g.start for g in groups]) if need_prime else \
                [np.zeros((0, 32), np.uint8)] * len(groups)
            opts = self._options()
            futures = {client.submit(shard_task, opts, i, groups, primes[i],
                                     pure=False, retries=3): i for i in range(len(groups))}
            results: dict[int, dict] = {}
            with Progress(run.m.blocks, "shadow/dask", quiet=self.opts.quiet) as bar:
                for fut in as_completed(list(futures)):
                    res = fut.result()
                    results[res["index"]] = res  # by index: a retried task replaces, never adds
                    run.blocks_done += res["blocks"]
                    bar.advance(res["blocks"])
                    self._observe(res)
                    if on_shard is not None:
                        on_shard(run)
            results = self._emulate_demotion(client, opts, groups, primes, results)
        finally:
            if own:
                client.close()
                if self._cluster is not None:
                    self._cluster.close()
        return self._merge(groups, results, time.perf_counter() - t0, build_report)

    def _emulate_demotion(self, client, opts, groups, primes, results):
        """Mode 2 demotes at its first mismatch; later shards then run in mode 1. With a
        legacy sample below 1, re-run those that skipped legacy, in mode 1."""
        if self.opts.mode != Mode.REFACTORED_PRIMARY:
            return results
        first = next((i for i in sorted(results) if results[i]["mode_changes"]), None)
        if first is None:
            return results
        redo = [i for i in sorted(results) if i > first and not results[i]["legacy_ran"]]
        shadow_opts = dict(opts, mode=Mode.SHADOW)
        futures = [client.submit(shard_task, shadow_opts, i, groups, primes[i],
                                 pure=False, retries=3) for i in redo]
        for res in client.gather(futures):
            results[res["index"]] = res
        for i in sorted(results):
            if i > first:
                results[i]["mode_changes"] = []
        return results

    def _observe(self, res: dict) -> None:
        """A finished shard's durations and counts into the driver's metrics (cumulative:
        Metrics keeps the running sums behind the match rate and speedup)."""
        metrics = self.run.metrics
        for fn, s in res["stats"].items():
            st = FunctionStats.from_json(s)
            for legacy_s, refactored_s in st.pairs:
                metrics.observe(fn, legacy_s, refactored_s)
            metrics.observe(fn, None, None, st.comparisons, st.mismatches)
        metrics.replays.inc(res["replays_served"])

    def _merge(self, groups, results, wall, build_report) -> ShadowResult:
        run = self.run
        missing = [i for i in range(len(groups)) if i not in results]
        if missing:
            raise ParityError(f"dask: shards {missing[:5]} returned no result")
        records: list[dict] = []
        run.stats = {fn: FunctionStats() for fn in self.opts.functions}
        for i in range(len(groups)):
            res = results[i]
            records += res["records"]
            for fn, s in res["stats"].items():
                run.stats[fn].merge(FunctionStats.from_json(s))
            if res["mode_changes"] and not run.mode_changes:
                run.mode_changes = res["mode_changes"]
                run.mode = Mode.SHADOW
            run.replays_served += res["replays_served"]
            run.kernel_seconds += res["kernel_seconds"]
            for side, secs in res["warmup"].items():
                run.warmup[side] = max(run.warmup.get(side, 0.0), secs)
        records = records[:self.opts.max_records]
        if self.opts.results:
            def write(tmp: Path) -> None:
                with pq.ParquetWriter(tmp, RESULTS_SCHEMA) as writer:
                    for i in range(len(groups)):
                        writer.write_table(pq.read_table(pa.BufferReader(results[i]["results"]),
                                                         schema=RESULTS_SCHEMA))
            results_output(self.opts.results).write(self.opts.force, write)
        atomic_write_text(run.run.log_path, "".join(json.dumps(r, sort_keys=True) + "\n"
                                                    for r in records))
        report = build_report(run, records, wall=wall)
        report["engine"] = {"name": "dask", "scheduler": self.scheduler or "local",
                            "workers": self.workers if not self.scheduler else None,
                            "corpus_id": corpus_identity(run.corpus)}
        failed = any(s.mismatches or s.errors for s in run.stats.values())
        return ShadowResult(report, 1 if failed else 0, records)
