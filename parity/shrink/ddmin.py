"""Delta debugging: Zeller and Hildebrandt's ``ddmin`` over a list.

``ddmin(items, fails)`` returns a sublist (order kept) on which ``fails`` still holds and
from which removing any single element makes it not hold (1-minimal). ``fails`` is called
on candidate sublists only, never on the input itself (the caller has checked it fails).
Candidates already decided are not asked again.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def _chunks(n: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` contiguous, nearly equal (lo, hi) ranges covering ``range(n)``."""
    return [(n * i // parts, n * (i + 1) // parts) for i in range(parts)]


def ddmin(items: Sequence[T], fails: Callable[[list[T]], bool]) -> list[T]:
    """A 1-minimal sublist of ``items`` on which ``fails`` holds (``items`` must fail)."""
    seen: dict[tuple[int, ...], bool] = {}
    keep = list(range(len(items)))

    def test(positions: list[int]) -> bool:
        key = tuple(positions)
        if key not in seen:
            seen[key] = fails([items[i] for i in positions])
        return seen[key]

    if keep and test([]):
        return []
    n = 2
    while len(keep) >= 2:
        n = min(n, len(keep))
        ranges = _chunks(len(keep), n)
        for lo, hi in ranges:  # reduce to a subset
            if hi - lo < len(keep) and test(keep[lo:hi]):
                keep, n = keep[lo:hi], 2
                break
        else:
            for lo, hi in ranges if n > 2 else ():  # reduce to a complement
                rest = keep[:lo] + keep[hi:]
                if test(rest):
                    keep, n = rest, max(n - 1, 2)
                    break
            else:
                if n >= len(keep):
                    break
                n = min(len(keep), 2 * n)
    return [items[i] for i in keep]
