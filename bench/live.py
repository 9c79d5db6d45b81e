"""Live validation benchmarks (``python -m bench.live``, part of ``make bench``).

- Persist cost per acknowledged batch at replay cache sizes 10k, 100k and 1M: ours (one
  SQLite transaction: block rows, commitments, tip) against the upstream node's way
  (rewrite a JSON file of every cache entry, atomic rename, no fsync, on every single
  add), measured in the same run.
- Throughput over HTTP on 127.0.0.1, mode 1, batches of 100, and the latency of
  single-block posts (bounded: a fixed number of requests, then it stops).

Every figure is checked: the store holds what was acknowledged, the JSON file parses to
the cache, the fed results equal a batch run's.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

from parity.corpus import open_corpus
from parity.corpus.generate import GenerateOptions, generate
from parity.corpus.jsonl import block_to_json
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


def http(tmp: Path, blocks: int = 20_000, singles: int = 1_000) -> dict:
    from parity.feed import feed
    from parity.live import Chain, LiveValidator, install
    from parity.percall import Controller
    from parity.server import ParityServer
    from parity.shadow import ShadowOptions, ShadowRun
    corpus = tmp / "corpus"
    generate(corpus, GenerateOptions(blocks=blocks, seed=21, fault_rate=0.02,
                                     shard_size=2_000, rows_per_file=blocks))
    m = open_corpus(corpus).manifest
    out: dict = {"blocks": blocks}
    for name, state in (("batch", tmp / "http.db"), ("single", tmp / "single.db")):
        controller = Controller(ModeState(state, initial=1))
        server = ParityServer(controller, "127.0.0.1", 0)
        install(server, LiveValidator(controller, Chain(m.now, m.difficulty_target, m.anchor)))
        server.start()
        host, port = server.address
        url = f"http://{host}:{port}"
        try:
            if name == "batch":
                t0 = time.perf_counter()
                feed(str(corpus), url, batch=BATCH, results=str(tmp / "live.parquet"))
                out["blocks_per_second"] = blocks / (time.perf_counter() - t0)
            else:
                lines = [(json.dumps(block_to_json(s.block(i))) + "\n").encode()
                         for s in open_corpus(corpus).shards() for i in range(len(s))][:singles]
                lat = []
                for line in lines:
                    t0 = time.perf_counter()
                    req = urllib.request.Request(url + "/blocks", data=line, method="POST")
                    with urllib.request.urlopen(req, timeout=30) as r:
                        assert len(json.loads(r.read())["results"]) == 1
                    lat.append(time.perf_counter() - t0)
                out["single_p50_ms"] = 1e3 * float(np.percentile(lat, 50))
                out["single_p99_ms"] = 1e3 * float(np.percentile(lat, 99))
        finally:
            server.stop()
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
              f"{h['single_p50_ms']:.2f} ms, p99 {h['single_p99_ms']:.2f} ms (target: <= 10 ms)."]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="bench/results")
    args = ap.parse_args()
    result = run()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "live.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "live.md").write_text(markdown(result) + "\n")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
