"""Getting a batch run's metrics out: a Pushgateway and/or a textfile.

A Pushgateway is monitoring, never part of the verdict: a push that still fails after
a few quick retries becomes a warning (stderr and :attr:`BatchExporter.warnings`) and
the run goes on. A malformed URL is a usage error, found before the run starts.
"""
from __future__ import annotations

import sys
import time
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry, Gauge, generate_latest, push_to_gateway

from parity.errors import ParityError
from parity.metrics import Metrics
from parity.outputs import OutputFile, atomic_write_text, text_starts_with

JOB = "parity_shadow"
ATTEMPTS = 3          #: tries per push
BACKOFF = 0.2         #: seconds before the second try, doubling after
TIMEOUT = 3.0         #: seconds per try
COOLDOWN = 30.0       #: after a failed push, progress pushes pause this long
TEXTFILE_HEADER = "# parity metrics: written by parity shadow --metrics-file\n"


def metrics_file_output(path: str) -> OutputFile:
    """``--metrics-file``: replaced only when parity wrote it (and --force)."""
    return OutputFile(path, "--metrics-file", text_starts_with(TEXTFILE_HEADER))


def validate_pushgateway_url(url: str, flag: str = "--pushgateway") -> str:
    """``url`` if it is an http(s)://host[:port][/path] URL, else ParityError."""
    usage = f"{flag} {url!r}: expected http://host[:port] or https://host[:port]"
    if not url or any(c.isspace() or not c.isprintable() for c in url):
        raise ParityError(usage)
    try:
        parts = urlsplit(url)
        port = parts.port  # ValueError when not a number in 0-65535
    except ValueError as exc:
        raise ParityError(f"{usage} ({exc})") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ParityError(f"{usage} (no http/https scheme)")
    if not parts.hostname:
        raise ParityError(f"{usage} (no host)")
    if port == 0:
        raise ParityError(f"{usage} (port 0)")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ParityError(f"{usage} (no query, fragment or credentials)")
    return url


class BatchExporter:
    """Pushes at the start (every counter at 0), at most once a second while running and at
    the end. The grouping key names the job and corpus, never a run id, so each run
    replaces the last one's series. Failed pushes end up in :attr:`warnings`."""

    def __init__(self, metrics: Metrics, pushgateway: str | None, textfile: str | None,
                 corpus, *, attempts: int = ATTEMPTS, backoff: float = BACKOFF,
                 timeout: float = TIMEOUT, cooldown: float = COOLDOWN,
                 force: bool = False) -> None:
        self.metrics = metrics
        self.url = validate_pushgateway_url(pushgateway) if pushgateway else None
        self.textfile = textfile
        self.force = force
        self._textfile_written = False
        self.corpus = corpus
        self.grouping = {"corpus": corpus.path.resolve().name}
        self.attempts, self.backoff, self.timeout = max(1, attempts), backoff, timeout
        self.cooldown = cooldown
        self.warnings: list[str] = []
        self.failed_pushes = 0
        self._last = 0.0
        self._paused_until = 0.0
        self.last_run = CollectorRegistry()
        self.g_blocks = Gauge("parity_last_run_blocks", "Blocks in the last run's corpus",
                              registry=self.last_run)
        self.g_done = Gauge("parity_last_run_blocks_done", "Blocks processed by the last run",
                            registry=self.last_run)
        self.g_finished = Gauge("parity_last_run_finished_timestamp_seconds",
                                "When the last run ended (0 while running)", registry=self.last_run)
        self.g_blocks.set(corpus.manifest.blocks)

    def warn(self, message: str) -> None:
        """Report ``message`` on stderr and keep it for the run report (once each)."""
        if message not in self.warnings:
            self.warnings.append(message)
            print(f"parity: warning: {message}", file=sys.stderr, flush=True)

    def _push_one(self, registry: CollectorRegistry, job: str) -> str | None:
        """None once the push succeeds, else why its last try failed."""
        reason = "not tried"
        for attempt in range(self.attempts):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                push_to_gateway(str(self.url), job=job, registry=registry,
                                grouping_key=self.grouping, timeout=self.timeout)
                return None
            except Exception as exc:  # monitoring must never end the run
                reason = f"{type(exc).__name__}: {exc}"[:300]
        return reason

    def _push(self, stage: str) -> None:
        paused = stage == "progress" and time.monotonic() < self._paused_until
        if self.url and not paused:
            for registry, job in ((self.metrics.registry, JOB), (self.last_run, JOB + "_last_run")):
                reason = self._push_one(registry, job)
                if reason is not None:
                    self.failed_pushes += 1
                    self._paused_until = time.monotonic() + self.cooldown
                    self.warn(f"pushgateway {self.url}: {stage} push failed after "
                              f"{self.attempts} tries ({reason})")
                    break
        if self.textfile:
            text = TEXTFILE_HEADER + generate_latest(self.metrics.registry).decode()
            if self._textfile_written:  # ours now: replaced in place, atomically
                atomic_write_text(self.textfile, text)
            else:
                metrics_file_output(self.textfile).write(self.force,
                                                         lambda tmp: tmp.write_text(text))
                self._textfile_written = True

    def on_shard(self, run) -> None:
        self.g_done.set(run.blocks_done)
        now = time.monotonic()
        if now - self._last >= 1.0:
            self._last = now
            self._push("progress")

    def __enter__(self) -> BatchExporter:
        self._push("start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.g_finished.set(time.time())
        self._push("final")
