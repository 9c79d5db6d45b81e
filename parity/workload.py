"""A background workload for ``parity serve --workload``: per-call experiments of
header hashing and merkle roots over a corpus's blocks, at a bounded rate."""
from __future__ import annotations

import threading
import time

import kernels.jit as jit
import kernels.legacy as legacy
from parity.corpus import open_corpus
from parity.percall import Controller, experiment


def start_workload(controller: Controller, corpus: str, rate: float,
                   stop: threading.Event) -> threading.Thread:
    c = open_corpus(corpus)
    header_hash = experiment("header_hash", legacy=legacy.hash_header,
                             refactored=jit.hash_header, controller=controller)
    merkle_root = experiment("merkle_root", legacy=legacy.merkle_root,
                             refactored=jit.merkle_root, controller=controller)

    def loop() -> None:
        period = 1.0 / rate if rate > 0 else 0.0
        while not stop.is_set():
            for shard in c.shards():
                for i in range(len(shard)):
                    if stop.is_set():
                        return
                    block = shard.block(i)
                    header_hash(block.header)
                    merkle_root(block.txids)
                    if period:
                        time.sleep(period)

    thread = threading.Thread(target=loop, name="parity-workload", daemon=True)
    thread.start()
    return thread
