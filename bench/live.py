"""Live validation benchmarks (``python -m bench.live``, part of ``make bench``).

- Persist cost per acknowledged batch at replay cache sizes 10k, 100k and 1M: ours (one
  SQLite transaction: block rows, commitments, tip) against the upstream node's way
  (rewrite a JSON file of every cache entry, atomic rename, no fsync, on every single
  add), measured in the same run.
- Throughput over HTTP on 127.0.0.1, mode 1, batches of 100, and the latency of
  single-block posts (bounded: a fixed number of requests, then it stops), against a
  ``parity serve --chain`` process (warmed up before it listens), from a client that
  keeps its connection alive, serializes the bodies before the clock starts and checks
  every answer. Beside it, the floor: each twin alone on the same batches.

Every figure is checked: the store holds what was acknowledged, the JSON file parses to
the cache, the fed results equal a batch run's.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from http.client import HTTPConnection
from pathlib import Path

import numpy as np

from parity.corpus import open_corpus
from parity.corpus.generate import GenerateOptions, generate
from parity.livestore import Acknowledged, LiveStore, Tip
from parity.report import cpu_name
from parity.state import ModeState

BATCH = 100


def _ack(seq: int, rng: np.random.Generator) -> Acknowledged:
    commits = [bytes(rng.integers(0, 256, 32, dtype=np.uint8)) for _ in range(BATCH)]
    blocks = [(seq + i, seq + i, commits[i], '{"status": 0}') for i in range(BATCH)]
    tip = Tip(seq + BATCH - 1, seq + BATCH - 1, commits[-1], 0, bytes(276))
    return Acknowledged(blocks, [(c, seq + i) for i, c in enumerate(commits)], [], tip)


def persist_ours(size: int, tmp: Path, rounds: int = 20) -> dict:
    """Median seconds to acknowledge one batch of 100 with ``size`` entries cached."""
    state = ModeState(tmp / f"ours-{size}.db")
    store = LiveStore(state, {"bench": size})
    rng = np.random.default_rng(size)
    seq = 0
    with state._write("prefill") as db:  # the cache as a long-running node has it
        for lo in range(0, size, 100_000):
            n = min(100_000, size - lo)
            keys = rng.integers(0, 256, (n, 32), dtype=np.uint8)
            db.executemany("INSERT OR IGNORE INTO live_commitments VALUES (?, ?)",
                           ((bytes(k), lo + i) for i, k in enumerate(keys)))
    seq = size
    times = []
    for _ in range(rounds):
        ack = _ack(seq, rng)
        t0 = time.perf_counter()
        store.acknowledge(ack, None)
        times.append(time.perf_counter() - t0)
        seq += BATCH
    assert store.cache_size() == size + rounds * BATCH  # every acknowledged entry is there
    state.close()
    return {"entries": size, "batch_seconds": statistics.median(times),
            "p99_seconds": float(np.percentile(times, 99))}


def persist_json(size: int, tmp: Path, rewrites: int = 3) -> dict:
    """Upstream: every add rewrites the whole cache as JSON (tmp file, rename, no fsync).
    One batch of 100 blocks is 100 rewrites; measured as the median single rewrite x 100."""
    rng = np.random.default_rng(size)
    cache = {rng.integers(0, 256, 32, dtype=np.uint8).tobytes().hex(): i for i in range(size)}
    path = tmp / f"cache-{size}.json"
    times = []
    for i in range(rewrites):
        cache[f"{i:064x}"] = size + i
        t0 = time.perf_counter()
        with open(path.with_suffix(".tmp"), "w") as f:
            json.dump(cache, f)
        os.replace(path.with_suffix(".tmp"), path)
        times.append(time.perf_counter() - t0)
    assert len(json.loads(path.read_text())) == len(cache)
    one = statistics.median(times)
    return {"entries": size, "rewrite_seconds": one, "batch_seconds": one * BATCH}


class Server:
    """``parity serve --chain CORPUS --mode 1`` in its own process (as deployed: the client
    does not share its interpreter), on a free port of 127.0.0.1."""

    def __init__(self, corpus: Path, state: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "parity", "serve", "--port", "0", "--state", str(state),
             "--mode", "1", "--chain", str(corpus)], stdout=subprocess.PIPE, text=True,
            cwd=Path(__file__).resolve().parent.parent)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # printed once warmed up and listening
        found = re.search(r"http://([0-9.]+):([0-9]+)/", line)
        if found is None:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError(f"parity serve did not start: {line!r}")
        self.host, self.port = found.group(1), int(found.group(2))
        self.url = f"http://{self.host}:{self.port}"
        self.conn = HTTPConnection(self.host, self.port, timeout=60)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def post(self, body: bytes) -> list[dict]:
        """POST /blocks on the kept-alive connection; the per-block answers."""
        self.conn.request("POST", "/blocks", body, {"Content-Type": "application/x-ndjson"})
        r = self.conn.getresponse()
        data = r.read()
        if r.status != 200:
            raise RuntimeError(f"POST /blocks: HTTP {r.status}: {data[:300]!r}")
        return json.loads(data)["results"]

    def get(self, path: str) -> dict:
        self.conn.request("GET", path)
        return json.loads(self.conn.getresponse().read())

    def stop(self) -> None:
        self.conn.close()
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _bodies(corpus: Path, batch: int) -> list[tuple[bytes, list[int]]]:
    """The corpus as ``parity feed`` posts it (at most ``batch`` blocks and its byte
    limit a body), serialized before anything is timed, with each body's heights."""
    from parity.feed import _batches
    out = []
    for _first, lines in _batches(open_corpus(corpus), 0, batch):
        out.append((b"".join(lines), [json.loads(x)["header"]["height"] for x in lines]))
    return out


def _post_all(server: Server, bodies: list[tuple[bytes, list[int]]]) -> list[float]:
    """Every body in order, each answer checked (one fresh result per block, in order);
    the seconds of each round trip."""
    times = []
    for body, heights in bodies:
        t0 = time.perf_counter()
        got = server.post(body)
        times.append(time.perf_counter() - t0)
        if [r["height"] for r in got] != heights or any(r.get("retry") for r in got):
            raise RuntimeError(f"wrong answer for the blocks at heights {heights[0]}..")
    return times


def twin_floor(corpus: Path, batch: int = BATCH) -> dict:
    """Blocks/s of each twin alone (its four compared functions, in process, no HTTP, no
    store) over the corpus in batches of ``batch``: what mode 1 cannot beat."""
    import kernels.jit
    import kernels.legacy
    from parity.functions import REGISTRY
    c = open_corpus(corpus)
    m = c.manifest
    parts = [s.slice(lo, min(lo + batch, len(s))) for s in c.shards()
             for lo in range(0, len(s), batch)]
    out = {}
    for name, twin in (("legacy", kernels.legacy), ("refactored", kernels.jit)):
        for fn in REGISTRY.values():  # warm: compiled or loaded before timing
            fn.call(twin, parts[0], m, m.anchor, twin.new_replay_state())
        seconds = 0.0
        for fn in REGISTRY.values():
            replay, parent = twin.new_replay_state(), m.anchor
            for part in parts:
                t0 = time.perf_counter()
                fn.call(twin, part, m, parent, replay)
                seconds += time.perf_counter() - t0
                parent = part.headers[-1].tobytes()
        out[f"{name}_blocks_per_second"] = c.blocks / seconds
    return out


def http(tmp: Path, blocks: int = 20_000, singles: int = 1_000) -> dict:
    """Throughput of batches of 100 and latency of single-block posts against a real
    ``parity serve`` process; the fed results must equal a batch run's."""
    from parity.feed import feed
    from parity.shadow import ShadowOptions, ShadowRun
    corpus = tmp / "corpus"
    generate(corpus, GenerateOptions(blocks=blocks, seed=21, fault_rate=0.02,
                                     shard_size=2_000, rows_per_file=blocks))
    out: dict = {"blocks": blocks, **twin_floor(corpus)}
    bodies = _bodies(corpus, BATCH)
    with Server(corpus, tmp / "http.db") as server:
        t0 = time.perf_counter()
        _post_all(server, bodies)
        out["blocks_per_second"] = blocks / (time.perf_counter() - t0)
        assert server.get("/chain")["blocks"] == blocks  # every acknowledged block is stored
        feed(str(corpus), server.url, results=str(tmp / "live.parquet"))  # reads them back
    with Server(corpus, tmp / "single.db") as server:
        lat = _post_all(server, _bodies(corpus, 1)[:singles])
        out["single_p50_ms"] = 1e3 * float(np.percentile(lat, 50))
        out["single_p99_ms"] = 1e3 * float(np.percentile(lat, 99))
    ShadowRun(ShadowOptions(str(corpus), quiet=True, run_dir=str(tmp / "run"),
                            results=str(tmp / "shadow.parquet"))).execute()
    import pyarrow.parquet as pq
    assert pq.read_table(tmp / "live.parquet").equals(pq.read_table(tmp / "shadow.parquet"))
    return out


def run(sizes: tuple[int, ...] = (10_000, 100_000, 1_000_000)) -> dict:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        ours = [persist_ours(n, tmp) for n in sizes]
        theirs = [persist_json(n, tmp) for n in sizes]
        result = {"cpu": cpu_name(), "batch": BATCH, "ours": ours, "json_rewrite": theirs,
                  "http": http(tmp)}
    by = {o["entries"]: o["batch_seconds"] for o in ours}
    result["ours_1m_over_10k"] = by[sizes[-1]] / by[sizes[0]]
    result["advantage_at_100k"] = next(t["batch_seconds"] for t in theirs
                                       if t["entries"] == 100_000) / by[100_000]
    return result


def markdown(r: dict) -> str:
    lines = [f"## Live validation ({r['cpu']})", "",
             f"Persist cost per acknowledged batch of {r['batch']} blocks:", "",
             "| cache entries | ours (one transaction) | JSON rewrite per add (x100) | ratio |",
             "|---:|---:|---:|---:|"]
    for o, t in zip(r["ours"], r["json_rewrite"], strict=True):
        lines.append(f"| {o['entries']:,} | {o['batch_seconds'] * 1e3:.2f} ms | "
                     f"{t['batch_seconds']:.2f} s | {t['batch_seconds'] / o['batch_seconds']:,.0f}x |")
    h = r["http"]
    lines += ["", f"Ours at 1M is {r['ours_1m_over_10k']:.2f}x its 10k cost (target: within 2x); "
              f"{r['advantage_at_100k']:,.0f}x cheaper than the JSON rewrite at 100k (target: "
              ">= 100x).", "",
              f"HTTP, mode 1, batches of {r['batch']}: {h['blocks_per_second']:,.0f} blocks/s "
              f"over {h['blocks']:,} blocks (target: >= 10,000). Single-block posts: p50 "
              f"{h['single_p50_ms']:.2f} ms, p99 {h['single_p99_ms']:.2f} ms (target: <= 10 ms).",
              "", f"Floor: the twins alone on the same batches, in process (their four compared "
              f"functions, no HTTP, no store): legacy {h['legacy_blocks_per_second']:,.0f} "
              f"blocks/s, refactored {h['refactored_blocks_per_second']:,.0f} blocks/s. Mode 1 "
              "runs both, one after the other, on every batch."]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="bench/results")
    ap.add_argument("--http-only", action="store_true",
                    help="only the HTTP figures, printed as JSON (nothing written)")
    args = ap.parse_args()
    if args.http_only:
        with tempfile.TemporaryDirectory() as d:
            print(json.dumps({"cpu": cpu_name(), **http(Path(d))}, indent=2))
        return 0
    result = run()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "live.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "live.md").write_text(markdown(result) + "\n")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
