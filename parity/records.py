"""Typed mismatch records, one class per function family, and their one JSON form.

Every record names the function, the block (its position in the corpus), the file and
row it came from, and both values as :func:`parity.compare.describe` renders them.
A row record also names the height and a ``parity replay`` command; what localizes the
difference depends on the family:

- bytes (``header_hash``, ``commitment``): first differing byte and bit, differing bits;
- merkle (``merkle_root``): the same, plus the first diverging tree node (level, index);
- status (``validate``): the rule names that differ and which side set them.

A shard failure (``kind`` "exception" or "shape") covers the whole shard: the
refactored twin raised, or returned an output of the wrong type or shape.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar


@dataclass
class RowMismatch:
    """Two outputs for one block that differ."""

    family: ClassVar[str] = "row"
    function: str
    block: int
    height: int
    file: str
    row: int
    legacy: Any
    refactored: Any
    replay: str

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None or k in _KEEP_NONE}


@dataclass
class BytesMismatch(RowMismatch):
    family: ClassVar[str] = "bytes"
    first_byte: int | None = None
    first_bit: int | None = None
    differing_bits: int | None = None
    length: list[int] | None = None


@dataclass
class MerkleMismatch(BytesMismatch):
    family: ClassVar[str] = "merkle"
    divergence: dict | None = None


@dataclass
class StatusMismatch(BytesMismatch):
    family: ClassVar[str] = "status"
    differing_rules: list[str] | None = None
    legacy_only: list[str] | None = None
    refactored_only: list[str] | None = None


@dataclass
class ShardFailure:
    """A whole shard whose refactored output could not be compared row by row."""

    family: ClassVar[str] = "shard"
    function: str
    block: int
    blocks: int
    file: str
    row: int
    kind: str  # "exception" | "shape"
    legacy: Any = None
    refactored: Any = None
    detail: str | None = None

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None or k in _KEEP_NONE}


_KEEP_NONE = {"first_byte", "first_bit", "differing_bits", "divergence", "legacy", "refactored"}
Record = RowMismatch | ShardFailure
FAMILIES: dict[str, type] = {c.family: c for c in
                             (BytesMismatch, MerkleMismatch, StatusMismatch, ShardFailure)}


def from_json(data: dict) -> Record:
    """A record back from its JSON form (as written to ``mismatches.jsonl``)."""
    if "kind" in data:
        cls: type = ShardFailure
    elif "differing_rules" in data:
        cls = StatusMismatch
    elif "divergence" in data:
        cls = MerkleMismatch
    else:
        cls = BytesMismatch
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})
