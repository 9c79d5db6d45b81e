"""``parity feed CORPUS --to URL``: post a corpus to a live server, block batch by batch.

Run again after a crash (of either side), it resumes after the last block the server
acknowledged: the server's chain tip, found in the corpus by height and header hash.
A batch whose answer was lost is simply posted again; the server answers blocks it
already holds from its store. At the end the served results of every block are read
back and written as the same results Parquet ``parity shadow --results`` writes.
"""
from __future__ import annotations

import http.client
import json
import queue
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from blake3 import blake3

from kernels import constants as C
from parity.corpus import Corpus, open_corpus
from parity.corpus.jsonl import block_to_json
from parity.errors import ParityError
from parity.progress import Progress
from parity.runlog import RESULTS_SCHEMA, results_output

T = TypeVar("T")
MAX_BATCH_BYTES = 900_000   #: stay under the server's 1 MiB body limit
RETRY_SECONDS = 60.0        #: how long a batch is retried while the server is away


@dataclass
class FeedResult:
    posted: int
    skipped: int
    disagreed: int
    retries: int


class Client:
    """JSON calls to a live server over one kept-alive connection (reopened after any
    failure)."""

    def __init__(self, url: str, timeout: float = 60.0, retry_seconds: float = RETRY_SECONDS):
        from parity.exporters import validate_pushgateway_url
        validate_pushgateway_url(url, "--to")  # http(s)://host[:port]
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.retry_seconds = retry_seconds
        self.retries = 0
        parts = urllib.parse.urlsplit(self.url)
        self._https = parts.scheme == "https"
        self._netloc, self._base = parts.netloc, parts.path
        self._conn: http.client.HTTPConnection | None = None

    def _request(self, method: str, path: str, body: bytes | None) -> tuple[int, bytes]:
        if self._conn is None:
            kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            self._conn = kind(self._netloc, timeout=self.timeout)
        self._conn.request(method, self._base + path, body=body,
                           headers={"Content-Type": "application/x-ndjson"})
        r = self._conn.getresponse()
        data = r.read()
        if r.will_close:
            self.close()
        return r.status, data

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def call(self, method: str, path: str, body: bytes | None = None) -> Any:
        """JSON from the server; retried while it is away or answers 503."""
        deadline = time.monotonic() + self.retry_seconds
        delay = 0.1
        while True:
            reused = self._conn is not None
            try:
                status, data = self._request(method, path, body)
                if 200 <= status < 300:
                    return json.loads(data)
                detail = data[:500].decode("utf-8", "replace")
                if status != 503:
                    raise ParityError(f"{method} {self.url}{path}: HTTP {status}: "
                                      f"{detail.strip()}")
                why = f"HTTP 503 {detail.strip()}"
            except (OSError, ValueError, http.client.HTTPException) as exc:
                self.close()  # refused, reset, timed out, cut short: a new connection
                if reused and isinstance(exc, (ConnectionError, http.client.HTTPException)):
                    continue  # the server had closed the idle connection: not a retry
                why = str(exc) or type(exc).__name__
            if time.monotonic() > deadline:
                raise ParityError(f"{method} {self.url}{path}: no answer within "
                                  f"{self.retry_seconds:.0f}s ({why})")
            self.retries += 1
            time.sleep(delay)
            delay = min(2.0, delay * 2)


def _resume_point(corpus: Corpus, tip: dict | None) -> int:
    """The corpus position after the server's tip (0 on an empty server)."""
    if tip is None:
        return 0
    for g in corpus.row_groups():
        headers = corpus.read_headers(g)
        heights = np.ascontiguousarray(headers[:, C.OFF_HEIGHT:C.OFF_HEIGHT + 8]).view("<u8")
        for row in np.flatnonzero(heights.reshape(-1) == np.uint64(tip["height"])):
            if blake3(headers[row].tobytes()).hexdigest() == tip["hash"]:
                return g.start + int(row) + 1
    raise ParityError(f"the server's last block (height {tip['height']}, hash {tip['hash']}) "
                      "is not in this corpus: it validates another chain")


def _batches(corpus: Corpus, start: int, size: int) -> Iterator[tuple[int, list[bytes]]]:
    """(first position, JSONL lines) of at most ``size`` blocks and MAX_BATCH_BYTES."""
    lines: list[bytes] = []
    first, nbytes = start, 0
    for shard in corpus.shards(start):
        for i in range(max(0, start - shard.start), len(shard)):
            line = (json.dumps(block_to_json(shard.block(i))) + "\n").encode()
            if lines and (len(lines) == size or nbytes + len(line) > MAX_BATCH_BYTES):
                yield first, lines
                lines, first, nbytes = [], shard.start + i, 0
            lines.append(line)
            nbytes += len(line)
    if lines:
        yield first, lines


def ahead(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """The items of ``items``, made by a thread up to ``depth`` ahead of the consumer (the
    next bodies are serialized while the server works on the last one); an exception
    there is raised here, in order."""
    box: queue.Queue = queue.Queue(depth)
    stop = threading.Event()
    done = object()

    def offer(entry: tuple) -> bool:
        while not stop.is_set():
            try:
                box.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False  # the consumer is gone

    def make() -> None:
        try:
            for item in items:
                if not offer((item, None)):
                    return
            offer((done, None))
        except BaseException as exc:  # handed over to the consumer
            offer((done, exc))

    worker = threading.Thread(target=make, name="feed-serialize", daemon=True)
    worker.start()
    try:
        while True:
            item, exc = box.get()
            if exc is not None:
                raise exc
            if item is done:
                return
            yield item
    finally:
        stop.set()
        worker.join()


def feed(corpus_path: str, url: str, batch: int = 100, results: str | None = None,
         force: bool = False, quiet: bool = True, client: Client | None = None) -> FeedResult:
    if batch < 1:
        raise ParityError(f"--batch must be at least 1, got {batch}")
    if results:
        results_output(results).check(force)
    corpus = open_corpus(corpus_path)
    client = client or Client(url)
    try:
        return _feed(corpus, client, batch, results, force, quiet)
    finally:
        client.close()


def _feed(corpus: Corpus, client: Client, batch: int, results: str | None, force: bool,
          quiet: bool) -> FeedResult:
    start = _resume_point(corpus, client.call("GET", "/chain")["tip"])
    disagreed = posted = 0
    with Progress(corpus.blocks, "feed", quiet=quiet) as bar:
        bar.advance(start)
        for _first, lines in ahead(_batches(corpus, start, batch)):
            answer = client.call("POST", "/blocks", b"".join(lines))
            got = answer.get("results", [])
            if len(got) != len(lines):
                raise ParityError(f"POST /blocks: {len(got)} answers for {len(lines)} blocks")
            disagreed += sum(1 for r in got if r.get("agreed") is False)
            posted += len(lines)
            bar.advance(len(lines))
    if results:
        _write_results(client, corpus, Path(results), force)
    return FeedResult(posted, start, disagreed, client.retries)


def _write_results(client: Client, corpus: Corpus, out: Path, force: bool) -> None:
    """Every block's served results, read back from the server, as the results Parquet."""
    rows: list[dict] = []
    after = -1
    while len(rows) < corpus.blocks:
        page = client.call("GET", f"/results?after={after}&limit=10000")["results"]
        if not page:
            break
        rows += page
        after = page[-1]["seq"]
    if [r["seq"] for r in rows] != list(range(corpus.blocks)):
        raise ParityError(f"the server holds {len(rows):,} results for this corpus's "
                          f"{corpus.blocks:,} blocks (positions must match)")

    def column(key: str, typ: pa.DataType) -> pa.Array:
        if typ == pa.uint32():
            return pa.array([r[key] for r in rows], typ)
        return pa.array([None if r[key] is None else bytes.fromhex(r[key]) for r in rows], typ)
    table = pa.table({"block": pa.array(range(len(rows)), pa.int64()),
                      **{f.name: column(f.name, f.type) for f in RESULTS_SCHEMA
                         if f.name != "block"}}, schema=RESULTS_SCHEMA)
    results_output(out).write(force, lambda tmp: pq.write_table(table, tmp))
