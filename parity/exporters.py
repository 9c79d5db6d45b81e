"""Getting a batch run's metrics out: a Pushgateway and/or a textfile."""
from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway, write_to_textfile

from parity.metrics import Metrics

JOB = "parity_shadow"


class BatchExporter:
    """Pushes at the start (every counter at 0), at most once a second while running and at
    the end. The grouping key names the job and corpus, never a run id, so each run
    replaces the last one's series."""

    def __init__(self, metrics: Metrics, pushgateway: str | None, textfile: str | None,
                 corpus) -> None:
        self.metrics = metrics
        self.url = pushgateway
        self.textfile = textfile
        self.corpus = corpus
        self.grouping = {"corpus": corpus.path.resolve().name}
        self._last = 0.0
        self.last_run = CollectorRegistry()
        self.g_blocks = Gauge("parity_last_run_blocks", "Blocks in the last run's corpus",
                              registry=self.last_run)
        self.g_done = Gauge("parity_last_run_blocks_done", "Blocks processed by the last run",
                            registry=self.last_run)
        self.g_finished = Gauge("parity_last_run_finished_timestamp_seconds",
                                "When the last run ended (0 while running)", registry=self.last_run)
        self.g_blocks.set(corpus.manifest.blocks)

    def _push(self) -> None:
        if self.url:
            for registry in (self.metrics.registry, self.last_run):
                job = JOB if registry is self.metrics.registry else JOB + "_last_run"
                push_to_gateway(self.url, job=job, registry=registry, grouping_key=self.grouping,
                                timeout=5)
        if self.textfile:
            write_to_textfile(self.textfile, self.metrics.registry)

    def on_shard(self, run) -> None:
        self.g_done.set(run.blocks_done)
        now = time.monotonic()
        if now - self._last >= 1.0:
            self._last = now
            self._push()

    def __enter__(self) -> BatchExporter:
        self._push()
        return self

    def __exit__(self, *exc: object) -> None:
        self.g_finished.set(time.time())
        self._push()
