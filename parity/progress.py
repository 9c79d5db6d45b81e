"""A minimal progress bar on stderr: shown only on a terminal and unless quiet."""
from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, total: int, label: str, quiet: bool = False) -> None:
        self.total = max(total, 0)
        self.label = label
        self.done = 0
        self.enabled = not quiet and sys.stderr.isatty()
        self.start = time.perf_counter()
        self._last = 0.0

    def advance(self, n: int) -> None:
        self.done += n
        now = time.perf_counter()
        if self.enabled and (now - self._last > 0.2 or self.done >= self.total):
            self._last = now
            frac = self.done / self.total if self.total else 1.0
            bar = "#" * int(frac * 30)
            rate = self.done / max(now - self.start, 1e-9)
            sys.stderr.write(f"\r{self.label} [{bar:<30}] {self.done:,}/{self.total:,} "
                             f"({rate:,.0f}/s)")
            sys.stderr.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()
