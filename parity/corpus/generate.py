"""Deterministic chain generator with fault injection (``parity corpus generate``).

Blocks are drawn a shard at a time from ``numpy.random.default_rng((seed, shard))``;
only linking and mining run block by block. A chosen fraction of blocks breaks one
chosen rule of SPEC section 4; ``ground-truth.parquet`` beside the corpus holds the
expected status of every block. Encoding and hashing come from :mod:`._chain` (the
``blake3`` package and numpy), never from either twin under test.
"""
from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from kernels import constants as C
from parity.corpus._chain import (
    MAX_TRIES,
    encode_headers,
    link_and_mine,
    merkle_roots,
    reveal_hashes,
)
from parity.corpus.shard import Shard
from parity.corpus.writer import CORPUS_OWNED, CorpusWriter, check_rows_per_file
from parity.errors import ParityError
from parity.outputs import OutputDir, fsync_path, staging_dir

TRUTH = "ground-truth.parquet"
DEFAULT_NOW = 1_767_225_600
DEFAULT_TARGET = bytes.fromhex("0f" + "ff" * 31)
TIER_SIZES = {"mobile": (4, 12), "desktop": (13, 16), "workstation": (17, 20),
              "server": (21, 24), "cluster": (25, 48)}
REPLAY_POOL = 4096
_NAN_PAYLOAD = struct.unpack("<d", struct.pack("<Q", 0x7FF4_0000_DEAD_BEEF))[0]
_BAD_FLOATS = (float("nan"), _NAN_PAYLOAD, float("inf"), -float("inf"), -1.5, -5e-324)
_BAD_QUALITY = (float("nan"), float("inf"), -0.25, 1.0000000000000002, 2.0)
_LEGAL_EDGES = (-0.0, 0.0, 5e-324, 2.2250738585072014e-308)


@dataclass
class GenerateOptions:
    blocks: int
    seed: int = 0
    fault_rate: float = 0.0
    rules: Sequence[str] = C.RULE_NAMES
    tiers: Sequence[str] = ("mobile", "desktop", "workstation", "server")
    now: int = DEFAULT_NOW
    difficulty_target: bytes = DEFAULT_TARGET
    anchor: bool = True
    shard_size: int = 10_000
    rows_per_file: int = 100_000
    mean_transactions: float = 8.0

    def check(self) -> None:
        if self.blocks < 0:
            raise ParityError("--blocks must be at least 0")
        if not 0.0 <= self.fault_rate <= 1.0:
            raise ParityError(f"--fault-rate must be within [0, 1], got {self.fault_rate}")
        for r in self.rules:
            if r not in C.RULE_BIT:
                raise ParityError(f"unknown rule {r!r}; rules are {', '.join(C.RULE_NAMES)}")
        for t in self.tiers:
            if t not in TIER_SIZES:
                raise ParityError(f"unknown tier {t!r}; tiers are {', '.join(TIER_SIZES)}")
        if not self.tiers:
            raise ParityError("--tiers needs at least one tier")
        if self.shard_size < 1:
            raise ParityError("--shard-size must be at least 1")
        if len(self.difficulty_target) != 32:
            raise ParityError("--difficulty must be 64 hex digits")


class _Chain:
    """What carries from one shard to the next."""

    def __init__(self, opts: GenerateOptions, rng: np.random.Generator) -> None:
        self.has_parent = opts.anchor
        span = max(1, opts.blocks) * 16 + 3_600
        self.height = int(rng.integers(0, 1_000_000)) if opts.anchor else -1
        self.hash = rng.bytes(32) if opts.anchor else bytes(32)
        self.clock = opts.now - span
        self.ts = self.clock
        self.anchor = (self.height, self.hash, self.ts) if opts.anchor else None
        self.history: list[bytes] = []  # the last REPLAY_POOL commitments
        self.first = True


def _csr_counts(counts: np.ndarray) -> np.ndarray:
    offsets = np.zeros(counts.shape[0] + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return offsets


def _draw_faults(opts: GenerateOptions, rng: np.random.Generator, n: int) -> np.ndarray:
    rule = np.full(n, -1, dtype=np.int64)
    if opts.fault_rate > 0 and opts.rules:
        bits = np.array([C.RULE_BIT[r] for r in opts.rules], dtype=np.int64)
        hit = rng.random(n) < opts.fault_rate
        rule[hit] = bits[rng.integers(0, bits.shape[0], int(hit.sum()))]
    return rule


def _shard(opts: GenerateOptions, chain: _Chain, index: int, n: int
           ) -> tuple[Shard, np.ndarray]:
    rng = np.random.default_rng((opts.seed, index))
    rule = _draw_faults(opts, rng, n)
    if chain.first:  # chain rules need a parent, replays an earlier block
        no_parent = {C.RULE_BIT["HEIGHT_NOT_SEQUENTIAL"], C.RULE_BIT["PREV_HASH_MISMATCH"],
                     C.RULE_BIT["TIMESTAMP_BEFORE_PARENT"]} if not chain.has_parent else set()
        if n and (rule[0] in no_parent or rule[0] == C.RULE_BIT["COMMITMENT_REPLAY"]):
            rule[0] = -1
    is_rule = {name: rule == bit for name, bit in C.RULE_BIT.items()}

    # transactions
    tx = rng.poisson(opts.mean_transactions, n).astype(np.int64)
    tx[rng.random(n) < 0.05] = 0
    tx[rng.random(n) < 0.05] = 1
    tx[is_rule["TOO_MANY_TRANSACTIONS"]] = C.MAX_TRANSACTIONS + 1
    id_off = _csr_counts(tx)
    ids = rng.integers(0, 256, (int(id_off[-1]), 32), dtype=np.uint8)
    roots = merkle_roots(ids, id_off)
    flip = is_rule["TX_ROOT_MISMATCH"]
    roots[flip, rng.integers(0, 32)] ^= np.uint8(0x80)

    # reveals: a random non-empty subset of small numbers; the target is its sum
    tiers = [TIER_SIZES[t] for t in opts.tiers]
    pick = rng.integers(0, len(tiers), n)
    lo = np.array([t[0] for t in tiers])[pick]
    hi = np.array([t[1] for t in tiers])[pick]
    k = rng.integers(lo, hi + 1)
    num_off = _csr_counts(k)
    numbers = rng.integers(1, 1000, int(num_off[-1]), dtype=np.int64)
    owner = np.repeat(np.arange(n), k)
    local = np.arange(numbers.shape[0]) - num_off[owner]
    chosen = np.asarray(rng.random(numbers.shape[0]) < 0.5)
    chosen[num_off[:-1][k > 0]] |= True
    indices = local[chosen].astype(np.uint64)
    idx_off = _csr_counts(np.bincount(owner[chosen], minlength=n))
    targets = np.zeros(n, dtype=np.int64)
    np.add.at(targets, owner[chosen], numbers[chosen])
    targets[is_rule["SOLUTION_INVALID"]] += 1
    problem, solution = reveal_hashes(numbers, num_off, targets, indices, idx_off)

    # header fields
    versions = rng.integers(1, 3, n).astype(np.uint32)
    versions[is_rule["VERSION_UNSUPPORTED"]] = rng.choice(
        np.array([0, 3, 7, 0xFFFFFFFF], dtype=np.uint32), int(is_rule["VERSION_UNSUPPORTED"].sum()))
    step = np.where(is_rule["HEIGHT_NOT_SEQUENTIAL"], rng.integers(2, 5, n), 1)
    heights = chain.height + np.cumsum(step)
    clock = chain.clock + np.cumsum(rng.integers(1, 16, n))
    ts = clock.copy()
    ts[is_rule["TIMESTAMP_NEGATIVE"]] = -rng.integers(1, 10**6, int(is_rule["TIMESTAMP_NEGATIVE"].sum()))
    ts[is_rule["TIMESTAMP_FUTURE"]] = opts.now + C.FUTURE_DRIFT_SECONDS + rng.integers(
        1, 10**4, int(is_rule["TIMESTAMP_FUTURE"].sum()))
    prev_ts = np.concatenate([[chain.ts], ts[:-1]])
    before = is_rule["TIMESTAMP_BEFORE_PARENT"]
    ts[before] = prev_ts[before] - rng.integers(1, 100, int(before.sum()))
    prev_ts = np.concatenate([[chain.ts], ts[:-1]])  # what each block's parent really holds

    def floats(low: float, high: float, bad_rule: str, bad: Sequence[float]) -> np.ndarray:
        values = rng.uniform(low, high, n)
        edge = rng.random(n) < 0.02
        values[edge] = rng.choice(np.array([e for e in _LEGAL_EDGES if e <= high]), int(edge.sum()))
        mask = is_rule[bad_rule]
        values[mask] = rng.choice(np.array(bad), int(mask.sum()))
        return values

    fields: dict[str, np.ndarray] = {
        "version": versions, "height": heights.astype(np.uint64),
        "prev_hash": rng.integers(0, 256, (n, 32), dtype=np.uint8), "timestamp": ts,
        "transactions_root": roots, "solutions_root": rng.integers(0, 256, (n, 32), np.uint8),
        "commitment_hash": np.zeros((n, 32), np.uint8), "commitment_problem_hash": problem.copy(),
        "work_score": floats(0, 1000, "WORK_SCORE_INVALID", _BAD_FLOATS),
        "miner": rng.integers(0, 256, (n, 32), dtype=np.uint8),
        "nonce": np.zeros(n, np.uint64),
        "solve_time_us": rng.integers(1000, 10**7, n).astype(np.uint64),
        "verify_time_us": rng.integers(1, 1000, n).astype(np.uint64),
        "time_asymmetry_ratio": floats(1, 1e4, "TIME_ASYMMETRY_NONFINITE", _BAD_FLOATS[:4]),
        "solution_quality": floats(0, 1, "SOLUTION_QUALITY_INVALID", _BAD_QUALITY),
        "complexity_weight": floats(0, 100, "COMPLEXITY_WEIGHT_INVALID", _BAD_FLOATS),
        "energy_estimate_joules": floats(0, 500, "ENERGY_ESTIMATE_INVALID", _BAD_FLOATS),
    }
    ph_bad = is_rule["PROBLEM_HASH_MISMATCH"]
    fields["commitment_problem_hash"][ph_bad] = rng.integers(0, 256, (int(ph_bad.sum()), 32),
                                                             dtype=np.uint8)
    headers = encode_headers(fields)

    commit_mode = np.zeros(n, dtype=np.int8)
    commit_mode[is_rule["COMMITMENT_MISMATCH"]] = 1
    commit_mode[is_rule["COMMITMENT_REPLAY"]] = 2
    history = list(chain.history)
    headers, hashes, failed = link_and_mine(
        headers, problem, solution, is_rule["PREV_HASH_MISMATCH"], commit_mode,
        rng.integers(0, 256, n), rng.random(n), is_rule["DIFFICULTY_NOT_MET"],
        rng.integers(0, 2**62, n).astype(np.uint64), opts.difficulty_target, chain.hash,
        history)
    if failed >= 0:
        want = "above" if is_rule["DIFFICULTY_NOT_MET"][failed] else "below"
        raise ParityError(f"block {failed} of shard {index}: no nonce in {MAX_TRIES} tries "
                          f"hashes {want} difficulty target {opts.difficulty_target.hex()}")

    # ground truth: injected faults by construction, chain relations from the written values
    status = np.zeros(n, dtype=np.uint32)
    for name in ("VERSION_UNSUPPORTED", "WORK_SCORE_INVALID", "TIME_ASYMMETRY_NONFINITE",
                 "SOLUTION_QUALITY_INVALID", "COMPLEXITY_WEIGHT_INVALID",
                 "ENERGY_ESTIMATE_INVALID", "TOO_MANY_TRANSACTIONS", "TX_ROOT_MISMATCH",
                 "PREV_HASH_MISMATCH", "DIFFICULTY_NOT_MET", "PROBLEM_HASH_MISMATCH",
                 "COMMITMENT_MISMATCH", "SOLUTION_INVALID"):
        status[is_rule[name]] |= np.uint32(1 << C.RULE_BIT[name])
    replay = is_rule["COMMITMENT_REPLAY"]
    status[replay] |= np.uint32(C.COMMITMENT_REPLAY | C.COMMITMENT_MISMATCH)
    status[ts < 0] |= np.uint32(C.TIMESTAMP_NEGATIVE)
    status[ts > opts.now + C.FUTURE_DRIFT_SECONDS] |= np.uint32(C.TIMESTAMP_FUTURE)
    linked = np.ones(n, dtype=bool)
    if chain.first and not chain.has_parent and n:
        linked[0] = False
    prev_height = np.concatenate([[chain.height], heights[:-1]])
    status[linked & (heights != prev_height + 1)] |= np.uint32(C.HEIGHT_NOT_SEQUENTIAL)
    status[linked & (ts < prev_ts)] |= np.uint32(C.TIMESTAMP_BEFORE_PARENT)

    if n:
        chain.height = int(heights[-1])
        chain.hash = hashes[-1].tobytes()
        chain.ts = int(ts[-1])
        chain.clock = int(clock[-1])
        chain.history = history[-REPLAY_POOL:]
        chain.first = False
    shard = Shard(headers, ids, id_off, numbers, num_off, targets, indices, idx_off)
    return shard, status


def generate(out: str | Path, opts: GenerateOptions, force: bool = False,
             progress: Callable[[int], None] | None = None) -> Path:
    """Write a corpus of ``opts.blocks`` blocks and its ground truth to ``out``.

    ``out`` is checked before any work (see :class:`parity.outputs.OutputDir`); the corpus
    is built in a staging directory beside it and moved into place only when complete."""
    opts.check()
    check_rows_per_file(opts.rows_per_file, opts.blocks)
    target = OutputDir(out, "corpus", CORPUS_OWNED, "OUT")
    target.check(force)
    with staging_dir(out) as tmp:
        _write(tmp, opts, progress)
        target.adopt(tmp, force)
    return Path(out)


def _write(directory: Path, opts: GenerateOptions, progress: Callable[[int], None] | None
           ) -> None:
    rng = np.random.default_rng((opts.seed, 2**32))
    chain = _Chain(opts, rng)
    writer = CorpusWriter(directory, now=opts.now, difficulty_target=opts.difficulty_target,
                          anchor=chain.anchor, rows_per_file=opts.rows_per_file)
    truth_schema = pa.schema([("block", pa.int64()), ("status", pa.uint32())])
    with pq.ParquetWriter(directory / TRUTH, truth_schema) as truth:
        done = 0
        index = 0
        while done < opts.blocks:
            n = min(opts.shard_size, opts.blocks - done)
            shard, status = _shard(opts, chain, index, n)
            writer.append(shard)
            truth.write_table(pa.table({"block": np.arange(done, done + n, dtype=np.int64),
                                        "status": status}, schema=truth_schema))
            done += n
            index += 1
            if progress:
                progress(n)
    fsync_path(directory / TRUTH)
    writer.close()


def read_truth(corpus: str | Path) -> np.ndarray:
    """The generator's expected status of every block (``uint32[blocks]``)."""
    path = Path(corpus) / TRUTH
    if not path.is_file():
        raise ParityError(f"{path}: no ground truth beside this corpus")
    return pq.read_table(path).column("status").to_numpy().astype(np.uint32)
