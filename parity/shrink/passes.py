"""One shrinking pass per block input part (the ``parts`` a registry entry declares).

Each pass takes a case and ``fails`` (the twins still disagree on a candidate) and
returns a smaller case on which they still disagree. Canonical values are zero: an
all-zero header, zero ids, numbers and indices, target 0, no parent, no history.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from kernels import constants as C
from parity.shrink.case import Case
from parity.shrink.ddmin import ddmin

Fails = Callable[[Case], bool]
Pass = Callable[[Case, Fails], Case]
ZERO32 = bytes(32)


def header(case: Case, fails: Fails) -> Case:
    """The fewest SPEC section 1 fields differing from the all-zero header (ddmin over
    fields), then the fewest nonzero bytes within them (ddmin over byte positions)."""
    raw = case.block.header

    def keep_fields(names: list[str]) -> Case:
        out = bytearray(C.HEADER_SIZE)
        for name, off, size, _kind in C.HEADER_FIELDS:
            if name in names:
                out[off:off + size] = raw[off:off + size]
        return case.with_block(header=bytes(out))

    differing = [name for name, off, size, _k in C.HEADER_FIELDS if any(raw[off:off + size])]
    raw = keep_fields(ddmin(differing, lambda names: fails(keep_fields(names)))).block.header

    def keep_bytes(positions: list[int]) -> Case:
        out = bytearray(C.HEADER_SIZE)
        for i in positions:
            out[i] = raw[i]
        return case.with_block(header=bytes(out))

    nonzero = [i for i in range(C.HEADER_SIZE) if raw[i]]
    return keep_bytes(ddmin(nonzero, lambda pos: fails(keep_bytes(pos))))


def _canonical(items: list, zero: Any, build: Callable[[list], Case], fails: Fails) -> list:
    """Each remaining element replaced by ``zero`` where the disagreement survives."""
    items = list(items)
    for i, item in enumerate(items):
        if item != zero:
            trial = items[:i] + [zero] + items[i + 1:]
            if fails(build(trial)):
                items = trial
    return items


def _list_pass(name: str, zero: Any) -> Pass:
    def run(case: Case, fails: Fails) -> Case:
        def build(items: list) -> Case:
            return case.with_block(**{name: items})
        items = ddmin(list(getattr(case.block, name)), lambda sub: fails(build(sub)))
        return build(_canonical(items, zero, build, fails))
    run.__doc__ = f"ddmin over the block's {name}, then each one to {zero!r} if it can be."
    return run


def numbers_kept(case: Case, positions: list[int]) -> Case:
    """Only the numbers at ``positions``; indices selecting a dropped number go, later
    ones shift (out-of-range indices stay as they are)."""
    nums, idx = case.block.numbers, case.block.indices
    new = {p: i for i, p in enumerate(positions)}
    indices = [new[i] if i < len(nums) else i for i in idx if i >= len(nums) or i in new]
    return case.with_block(numbers=[nums[p] for p in positions], indices=indices)


def numbers_without(case: Case, i: int) -> Case:
    """Number ``i`` removed, as :func:`numbers` removes it."""
    return numbers_kept(case, [p for p in range(len(case.block.numbers)) if p != i])


def numbers(case: Case, fails: Fails) -> Case:
    """ddmin over the reveal's numbers; removing a number drops the indices that select
    it and shifts later ones (out-of-range indices stay as they are), so the selected
    subset is kept as far as it survives. Then each number to 0 where it can be."""
    positions = ddmin(list(range(len(case.block.numbers))),
                      lambda pos: fails(numbers_kept(case, pos)))
    case = numbers_kept(case, positions)

    def with_numbers(values: list) -> Case:
        return case.with_block(numbers=values)
    return with_numbers(_canonical(list(case.block.numbers), 0, with_numbers, fails))


def target(case: Case, fails: Fails) -> Case:
    """The target to 0 if the disagreement survives."""
    trial = case.with_block(target=0)
    return trial if case.block.target != 0 and fails(trial) else case


def parent(case: Case, fails: Fails) -> Case:
    """The parent dropped if not needed."""
    trial = replace(case, parent=None)
    return trial if case.parent is not None and fails(trial) else case


def replay(case: Case, fails: Fails) -> Case:
    """The replay history reduced (ddmin) to the commitments that matter, each then set
    to zero where it can be."""
    def build(items: list) -> Case:
        return replace(case, replay=tuple(items))
    items = ddmin(list(case.replay), lambda sub: fails(build(sub)))
    return build(_canonical(items, ZERO32, build, fails))


PASSES: dict[str, Pass] = {
    "header": header, "txids": _list_pass("txids", ZERO32), "numbers": numbers,
    "target": target, "indices": _list_pass("indices", 0), "parent": parent,
    "replay": replay,
}


def strip(case: Case, parts: tuple[str, ...]) -> Case:
    """Parts the function does not read, set to their canonical values."""
    blank: dict[str, Any] = {"header": bytes(C.HEADER_SIZE), "txids": [], "numbers": [],
                             "target": 0, "indices": []}
    block = case.block._replace(**{k: v for k, v in blank.items() if k not in parts})
    return replace(case, block=block, parent=case.parent if "parent" in parts else None,
                   replay=case.replay if "replay" in parts else ())
