"""Per-call experiments' exact counts (:mod:`parity.percall`): stepped without locks
(``itertools.count`` steps atomically under the GIL) and drained into metrics."""
from __future__ import annotations

import itertools
import threading

from parity.modes import Mode

SIDES = ("legacy", "refactored")


def _value(counter: itertools.count) -> int:
    return int(counter.__reduce__()[1][0])


class Tally:
    """One experiment's exact counts, stepped without locks and drained into metrics."""

    def __init__(self) -> None:
        self.calls = itertools.count()  # dual-mode calls (picks the timed ones)
        self.served = {(m, s): itertools.count() for m in Mode for s in SIDES}
        self.compared = itertools.count()
        self.mismatched = itertools.count()
        self._taken: dict[object, int] = {}
        self._lock = threading.Lock()

    def drain(self) -> tuple[dict[tuple[Mode, str], int], int, int]:
        """(served deltas, compared delta, mismatched delta) since the last drain."""
        with self._lock:
            def delta(key: object, counter: itertools.count) -> int:
                v = _value(counter)
                d = v - self._taken.get(key, 0)
                self._taken[key] = v
                return d
            served = {k: d for k, c in self.served.items() if (d := delta(k, c))}
            return served, delta("c", self.compared), delta("m", self.mismatched)
