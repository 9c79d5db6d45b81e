"""Per-call experiments for live processes: both implementations behind one callable.

    import parity
    header_hash = parity.experiment("header_hash", legacy=legacy.hash_header,
                                    refactored=jit.hash_header)
    h = header_hash(raw)   # always the value (or exception) the codec mode serves

What runs, what is compared and what is served come from :mod:`parity.policy`
(SPEC section 5). Outcomes are values or exceptions (anything but
``KeyboardInterrupt``, which reaches the caller at once); in modes 1 and 2 each side
gets its own copy of every mutable argument, and a refactored call that mutated its
argument is a mismatch. Nothing that goes wrong inside the harness or the state
store reaches the caller.
"""
from __future__ import annotations

import atexit
import copy
import logging
import random
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from prometheus_client import ProcessCollector

from parity import policy
from parity.compare import Comparator, describe, values_equal
from parity.errors import StateError
from parity.metrics import Metrics
from parity.modes import Mode
from parity.state import ModeState, default_state_path

log = logging.getLogger("parity")


@dataclass
class Outcome:
    value: Any = None
    error: BaseException | None = None
    seconds: float = 0.0

    def unwrap(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


def _run(func: Callable, args: tuple, kwargs: dict) -> Outcome:
    t0 = time.perf_counter_ns()
    try:
        value = func(*args, **kwargs)
        return Outcome(value=value, seconds=(time.perf_counter_ns() - t0) / 1e9)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # SystemExit and GeneratorExit are outcomes too
        return Outcome(error=exc, seconds=(time.perf_counter_ns() - t0) / 1e9)


def same_outcome(a: Outcome, b: Outcome, comparator: Comparator) -> bool:
    """SPEC section 5: exceptions by type and message, values by the comparator."""
    if a.error is not None or b.error is not None:
        return (a.error is not None and b.error is not None
                and type(a.error) is type(b.error) and str(a.error) == str(b.error))
    return bool(comparator(a.value, b.value))


_MUTABLE = (np.ndarray, bytearray, list, dict, set)


def _private(value: Any) -> Any:
    """A copy of a mutable argument (immutable ones are shared as they are)."""
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, bytearray):
        return bytearray(value)
    if isinstance(value, (list, dict, set, tuple)):
        return copy.deepcopy(value)
    return value


def _has_mutable(args: tuple, kwargs: dict) -> bool:
    return any(isinstance(a, (*_MUTABLE, tuple)) for a in args) or \
        any(isinstance(v, (*_MUTABLE, tuple)) for v in kwargs.values())


@dataclass
class _Call:
    args: tuple
    kwargs: dict


def _copies(args: tuple, kwargs: dict, mutable: bool) -> _Call:
    if not mutable:
        return _Call(args, kwargs)
    return _Call(tuple(_private(a) for a in args), {k: _private(v) for k, v in kwargs.items()})


def _mutated(original: _Call, used: _Call) -> str | None:
    """The first argument a call changed, or None."""
    for i, (a, b) in enumerate(zip(original.args, used.args)):
        if b is not a and not values_equal(a, b):
            return f"argument {i}"
    for k, v in original.kwargs.items():
        if used.kwargs[k] is not v and not values_equal(v, used.kwargs[k]):
            return f"argument {k!r}"
    return None


class Controller:
    """Mode state, metrics and mismatch bookkeeping shared by a process's experiments."""

    def __init__(self, state: ModeState | None = None, metrics: Metrics | None = None,
                 sample: float = 1.0, seed: int | None = None, keep: int = 1000,
                 flush_every: float = 1.0) -> None:
        self.state = state or _open_default_state()
        self.metrics = metrics or Metrics()  # the batch functions exist at 0 from the start
        if "process_resident_memory_bytes" not in self.metrics.registry._names_to_collectors:
            ProcessCollector(registry=self.metrics.registry)  # process_* of a serving process
        self.metrics.set_mode(self.state.mode)
        self.state.listeners.append(lambda change: self.metrics.set_mode(self.state.mode))
        self.sample = sample
        self.rng = random.Random(seed)
        self.mismatches: deque[dict] = deque(maxlen=keep)
        self.harness_errors = 0
        self.flush_every = flush_every
        self._flushed = time.monotonic()
        self._lock = threading.Lock()
        _LIVE.add(self)  # flushed at exit: a short script's comparisons still count

    @property
    def mode(self) -> Mode:
        """The mode served now; never raises (a broken store serves legacy)."""
        try:
            self.state.refresh()
        except Exception:
            self.harness_errors += 1
            log.exception("parity: cannot refresh the mode state")
        return self.state.mode

    def flush(self) -> None:
        """Make the counted comparisons durable now (the promotion window)."""
        try:
            self.state.flush()
        except Exception as exc:
            self.harness_errors += 1
            log.warning("parity: comparisons not recorded: %s", exc)

    def demote(self, reason: str) -> None:
        try:
            self.state.demote_primary(reason)
        except StateError as exc:  # the state now serves legacy by itself
            self.harness_errors += 1
            log.error("parity: %s", exc)

    def record(self, name: str, legacy: Outcome | None, refactored: Outcome | None,
               compared: bool, matched: bool, args: tuple, why: str | None = None,
               served: tuple[Mode, str] | None = None) -> None:
        """Count one call: durations, comparison, mismatch record, which side served."""
        if served is not None:
            self.metrics.served(*served)
        self.metrics.observe(name, legacy.seconds if legacy else None,
                             refactored.seconds if refactored else None, int(compared),
                             int(compared and not matched))
        if compared:
            self.state.record(1, int(not matched))
            if not matched and legacy is not None and refactored is not None:
                self.mismatches.append({
                    "function": name, "time": time.time(),
                    "legacy": describe(legacy.error if legacy.error else legacy.value),
                    "refactored": describe(refactored.error if refactored.error
                                           else refactored.value),
                    "args": [describe(a) for a in args][:4], **({"why": why} if why else {})})
        now = time.monotonic()
        if now - self._flushed > self.flush_every:
            self._flushed = now
            self.flush()


_LIVE: weakref.WeakSet[Controller] = weakref.WeakSet()


@atexit.register
def _flush_at_exit() -> None:
    for controller in list(_LIVE):
        controller.flush()


def _open_default_state() -> ModeState:
    try:
        return ModeState(default_state_path())
    except Exception as exc:
        log.error("parity: %s; serving legacy from an in-memory state", exc)
        state = ModeState(None, initial=Mode.SHADOW)
        state.degraded = str(exc)
        return state


class Experiment:
    """A callable that obeys the codec mode; see the module docstring."""

    def __init__(self, name: str, legacy: Callable, refactored: Callable,
                 controller: Controller, comparator: Comparator = values_equal,
                 sample: float | None = None) -> None:
        self.name = name
        self.legacy = legacy
        self.refactored = refactored
        self.controller = controller
        self.comparator = comparator
        self.sample = sample
        controller.metrics.add_function(name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        c = self.controller
        mode = c.mode
        if mode in (Mode.LEGACY_ONLY, Mode.REFACTORED_ONLY):  # one side, the caller's args
            side = "legacy" if mode == Mode.LEGACY_ONLY else "refactored"
            out = _run(self.legacy if side == "legacy" else self.refactored, args, kwargs)
            self._safely(lambda: c.record(self.name, out if side == "legacy" else None,
                                          out if side == "refactored" else None, False, True,
                                          args, served=(mode, side)))
            return out.unwrap()
        sample = c.sample if self.sample is None else self.sample
        plan = policy.plan(mode, sampled=mode == Mode.SHADOW or c.rng.random() < sample)
        mutable = _has_mutable(args, kwargs)
        original = _Call(args, kwargs)
        rcall = _copies(args, kwargs, mutable)
        lcall = _copies(args, kwargs, mutable)
        legacy: Outcome | None = None
        if plan.compares and c.rng.random() < 0.5:  # random order: no systematic cache bias
            legacy = _run(self.legacy, lcall.args, lcall.kwargs)
        refactored = _run(self.refactored, rcall.args, rcall.kwargs)
        if plan.legacy and legacy is None:
            legacy = _run(self.legacy, lcall.args, lcall.kwargs)
        if policy.fallback(mode, refactored.error is not None, legacy is not None):
            legacy = _run(self.legacy, lcall.args, lcall.kwargs)
        compared = legacy is not None
        matched, why = True, None
        if compared:
            assert legacy is not None
            mutated = self._safely(lambda: _mutated(original, rcall), default=None) \
                if mutable else None
            if mutated:
                matched, why = False, f"refactored {self.name} mutated its {mutated}"
            else:
                matched = self._safely(lambda: same_outcome(legacy, refactored, self.comparator),
                                       default=False)
        decision = policy.decide(mode, compared, matched, refactored.error is not None)
        if decision.demote:
            reason = why or (f"refactored {self.name} raised {type(refactored.error).__name__}"
                             if refactored.error is not None and legacy is not None
                             and legacy.error is None else f"{self.name} mismatch")
            self._safely(lambda: c.demote(reason))
        served = legacy if decision.served == "legacy" else refactored
        assert served is not None
        self._safely(lambda: c.record(self.name, legacy, refactored, compared, matched, args,
                                      why, served=(mode, decision.served)))
        return served.unwrap()

    def _safely(self, fn: Callable, default: Any = None) -> Any:
        """Harness work: its failures are logged and counted, never raised to the caller."""
        try:
            return fn()
        except Exception:
            self.controller.harness_errors += 1
            log.exception("parity: harness error in experiment %s", self.name)
            return default


_default: Controller | None = None
_default_lock = threading.Lock()


def default_controller() -> Controller:
    global _default
    with _default_lock:
        if _default is None:
            _default = Controller()
        return _default


def experiment(name: str, *, legacy: Callable, refactored: Callable,
               controller: Controller | None = None, comparator: Comparator = values_equal,
               sample: float | None = None) -> Experiment:
    """Wrap two implementations of ``name``; see the module docstring."""
    return Experiment(name, legacy, refactored, controller or default_controller(), comparator,
                      sample)
