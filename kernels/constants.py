"""Formats, rule bits and limits of SPEC.md v1, imported by both twins (as are the
twin-neutral :mod:`kernels.config` and :mod:`kernels.checks`)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

HASH_SIZE = 32
HEADER_SIZE = 276

# (name, offset, size, kind) in bincode order; kind is one of u32/u64/i64/f64/b32.
HEADER_FIELDS: tuple[tuple[str, int, int, str], ...] = (
    ("version", 0, 4, "u32"),
    ("height", 4, 8, "u64"),
    ("prev_hash", 12, 32, "b32"),
    ("timestamp", 44, 8, "i64"),
    ("transactions_root", 52, 32, "b32"),
    ("solutions_root", 84, 32, "b32"),
    ("commitment_hash", 116, 32, "b32"),
    ("commitment_problem_hash", 148, 32, "b32"),
    ("work_score", 180, 8, "f64"),
    ("miner", 188, 32, "b32"),
    ("nonce", 220, 8, "u64"),
    ("solve_time_us", 228, 8, "u64"),
    ("verify_time_us", 236, 8, "u64"),
    ("time_asymmetry_ratio", 244, 8, "f64"),
    ("solution_quality", 252, 8, "f64"),
    ("complexity_weight", 260, 8, "f64"),
    ("energy_estimate_joules", 268, 8, "f64"),
)
FIELD_NAMES = tuple(f[0] for f in HEADER_FIELDS)
FIELD_OFFSET = {f[0]: f[1] for f in HEADER_FIELDS}
FIELD_KIND = {f[0]: f[3] for f in HEADER_FIELDS}

OFF_VERSION = 0
OFF_HEIGHT = 4
OFF_PREV_HASH = 12
OFF_TIMESTAMP = 44
OFF_TX_ROOT = 52
OFF_SOLUTIONS_ROOT = 84
OFF_COMMITMENT_HASH = 116
OFF_PROBLEM_HASH = 148
OFF_WORK_SCORE = 180
OFF_MINER = 188
OFF_NONCE = 220
OFF_TIME_ASYMMETRY = 244
OFF_SOLUTION_QUALITY = 252
OFF_COMPLEXITY_WEIGHT = 260
OFF_ENERGY_ESTIMATE = 268

# Rule bits of SPEC section 4; RULE_NAMES[bit] is the name of bit ``bit``.
RULE_NAMES: tuple[str, ...] = (
    "VERSION_UNSUPPORTED",
    "TIMESTAMP_NEGATIVE",
    "TIMESTAMP_FUTURE",
    "WORK_SCORE_INVALID",
    "TIME_ASYMMETRY_NONFINITE",
    "SOLUTION_QUALITY_INVALID",
    "COMPLEXITY_WEIGHT_INVALID",
    "ENERGY_ESTIMATE_INVALID",
    "TOO_MANY_TRANSACTIONS",
    "TX_ROOT_MISMATCH",
    "HEIGHT_NOT_SEQUENTIAL",
    "PREV_HASH_MISMATCH",
    "TIMESTAMP_BEFORE_PARENT",
    "DIFFICULTY_NOT_MET",
    "PROBLEM_HASH_MISMATCH",
    "COMMITMENT_MISMATCH",
    "SOLUTION_INVALID",
    "COMMITMENT_REPLAY",
)
RULE_BIT = {name: bit for bit, name in enumerate(RULE_NAMES)}

VERSION_UNSUPPORTED = 1 << 0
TIMESTAMP_NEGATIVE = 1 << 1
TIMESTAMP_FUTURE = 1 << 2
WORK_SCORE_INVALID = 1 << 3
TIME_ASYMMETRY_NONFINITE = 1 << 4
SOLUTION_QUALITY_INVALID = 1 << 5
COMPLEXITY_WEIGHT_INVALID = 1 << 6
ENERGY_ESTIMATE_INVALID = 1 << 7
TOO_MANY_TRANSACTIONS = 1 << 8
TX_ROOT_MISMATCH = 1 << 9
HEIGHT_NOT_SEQUENTIAL = 1 << 10
PREV_HASH_MISMATCH = 1 << 11
TIMESTAMP_BEFORE_PARENT = 1 << 12
DIFFICULTY_NOT_MET = 1 << 13
PROBLEM_HASH_MISMATCH = 1 << 14
COMMITMENT_MISMATCH = 1 << 15
SOLUTION_INVALID = 1 << 16
COMMITMENT_REPLAY = 1 << 17
ALL_RULES = (1 << len(RULE_NAMES)) - 1

SUPPORTED_VERSIONS = (1, 2)
FUTURE_DRIFT_SECONDS = 120
MAX_TRANSACTIONS = 10_000
MAX_REVEAL_ITEMS = 4096
MIN_NUMBERS = 1
SUBSET_SUM_VARIANT = 0

U64_MAX = (1 << 64) - 1
I64_MIN = -(1 << 63)
I64_MAX = (1 << 63) - 1

# Tier labels (metrics only, not a rule): (largest len(numbers), name).
TIER_LIMITS: tuple[tuple[int, str], ...] = (
    (12, "mobile"), (16, "desktop"), (20, "workstation"), (24, "server"))
TIER_NAMES: tuple[str, ...] = ("mobile", "desktop", "workstation", "server", "cluster")


def tier_of(n_numbers: int) -> str:
    """The SPEC section 3 tier label for a reveal with ``n_numbers`` numbers."""
    for limit, name in TIER_LIMITS:
        if n_numbers <= limit:
            return name
    return "cluster"


_TIER_BOUNDS = np.array([limit for limit, _name in TIER_LIMITS], dtype=np.int64)


def tier_indices(counts: object) -> np.ndarray:
    """Vectorized :func:`tier_of`: ``int64`` indices into :data:`TIER_NAMES` of reveals with
    ``counts`` numbers each (any integer array-like, e.g. ``np.diff(num_offsets)``)."""
    # the first limit >= count; counts above every limit get len(TIER_LIMITS) = cluster
    return np.searchsorted(_TIER_BOUNDS, np.asarray(counts), side="left").astype(np.int64)


def rule_names(mask: int) -> list[str]:
    """Names of the rule bits set in ``mask``, lowest bit first."""
    return [name for bit, name in enumerate(RULE_NAMES) if mask >> bit & 1]


class Block(NamedTuple):
    """One block as the rules see it (the corpus row of SPEC section 6)."""

    header: bytes
    txids: Sequence[bytes]
    numbers: Sequence[int]
    target: int
    indices: Sequence[int]


#: the parent a block is checked against: (height, header hash, timestamp)
Parent = tuple[int, bytes, int]
