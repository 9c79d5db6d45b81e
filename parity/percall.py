"""Per-call experiments for live processes: both implementations behind one callable.

    import parity
    header_hash = parity.experiment("header_hash", legacy=legacy.hash_header,
                                    refactored=jit.hash_header)
    h = header_hash(raw)   # always the value (or exception) the codec mode serves

What runs, what is compared and what is served come from :mod:`parity.policy`
(SPEC section 5); outcomes and argument copies from :mod:`parity.outcomes`. Nothing
that goes wrong inside the harness or the state store reaches the caller.

The hot path is lean: in modes 0 and 3 a call is the implementation's call plus one
counter step (a ticker thread sends the next call through the slow path when the mode
state is due a refresh, so the mode others set is still picked up within a second or
:data:`TICK`); counts are exact and lock-free (``itertools.count`` steps atomically
under the GIL) and reach the Prometheus series when metrics are collected and the
promotion window at most once a second and at exit. One call in
:data:`TIMING_SAMPLE` is timed for the duration histograms. In modes 1 and 2 an untimed
call whose arguments hold nothing mutable and whose sides return the same plain value
(bytes, str, int, bool, None) is settled at once; anything else takes the full path.
"""
from __future__ import annotations

import atexit
import itertools
import logging
import os
import random
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

from prometheus_client import ProcessCollector

from parity import policy
from parity.compare import PLAIN, Comparator, describe, values_equal
from parity.errors import StateError
from parity.metrics import Metrics
from parity.modes import Mode
from parity.outcomes import Call, Outcome, copies, has_mutable, mutated, run, same_outcome
from parity.state import ModeState, default_state_path
from parity.tally import Tally

log = logging.getLogger("parity")
_monotonic = time.monotonic
_SHADOW = Mode.SHADOW  # a module global: an enum member lookup is slow on the hot path
_DUAL = frozenset(m for m in Mode if policy.plan(m, True).compares)  # modes 1 and 2
# what policy serves when both sides ran and matched, per mode (asked once, not per call)
_MATCH_SERVED = {m: policy.decide(m, True, True, False).served for m in Mode}
TIMING_SAMPLE = 64  #: one call in this many is timed (the histograms); counts are exact
TICK = 0.1  #: seconds between the ticker's looks at which controllers are due housekeeping


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
        self.state.listeners.append(self._on_change)
        self.sample = sample
        self.rng = random.Random(seed)
        self.mismatches: deque[dict] = deque(maxlen=keep)
        self.harness_errors = 0
        self.flush_every = flush_every
        self.serving = self.state.mode  # the mode calls are served under (cached)
        self._due = 0.0  # monotonic time of the next housekeeping
        self._fast = False  # whether experiments may skip the clock between housekeepings
        self._flushed = time.monotonic()
        self._experiments: weakref.WeakValueDictionary[int, Experiment] = \
            weakref.WeakValueDictionary()
        self.metrics.before_collect.append(self.drain)
        _LIVE.add(self)  # flushed at exit: a short script's comparisons still count
        _start_ticker()

    def _on_change(self, change: dict) -> None:
        self._serve(self.state.mode)
        self.metrics.set_mode(self.serving)

    def _serve(self, mode: Mode) -> None:
        """Serve ``mode`` from now on: the experiments' fast paths follow it (none while
        housekeeping is due, or when it is due at every call)."""
        self.serving = mode
        self._fast = min(self.state.refresh_every, self.flush_every) >= TICK
        fast = self._fast and _monotonic() < self._due
        for exp in list(self._experiments.values()):
            exp._one = exp._single.get(mode) if fast else None
            exp._two = mode if fast and mode in _DUAL else None

    def _expire(self) -> None:
        """Housekeeping is due: the next call of every experiment takes the slow path."""
        for exp in list(self._experiments.values()):
            exp._one = exp._two = None

    def housekeeping(self, now: float) -> None:
        """Pick up mode changes other processes made; persist counts once a second."""
        self._due = now + min(self.state.refresh_every, self.flush_every)
        try:
            self.state.refresh()
        except Exception:
            self.harness_errors += 1
            log.exception("parity: cannot refresh the mode state")
        self._serve(self.state.mode)
        if now - self._flushed >= self.flush_every:
            self._flushed = now
            self.flush()

    @property
    def mode(self) -> Mode:
        """The mode served now; never raises (a broken store serves legacy)."""
        self.housekeeping(time.monotonic())
        return self.serving

    def drain(self) -> None:
        """Move every experiment's counts into the metrics and the promotion window."""
        for name, exp in list(self._experiments.items()):
            try:
                served, compared, mismatched = exp.tally.drain()
                for (mode, side), n in served.items():
                    self.metrics.served(mode, side, n)
                if compared:
                    self.metrics.observe(exp.name, None, None, compared, mismatched)
                    self.state.record(compared, mismatched)
            except Exception:
                self.harness_errors += 1
                log.exception("parity: harness error counting %s", name)

    def flush(self) -> None:
        """Make the counted comparisons durable now (the promotion window)."""
        try:
            self.drain()
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
        self._serve(self.state.mode)

    def mismatch(self, name: str, legacy: Outcome, refactored: Outcome, args: tuple,
                 why: str | None) -> None:
        self.mismatches.append({
            "function": name, "time": time.time(),
            "legacy": describe(legacy.error if legacy.error else legacy.value),
            "refactored": describe(refactored.error if refactored.error else refactored.value),
            "args": [describe(a) for a in args][:4], **({"why": why} if why else {})})


_LIVE: weakref.WeakSet[Controller] = weakref.WeakSet()
_ticker: threading.Thread | None = None


def _tick() -> None:
    while True:
        time.sleep(TICK)
        _tick_once(_monotonic())


def _tick_once(now: float) -> None:
    """Expire the fast path of every controller due housekeeping; a walk that fails as
    another thread adds a controller or an experiment waits for the next tick."""
    try:
        for controller in list(_LIVE):
            if now >= controller._due:
                controller._expire()
    except RuntimeError:
        pass


def _start_ticker() -> None:
    """One daemon thread per process (started again in a forked child)."""
    global _ticker
    if _ticker is None or not _ticker.is_alive():
        _ticker = threading.Thread(target=_tick, name="parity-ticker", daemon=True)
        _ticker.start()


def _after_fork() -> None:
    if len(_LIVE):  # the parent's ticker is not alive here (threading's own hook ran)
        _start_ticker()


os.register_at_fork(after_in_child=_after_fork)


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
        self.tally = Tally()
        # the single-side modes' counters, looked up once (their value picks timed calls)
        self._single = {Mode.LEGACY_ONLY: (self.tally.served[(Mode.LEGACY_ONLY, "legacy")],
                                           legacy, "legacy"),
                        Mode.REFACTORED_ONLY: (self.tally.served[(Mode.REFACTORED_ONLY,
                                                                  "refactored")],
                                               refactored, "refactored")}
        self._plain = comparator is values_equal  # bit-equal plain values match at once
        self._one: tuple[itertools.count, Callable, str] | None = None  # modes 0, 3 fast
        self._two: Mode | None = None  # modes 1 and 2 between housekeepings: the mode
        controller.metrics.add_function(name)
        controller._experiments[id(self)] = self
        self.call = self.entry()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.call(*args, **kwargs)

    def entry(self) -> Callable[..., Any]:
        """The callable :func:`experiment` hands out: a plain function over this object
        (an instance's Python-level ``__call__`` costs about as much again as the fast
        path's own work). Its ``experiment`` attribute is this object."""
        def call(*args: Any, **kwargs: Any) -> Any:
            one = self._one  # modes 0 and 3 with housekeeping not due: one side, as it is
            if one is not None and next(one[0]) % TIMING_SAMPLE:
                return one[1](*args, **kwargs) if kwargs else one[1](*args)  # no empty dict
            two = self._two  # modes 1 and 2 with housekeeping not due: the mode
            if two is not None:
                return self._dual(two, args, kwargs)
            return self._call(one, args, kwargs)
        call.__name__ = call.__qualname__ = self.name
        call.experiment = self  # type: ignore[attr-defined]
        return call

    def _call(self, one: tuple | None, args: tuple, kwargs: dict) -> Any:
        """Every call the fast path does not finish: ``one`` is set for a timed call of
        modes 0 and 3 (its count stepped already)."""
        c = self.controller
        if one is None:
            if _monotonic() >= c._due:
                c.housekeeping(_monotonic())
            one = self._single.get(c.serving)
            if one is None:
                return self._dual(c.serving, args, kwargs)
            if c._fast:  # not due (the ticker may have expired it as it was renewed)
                self._one = one
            if next(one[0]) % TIMING_SAMPLE:
                return one[1](*args, **kwargs)
        side = one[2]
        out = run(one[1], args, kwargs, True)
        self._safely(lambda: c.metrics.observe(
            self.name, out.seconds if side == "legacy" else None,
            out.seconds if side == "refactored" else None))
        return out.unwrap()

    def _dual(self, mode: Mode, args: tuple, kwargs: dict) -> Any:
        """Modes 1 and 2: both sides on private copies, compared, policy-served."""
        c, t = self.controller, self.tally
        sample = c.sample if self.sample is None else self.sample
        sampled = mode is _SHADOW or sample >= 1.0 or c.rng.random() < sample
        timed = not next(t.calls) % TIMING_SAMPLE
        if not timed and sampled and self._plain and not kwargs and len(args) == 1 \
                and type(args[0]) in PLAIN:  # sampled, modes 1 and 2 compare (_DUAL)
            return self._pair(mode, args)
        plan = policy.plan(mode, sampled)
        mutable = has_mutable(args, kwargs)
        if mutable:
            original = Call(args, kwargs)
            rcall, lcall = copies(args, kwargs, True), copies(args, kwargs, True)
            ra, rk, la, lk = rcall.args, rcall.kwargs, lcall.args, lcall.kwargs
        else:
            ra = la = args
            rk = lk = kwargs
        legacy: Outcome | None = None
        if plan.compares and c.rng.random() < 0.5:  # random order: no cache bias
            legacy = run(self.legacy, la, lk, timed)
            refactored = run(self.refactored, ra, rk, timed)
        else:
            refactored = run(self.refactored, ra, rk, timed)
        if plan.legacy and legacy is None:
            legacy = run(self.legacy, la, lk, timed)
        if policy.fallback(mode, refactored.error is not None, legacy is not None):
            legacy = run(self.legacy, la, lk, timed)
        return self._settle(mode, args, kwargs, legacy, refactored, timed,
                            (original, rcall) if mutable else None)

    def _settle(self, mode: Mode, args: tuple, kwargs: dict, legacy: Outcome | None,
                refactored: Outcome, timed: bool,
                copied: tuple[Call, Call] | None = None) -> Any:
        """Compare (when both ran), count, demote if mode 2 must, serve."""
        c, t = self.controller, self.tally
        matched, why = True, None
        if legacy is not None:
            next(t.compared)
            changed = self._safely(lambda: mutated(*copied), None) if copied else None
            if changed:
                matched, why = False, f"refactored {self.name} mutated its {changed}"
            else:
                try:
                    matched = same_outcome(legacy, refactored, self.comparator)
                except Exception:  # a comparison that fails is a difference
                    matched = False
                    c.harness_errors += 1
                    log.exception("parity: harness error comparing %s", self.name)
            if not matched:
                next(t.mismatched)
                self._safely(lambda: c.mismatch(self.name, legacy, refactored, args, why))
        decision = policy.decide(mode, legacy is not None, matched, refactored.error is not None)
        if decision.demote:
            reason = why or (f"refactored {self.name} raised {type(refactored.error).__name__}"
                             if refactored.error is not None and legacy is not None
                             and legacy.error is None else f"{self.name} mismatch")
            self._safely(lambda: c.demote(reason))
            self._safely(c.drain)  # the mismatch counts at once, not at the next scrape
        next(t.served[(mode, decision.served)])
        if timed:
            self._safely(lambda: c.metrics.observe(
                self.name, legacy.seconds if legacy else None, refactored.seconds))
        served = legacy if decision.served == "legacy" else refactored
        assert served is not None
        return served.unwrap()

    def _pair(self, mode: Mode, args: tuple) -> Any:
        """Modes 1 and 2, untimed, immutable arguments: both sides in random order (no
        systematic cache bias); equal plain values are settled here, the rest by
        :meth:`_settle`."""
        legacy_first = self.controller.rng.random() < 0.5
        first, second = (self.legacy, self.refactored) if legacy_first \
            else (self.refactored, self.legacy)
        ea = eb = a = b = None
        try:
            a = first(*args)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            ea = exc
        try:
            b = second(*args)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            eb = exc
        if ea is None and eb is None and type(a) is type(b) and type(a) in PLAIN and a == b:
            served = _MATCH_SERVED[mode]
            next(self.tally.compared)
            next(self.tally.served[(mode, served)])
            return a if (served == "legacy") is legacy_first else b
        x, y = Outcome(a, ea), Outcome(b, eb)
        legacy, refactored = (x, y) if legacy_first else (y, x)
        return self._settle(mode, args, {}, legacy, refactored, False)

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
               sample: float | None = None) -> Callable[..., Any]:
    """Wrap two implementations of ``name``; see the module docstring."""
    return Experiment(name, legacy, refactored, controller or default_controller(), comparator,
                      sample).call
