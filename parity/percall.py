"""Per-call experiments for live processes: both implementations behind one callable.

    import parity
    header_hash = parity.experiment("header_hash", legacy=legacy.hash_header,
                                    refactored=jit.hash_header)
    h = header_hash(raw)   # always the value (or exception) the codec mode serves

Mode 1 runs both in random order and serves legacy; mode 2 serves refactored,
runs legacy on a sample, and falls back to legacy (and demotes to mode 1) on a
mismatch or a refactored exception. Exceptions are compared by type and
message. Nothing that goes wrong inside the harness reaches the caller.
"""
from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from parity.compare import Comparator, describe, values_equal
from parity.metrics import Metrics
from parity.modes import Mode, ModeState

log = logging.getLogger("parity")
DEFAULT_STATE_FILE = ".parity/mode.json"


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
    except Exception as exc:
        return Outcome(error=exc, seconds=(time.perf_counter_ns() - t0) / 1e9)


def same_outcome(a: Outcome, b: Outcome, comparator: Comparator) -> bool:
    if a.error is not None or b.error is not None:
        return (a.error is not None and b.error is not None
                and type(a.error) is type(b.error) and str(a.error) == str(b.error))
    return bool(comparator(a.value, b.value))


class Controller:
    """Mode state, metrics and mismatch bookkeeping shared by a process's experiments."""

    def __init__(self, state: ModeState | None = None, metrics: Metrics | None = None,
                 sample: float = 1.0, seed: int | None = None, keep: int = 1000) -> None:
        self.state = state or ModeState(os.environ.get("PARITY_MODE_FILE", DEFAULT_STATE_FILE))
        self.metrics = metrics or Metrics()  # the batch functions exist at 0 from the start
        self.metrics.set_mode(self.state.mode)
        self.state.listeners.append(lambda change: self.metrics.set_mode(self.state.mode))
        self.sample = sample
        self.rng = random.Random(seed)
        self.mismatches: deque[dict] = deque(maxlen=keep)
        self.harness_errors = 0
        self._persisted = 0.0
        self._lock = threading.Lock()

    @property
    def mode(self) -> Mode:
        self.state.refresh()
        return self.state.mode

    def record(self, name: str, legacy: Outcome | None, refactored: Outcome | None,
               compared: bool, matched: bool, args: tuple) -> None:
        self.metrics.observe(name, legacy.seconds if legacy else None,
                             refactored.seconds if refactored else None, int(compared),
                             int(compared and not matched))
        if compared:
            self.state.record(1, int(not matched))
            if not matched:
                self.mismatches.append({
                    "function": name, "time": time.time(),
                    "legacy": describe(legacy.error if legacy.error else legacy.value),
                    "refactored": describe(refactored.error if refactored.error
                                           else refactored.value),
                    "args": [describe(a) for a in args][:4]})
        now = time.monotonic()
        if now - self._persisted > 1.0:  # the promotion window survives restarts
            self._persisted = now
            self.state.persist_window()


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
        if mode == Mode.LEGACY_ONLY:
            out = _run(self.legacy, args, kwargs)
            self._safely(lambda: (c.record(self.name, out, None, False, True, args),
                                  c.metrics.served(mode, "legacy")))
            return out.unwrap()
        if mode == Mode.REFACTORED_ONLY:
            out = _run(self.refactored, args, kwargs)
            self._safely(lambda: (c.record(self.name, None, out, False, True, args),
                                  c.metrics.served(mode, "refactored")))
            return out.unwrap()
        sample = c.sample if self.sample is None else self.sample
        compare = mode == Mode.SHADOW or c.rng.random() < sample
        legacy = refactored = None
        if compare:
            first_legacy = c.rng.random() < 0.5  # random order: no systematic cache bias
            if first_legacy:
                legacy = _run(self.legacy, args, kwargs)
                refactored = _run(self.refactored, args, kwargs)
            else:
                refactored = _run(self.refactored, args, kwargs)
                legacy = _run(self.legacy, args, kwargs)
        else:
            refactored = _run(self.refactored, args, kwargs)
        matched = True
        if compare:
            matched = self._safely(lambda: same_outcome(legacy, refactored, self.comparator),
                                   default=False)
        if mode == Mode.SHADOW:
            served, which = legacy, "legacy"
        elif refactored.error is not None or not matched:
            if legacy is None:
                legacy = _run(self.legacy, args, kwargs)
            served, which = legacy, "legacy"
            why = (f"refactored {self.name} raised {type(refactored.error).__name__}"
                   if refactored.error is not None else f"{self.name} mismatch")
            self._safely(lambda: c.state.demote(why))
        else:
            served, which = refactored, "refactored"
        self._safely(lambda: (c.record(self.name, legacy, refactored, compare, matched, args),
                              c.metrics.served(mode, which)))
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
