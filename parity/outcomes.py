"""Outcomes of one call (a value or an exception) and private copies of arguments.

SPEC section 5: an outcome is a value or an exception (anything but
``KeyboardInterrupt``); two outcomes match when values have the same type and bits, or
exceptions the same type and message. Each side gets its own copy of every mutable
argument; :func:`mutated` tells whether a call changed its copy.
"""
from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from parity.compare import Comparator, values_equal


class Outcome:
    """What one call gave: a value or an exception (and, when timed, its seconds)."""

    __slots__ = ("value", "error", "seconds")

    def __init__(self, value: Any = None, error: BaseException | None = None,
                 seconds: float = 0.0) -> None:
        self.value = value
        self.error = error
        self.seconds = seconds

    def unwrap(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


def run(func: Callable, args: tuple, kwargs: dict, timed: bool = True) -> Outcome:
    """Call ``func``; any exception but KeyboardInterrupt becomes the outcome."""
    t0 = time.perf_counter_ns() if timed else 0
    try:
        out = Outcome(func(*args, **kwargs))
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # SystemExit and GeneratorExit are outcomes too
        out = Outcome(error=exc)
    if timed:
        out.seconds = (time.perf_counter_ns() - t0) / 1e9
    return out


def same_outcome(a: Outcome, b: Outcome, comparator: Comparator) -> bool:
    """SPEC section 5: exceptions by type and message, values by the comparator."""
    if a.error is not None or b.error is not None:
        return (a.error is not None and b.error is not None
                and type(a.error) is type(b.error) and str(a.error) == str(b.error))
    return bool(comparator(a.value, b.value))


_MUTABLE = (np.ndarray, bytearray, list, dict, set)
_COPIED = (*_MUTABLE, tuple)


def _private(value: Any) -> Any:
    """A copy of a mutable argument (immutable ones are shared as they are)."""
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, bytearray):
        return bytearray(value)
    if isinstance(value, (list, dict, set, tuple)):
        return copy.deepcopy(value)
    return value


def has_mutable(args: tuple, kwargs: dict) -> bool:
    for a in args:
        if isinstance(a, _COPIED):
            return True
    return bool(kwargs) and any(isinstance(v, _COPIED) for v in kwargs.values())


@dataclass
class Call:
    args: tuple
    kwargs: dict


def copies(args: tuple, kwargs: dict, mutable: bool) -> Call:
    if not mutable:
        return Call(args, kwargs)
    return Call(tuple(_private(a) for a in args), {k: _private(v) for k, v in kwargs.items()})


def mutated(original: Call, used: Call) -> str | None:
    """The first argument a call changed, or None."""
    for i, (a, b) in enumerate(zip(original.args, used.args)):
        if b is not a and not values_equal(a, b):
            return f"argument {i}"
    for k, v in original.kwargs.items():
        if used.kwargs[k] is not v and not values_equal(v, used.kwargs[k]):
            return f"argument {k!r}"
    return None
