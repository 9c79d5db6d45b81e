"""What a fuzz run keeps: regression corpora with their records, and coverage corpora.

A finding's shrunk case becomes a SPEC section 6 corpus that ``parity shadow``
reproduces: the replay history as blocks carrying those commitments (zero headers
otherwise), then the parent's header as a block when the parent is a header (an anchor
parent becomes the manifest's anchor), then the block. Inputs that reached new coverage
become corpora too, one per (``now``, difficulty target) pair, each input as its parent
header (when it has one) followed by its block.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from kernels import constants as C
from kernels.constants import Block
from parity.compare import describe
from parity.corpus import CorpusWriter, open_corpus
from parity.corpus.shard import from_blocks
from parity.functions import BatchFunction
from parity.outputs import atomic_write_text, write_marker
from parity.records import Record, ShardFailure
from parity.shrink.case import Case

WRITTEN_BY = "parity fuzz"


def _carrier(commitment: bytes) -> Block:
    header = bytearray(C.HEADER_SIZE)
    header[C.OFF_COMMITMENT_HASH:C.OFF_COMMITMENT_HASH + 32] = commitment
    return Block(bytes(header), [], [], 0, [])


def case_blocks(case: Case) -> tuple[list[Block], C.Parent | None]:
    """The blocks of a case's corpus (the case's block last) and the manifest anchor."""
    blocks = [_carrier(c) for c in case.replay]
    anchor = None
    if isinstance(case.parent, bytes):
        blocks.append(Block(case.parent, [], [], 0, []))
    elif case.parent is not None and not blocks:
        anchor = case.parent
    return blocks + [case.block], anchor


def write_corpus(directory: Path, blocks: Iterable[Block], now: int, target: bytes,
                 anchor: C.Parent | None) -> Path:
    """A new corpus of ``blocks`` (one row group) in ``directory``, marked as parity's."""
    with CorpusWriter(directory, now=now, difficulty_target=target, anchor=anchor) as w:
        w.append(from_blocks(list(blocks)))
    write_marker(directory, "corpus")
    return directory


def _call(fn: BatchFunction, twin: Any, corpus_dir: Path) -> tuple[Any, Any]:
    corpus = open_corpus(corpus_dir)
    shard = next(corpus.shards())
    replay = twin.new_replay_state() if fn.chain_state else None
    try:
        return shard, np.asarray(fn.call(twin, shard, corpus.manifest, corpus.manifest.anchor,
                                         replay))
    except Exception as exc:  # an exception is an outcome
        return shard, exc


def corpus_record(fn: BatchFunction, corpus_dir: Path, legacy: Any, refactored: Any,
                  replay_cmd: str) -> Record | None:
    """The mismatch record a shadow run over the case corpus gives for its last block
    (None when the twins agree there)."""
    shard, a = _call(fn, legacy, corpus_dir)
    _shard, b = _call(fn, refactored, corpus_dir)
    n = len(shard)
    last = n - 1
    if isinstance(a, Exception) or isinstance(b, Exception):
        if type(a) is type(b) and str(a) == str(b):
            return None
        return ShardFailure(fn.name, 0, n, shard.file, shard.row, "exception",
                            describe(a) if isinstance(a, Exception) else None,
                            describe(b) if isinstance(b, Exception) else None)
    if a.shape != b.shape or a.dtype != b.dtype:
        return ShardFailure(fn.name, 0, n, shard.file, shard.row, "shape",
                            detail=f"{a.dtype}{list(a.shape)} vs {b.dtype}{list(b.shape)}")
    if a[last].tobytes() == b[last].tobytes():
        return None
    height = int.from_bytes(bytes(shard.headers[last, C.OFF_HEIGHT:C.OFF_HEIGHT + 8]), "little")
    extra = fn.localize(shard, last, a[last], b[last], legacy, refactored)
    return fn.record(function=fn.name, block=last, height=height, file=shard.file,
                     row=shard.row + last, legacy=describe(a[last]),
                     refactored=describe(b[last]),
                     replay=f"{replay_cmd} --block {last} --functions {fn.name}", **extra)


def save_json(path: Path, data: dict) -> None:
    atomic_write_text(path, json.dumps({"written_by": WRITTEN_BY, **data}, indent=2) + "\n")


def coverage_corpora(directory: Path, cases: list[Case]) -> list[dict]:
    """One corpus per (now, target) under ``directory``; returns what each holds."""
    groups: dict[tuple[int, bytes], list[Case]] = {}
    for c in cases:
        groups.setdefault((c.now, c.difficulty_target), []).append(c)
    out = []
    ordered = sorted(groups.items(), key=lambda g: (-len(g[1]), g[0]))
    for i, ((now, target), members) in enumerate(ordered):
        blocks: list[Block] = []
        for c in members:
            if isinstance(c.parent, bytes):
                blocks.append(Block(c.parent, [], [], 0, []))
            blocks.append(c.block)
        name = f"{i:02d}-now{now}".replace("now-", "now_minus_")
        write_corpus(directory / name, blocks, now, target, None)
        out.append({"corpus": str(directory / name), "now": now,
                    "difficulty_target": target.hex(), "inputs": len(members),
                    "blocks": len(blocks)})
    return out
