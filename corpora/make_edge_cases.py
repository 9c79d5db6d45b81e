"""Writes corpora/edge-cases.jsonl: one deliberate edge case per block.

Run ``python corpora/make_edge_cases.py`` to rebuild it. Each block links to the
previous one and is mined below the (easy) difficulty target unless the case is
about that rule; ``expect`` lists the rules the case must break.
"""
from __future__ import annotations

import json
import struct
from pathlib import Path

from kernels import constants as C
from kernels.constants import Block
from kernels.legacy import (
    commitment,
    decode_header,
    encode_header,
    hash_header,
    merkle_root,
    problem_hash,
    solution_hash,
)
from parity.corpus.jsonl import block_to_json

NOW = 1_767_225_600
TARGET = bytes.fromhex("7f" + "ff" * 31)
ANCHOR = (41, bytes.fromhex("ab" * 32), NOW - 1_000)


def bits(b: int) -> float:
    return struct.unpack("<d", struct.pack("<Q", b))[0]


def make(parent, seq, *, txids=(), reveal=([3, 5, 7], 12, [1, 2]), replay=None, mine=True,
         **over):
    numbers, target, indices = reveal
    height, p_hash, p_ts = parent
    ph = problem_hash(numbers, target)
    fields = {"version": 1, "height": height + 1, "prev_hash": p_hash, "timestamp": p_ts + 1,
              "transactions_root": merkle_root(list(txids)), "solutions_root": bytes(32),
              "commitment_hash": b"", "commitment_problem_hash": ph, "work_score": 2.5,
              "miner": bytes([seq]) * 32, "nonce": 0, "solve_time_us": 500,
              "verify_time_us": 5, "time_asymmetry_ratio": 100.0, "solution_quality": 0.75,
              "complexity_weight": 1.0, "energy_estimate_joules": 0.5}
    fields.update(over)
    fields["commitment_hash"] = replay or commitment(ph, fields["prev_hash"], solution_hash(indices))
    while True:  # mine: below the target unless the case wants DIFFICULTY_NOT_MET
        header = encode_header(fields)
        if (hash_header(header) < TARGET) == mine:
            return Block(header, list(txids), list(numbers), target, list(indices))
        fields["nonce"] += 1


CASES = [
    ("honest block, no transactions (root = 32 zero bytes)", {}, []),
    ("one transaction", {"txids": [b"\x01" * 32]}, []),
    ("three transactions: the odd node is re-hashed", {"txids": [bytes([i]) * 32 for i in range(3)]}, []),
    ("work_score -0.0 is not negative", {"work_score": -0.0}, []),
    ("energy estimate is a subnormal", {"energy_estimate_joules": 5e-324}, []),
    ("solution_quality exactly 1.0 and complexity 0.0", {"solution_quality": 1.0, "complexity_weight": 0.0}, []),
    ("work_score NaN with a payload", {"work_score": bits(0x7FF80000DEADBEEF)}, ["WORK_SCORE_INVALID"]),
    ("time_asymmetry_ratio signalling NaN", {"time_asymmetry_ratio": bits(0x7FF0000000000001)}, ["TIME_ASYMMETRY_NONFINITE"]),
    ("solution_quality just above 1.0", {"solution_quality": bits(0x3FF0000000000001)}, ["SOLUTION_QUALITY_INVALID"]),
    ("complexity_weight -inf", {"complexity_weight": -float("inf")}, ["COMPLEXITY_WEIGHT_INVALID"]),
    ("energy -5e-324 (negative subnormal)", {"energy_estimate_joules": -5e-324}, ["ENERGY_ESTIMATE_INVALID"]),
    ("version 3", {"version": 3}, ["VERSION_UNSUPPORTED"]),
    ("version 0xFFFFFFFF", {"version": 0xFFFFFFFF}, ["VERSION_UNSUPPORTED"]),
    ("timestamp exactly now + 120 is allowed", {"timestamp": NOW + 120}, []),
    ("timestamp now + 121 is in the future", {"timestamp": NOW + 121}, ["TIMESTAMP_FUTURE"]),
    ("timestamp before the parent", {"timestamp": NOW - 5}, ["TIMESTAMP_BEFORE_PARENT"]),
    ("sum overflows i64 before it comes back", {"reveal": ([C.I64_MAX, 1, -1], C.I64_MAX, [0, 1, 2])}, ["SOLUTION_INVALID"]),
    ("repeated index", {"reveal": ([4, 6], 8, [0, 0])}, ["SOLUTION_INVALID"]),
    ("index u64::MAX", {"reveal": ([4, 6], 4, [C.U64_MAX])}, ["SOLUTION_INVALID"]),
    ("empty subset reaches target 0", {"reveal": ([9, 8], 0, [])}, []),
    ("4097 numbers: over the limit, hashes still computed", {"reveal": ([1] * 4097, 1, [0])}, ["SOLUTION_INVALID"]),
    ("i64 extremes summed without overflow", {"reveal": ([C.I64_MIN, C.I64_MAX], -1, [0, 1])}, []),
    ("difficulty not met", {"mine": False}, ["DIFFICULTY_NOT_MET"]),
    ("wrong problem hash in the header", {"commitment_problem_hash": b"\x55" * 32}, ["PROBLEM_HASH_MISMATCH"]),
    ("replays the commitment of block 0", {"replay": "block0"}, ["COMMITMENT_MISMATCH", "COMMITMENT_REPLAY"]),
    ("wrong transactions root", {"txids": [b"\x02" * 32], "transactions_root": b"\x00" * 32}, ["TX_ROOT_MISMATCH"]),
    ("prev_hash does not link", {"prev_hash": b"\x99" * 32}, ["PREV_HASH_MISMATCH"]),
    ("height jumps by two", {"height_step": 2}, ["HEIGHT_NOT_SEQUENTIAL"]),
    ("height u64::MAX", {"height": C.U64_MAX}, ["HEIGHT_NOT_SEQUENTIAL"]),
    ("child of u64::MAX: no height is sequential", {"height": 0}, ["HEIGHT_NOT_SEQUENTIAL"]),
    ("negative timestamp", {"timestamp": -1}, ["TIMESTAMP_NEGATIVE", "TIMESTAMP_BEFORE_PARENT"]),
]


def main(out: Path) -> None:
    parent = ANCHOR
    lines = [{"corpus": {"now": NOW, "difficulty_target": TARGET.hex(),
                         "anchor": {"height": ANCHOR[0], "hash": ANCHOR[1].hex(), "timestamp": ANCHOR[2]}}}]
    first_commit = None
    for seq, (title, over, expect) in enumerate(CASES):
        over = dict(over)
        if over.pop("replay", None):
            over["replay"] = first_commit
        step = over.pop("height_step", 1)
        if step != 1:
            over["height"] = parent[0] + step
        block = make(parent, seq, **over)
        h = decode_header(block.header)
        if first_commit is None:
            first_commit = h["commitment_hash"]
        line = block_to_json(block)
        line["case"] = title
        line["expect"] = expect
        lines.append(line)
        parent = (h["height"], hash_header(block.header), h["timestamp"])
    out.write_text("".join(json.dumps(x) + "\n" for x in lines))


if __name__ == "__main__":
    main(Path(__file__).resolve().parent / "edge-cases.jsonl")
