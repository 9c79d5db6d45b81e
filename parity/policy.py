"""SPEC section 5 as pure functions: what runs, what is compared, what is served, and
whether mode 2 demotes. Every engine (batch, Dask, per call, live) asks these; none
re-decides."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from parity.modes import Mode

Side = Literal["legacy", "refactored"]
PROMOTION_WINDOW_SECONDS = 300
PROMOTION_MIN_COMPARISONS = 10_000
PROMOTION_MAX_MISMATCH_RATE = 0.0001  # 0.01%


@dataclass(frozen=True)
class Plan:
    """What to run for one call (or shard) before anything ran."""

    legacy: bool
    refactored: bool

    @property
    def compares(self) -> bool:
        return self.legacy and self.refactored


# the modes as module constants: an enum member looked up on its class is slow, and
# plan() and decide() are on the per-call hot path
_LEGACY_ONLY, _SHADOW = Mode.LEGACY_ONLY, Mode.SHADOW
_PRIMARY, _REFACTORED_ONLY = Mode.REFACTORED_PRIMARY, Mode.REFACTORED_ONLY


def plan(mode: Mode, sampled: bool = True) -> Plan:
    """Mode 2 runs legacy on the sampled part only (``sampled``); see :func:`fallback`."""
    return _PLANS[(mode == _LEGACY_ONLY or mode == _SHADOW or (mode == _PRIMARY and sampled),
                   mode != _LEGACY_ONLY)]


def fallback(mode: Mode, refactored_failed: bool, legacy_ran: bool) -> bool:
    """Mode 2 runs legacy after all when refactored raised and legacy was not sampled."""
    return mode == _PRIMARY and refactored_failed and not legacy_ran


@dataclass(frozen=True)
class Decision:
    served: Side
    demote: bool  # mode 2 -> 1


def decide(mode: Mode, compared: bool, matched: bool, refactored_failed: bool) -> Decision:
    """What is served once the outcomes are known.

    ``matched`` is only read when ``compared``; identical exceptions on both sides are
    a match (SPEC section 5), so ``refactored_failed`` with ``matched`` serves that
    exception without demotion. In mode 3 a refactored exception is served as it is:
    there is nothing to fall back on."""
    if mode == _LEGACY_ONLY or mode == _SHADOW:
        return _DECISIONS[("legacy", False)]
    if mode == _REFACTORED_ONLY:
        return _DECISIONS[("refactored", False)]
    differs = (compared and not matched) or (refactored_failed and not compared)
    return _DECISIONS[("legacy", True) if differs else ("refactored", False)]


# immutable answers, built once: the per-call hot path allocates nothing here
_PLANS = {(lg, rf): Plan(lg, rf) for lg in (False, True) for rf in (False, True)}
_DECISIONS = {(side, demote): Decision(side, demote)
              for side in ("legacy", "refactored") for demote in (False, True)}


def rollback_applies(mode: Mode) -> bool:
    """An external rollback demotes modes 2 and 3 to mode 1 (decided against the mode in
    force at that moment)."""
    return mode in (Mode.REFACTORED_PRIMARY, Mode.REFACTORED_ONLY)


def promotion_refusal(current: Mode, to: Mode, comparisons: int, mismatches: int) -> str | None:
    """Why promoting ``current`` -> ``to`` is refused, given the last 5 minutes' counts
    over every process; None when allowed (0 -> 1 needs nothing: legacy is still served)."""
    if current == Mode.LEGACY_ONLY and to == Mode.SHADOW:
        return None  # starting to compare still serves legacy: no gate
    if to != current + 1:
        return (f"promotion goes one step at a time: {current.label} -> {to.label} is not "
                "allowed")
    if comparisons < PROMOTION_MIN_COMPARISONS:
        return (f"promotion to {to.label} refused: the last 5 minutes hold "
                f"{comparisons:,} comparisons, fewer than {PROMOTION_MIN_COMPARISONS:,}; "
                "they come from per-call experiments and live validation in processes sharing "
                "this state while it is in mode 1 or 2 (batch `parity shadow` runs do not "
                "count), e.g. `parity serve --workload corpora/sample-valid --rate 1000` or "
                "`parity serve --chain CORPUS` fed by `parity feed`, with the same --state")
    rate = mismatches / comparisons
    if rate > PROMOTION_MAX_MISMATCH_RATE:
        return (f"promotion to {to.label} refused: mismatch rate {rate:.4%} over the last "
                f"5 minutes is above {PROMOTION_MAX_MISMATCH_RATE:.2%}")
    return None
