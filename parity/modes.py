"""Codec modes of SPEC section 5 and the persistent, rule-checked mode state."""
from __future__ import annotations

import enum
import json
import os
import threading
import time
from collections import deque
from pathlib import Path

from parity.errors import ParityError

PROMOTION_WINDOW_SECONDS = 300
PROMOTION_MIN_COMPARISONS = 10_000
PROMOTION_MAX_MISMATCH_RATE = 0.0001  # 0.01%


class Mode(enum.IntEnum):
    LEGACY_ONLY = 0
    SHADOW = 1
    REFACTORED_PRIMARY = 2
    REFACTORED_ONLY = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @property
    def runs_legacy(self) -> bool:
        return self in (Mode.LEGACY_ONLY, Mode.SHADOW, Mode.REFACTORED_PRIMARY)

    @property
    def runs_refactored(self) -> bool:
        return self != Mode.LEGACY_ONLY

    @property
    def compares(self) -> bool:
        return self in (Mode.SHADOW, Mode.REFACTORED_PRIMARY)


ACCEPTED = ", ".join(f"{m.value} or {m.label}" for m in Mode)


def parse_mode(value: object, source: str = "mode") -> Mode:
    """A mode from its number or name; anything else names the accepted values."""
    text = str(value).strip().lower()
    for m in Mode:
        if text in (str(m.value), m.label):
            return m
    raise ParityError(f"{source}: invalid codec mode {value!r}; accepted: {ACCEPTED}")


def mode_from_env(default: Mode = Mode.SHADOW) -> Mode:
    raw = os.environ.get("CODEC_MODE")
    return default if raw is None or raw == "" else parse_mode(raw, "CODEC_MODE")


class ModeState:
    """The current mode, its change history (in a JSON file that survives restarts) and a
    rolling 5-minute window of comparisons that gates promotion."""

    def __init__(self, path: str | Path | None, initial: Mode | None = None,
                 clock=time.time) -> None:
        self.path = Path(path) if path else None
        self.clock = clock
        self._lock = threading.RLock()
        self._window: deque[tuple[float, int, int]] = deque()  # (second, comparisons, mismatches)
        self.history: list[dict] = []
        self.mode = initial if initial is not None else mode_from_env()
        self._mtime = 0.0
        self._checked = 0.0
        self.listeners: list = []
        if self.path and self.path.exists():
            self._load()  # the recorded mode wins: a restart never undoes a rollback
        elif self.path:
            self._save()

    def _load(self) -> None:
        assert self.path is not None
        try:
            data = json.loads(self.path.read_text())
            self.mode = parse_mode(data["mode"], str(self.path))
            self.history = list(data.get("history", []))
            now = self.clock()
            self._window.clear()
            for sec, c, m in data.get("window", []):
                if now - sec <= PROMOTION_WINDOW_SECONDS:
                    self._window.append((float(sec), int(c), int(m)))
            self._mtime = self.path.stat().st_mtime
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ParityError(f"{self.path}: unreadable mode state ({exc})") from None

    def _save(self) -> None:
        if not self.path:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        data = {"mode": self.mode.value, "mode_name": self.mode.label, "history": self.history,
                "window": [list(x) for x in self._window]}
        with open(tmp, "w") as f:
            json.dump(data, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.path)
        self._mtime = self.path.stat().st_mtime

    def refresh(self, every: float = 1.0) -> None:
        """Pick up a change another process (``parity mode ...``) wrote to the file."""
        if not self.path:
            return
        now = time.monotonic()
        if now - self._checked < every:
            return
        self._checked = now
        with self._lock:
            try:
                mtime = self.path.stat().st_mtime
            except OSError:
                return
            if mtime != self._mtime:
                before = self.mode
                self._load()
                if self.mode != before:
                    for listener in self.listeners:
                        listener(self.history[-1] if self.history else {})

    # --- comparisons window -------------------------------------------------
    def record(self, comparisons: int, mismatches: int) -> None:
        with self._lock:
            sec = float(int(self.clock()))
            if self._window and self._window[-1][0] == sec:
                _, c, m = self._window[-1]
                self._window[-1] = (sec, c + comparisons, m + mismatches)
            else:
                self._window.append((sec, comparisons, mismatches))
            self._trim()

    def _trim(self) -> None:
        now = self.clock()
        while self._window and now - self._window[0][0] > PROMOTION_WINDOW_SECONDS:
            self._window.popleft()

    def window(self) -> tuple[int, int]:
        with self._lock:
            self._trim()
            return (sum(c for _, c, _ in self._window), sum(m for _, _, m in self._window))

    def persist_window(self) -> None:
        with self._lock:
            self._save()

    # --- changes --------------------------------------------------------------
    def _change(self, to: Mode, reason: str) -> dict:
        entry = {"time": self.clock(), "from": self.mode.label, "to": to.label, "reason": reason}
        self.history.append(entry)
        self.mode = to
        self._save()
        for listener in self.listeners:
            listener(entry)
        return entry

    def demote(self, reason: str) -> dict | None:
        """Mode 2 or 3 -> mode 1 (rollback). Returns the change, or None if nothing changed."""
        with self._lock:
            if self.mode in (Mode.REFACTORED_PRIMARY, Mode.REFACTORED_ONLY):
                return self._change(Mode.SHADOW, reason)
            return None

    def set_mode(self, to: Mode, reason: str) -> dict | None:
        """An operator's explicit change; promotions still obey :meth:`promotion_refusal`."""
        with self._lock:
            if to == self.mode:
                return None
            if to > self.mode:
                refusal = self.promotion_refusal(to)
                if refusal:
                    raise ParityError(refusal)
            return self._change(to, reason)

    def promotion_refusal(self, to: Mode | None = None) -> str | None:
        """Why a promotion is refused now, or None when it is allowed."""
        with self._lock:
            target = Mode(self.mode + 1) if to is None and self.mode < 3 else to
            if target is None:
                return f"already at {self.mode.label}: nothing to promote to"
            if self.mode == Mode.LEGACY_ONLY and target == Mode.SHADOW:
                return None  # starting to compare serves legacy still: no gate
            if target != self.mode + 1:
                return (f"promotion goes one step at a time from shadow: {self.mode.label} -> "
                        f"{target.label} is not allowed")
            comparisons, mismatches = self.window()
            if comparisons < PROMOTION_MIN_COMPARISONS:
                return (f"promotion to {target.label} refused: the last 5 minutes hold "
                        f"{comparisons:,} comparisons, fewer than {PROMOTION_MIN_COMPARISONS:,}")
            rate = mismatches / comparisons
            if rate > PROMOTION_MAX_MISMATCH_RATE:
                return (f"promotion to {target.label} refused: mismatch rate {rate:.4%} over the "
                        f"last 5 minutes is above {PROMOTION_MAX_MISMATCH_RATE:.2%}")
            return None

    def promote(self, reason: str = "operator") -> dict:
        with self._lock:
            refusal = self.promotion_refusal()
            if refusal:
                raise ParityError(refusal)
            return self._change(Mode(self.mode + 1), reason)
