"""Shrinking a crash: the shrinker's passes, each candidate run in a fresh process.

A twin that dies of a signal cannot be called in the parent, so :class:`CrashShrinker`
asks ``probe`` (one side on one case in a child, :mod:`parity.fuzz.worker`
``--probe-case``) whether the side still dies the same way. Probes cost a process start
each (a second or two), so at most ``budget`` are run; past it a candidate counts as not
reproducing, and the case reached so far (which does reproduce) is kept.
"""
from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from parity.shrink import Shrinker
from parity.shrink.case import Case, write_case

PROBE_BUDGET = 60


def side_status(returncode: int, stdout: str) -> str:
    """How a probe ended: ``ok``, ``SIGSEGV in <function>``, ``exit N in <function>``."""
    import signal
    done = stdout.split()
    where = done[-1] if done else "?"
    if returncode == 0:
        return "ok"
    if returncode < 0:
        try:
            return f"{signal.Signals(-returncode).name} in {where}"
        except ValueError:
            return f"signal {-returncode} in {where}"
    return f"exit {returncode} in {where}"


def probe_case(worker: list[str], env: dict, side: str, timeout: float) -> Callable[[Case], str]:
    """A probe running ``side`` on a case in a fresh worker process."""
    def probe(case: Case) -> str:
        with tempfile.TemporaryDirectory(prefix="parity-probe-") as tmp:
            path = write_case(replace(case, name="probe"), tmp)
            try:
                p = subprocess.run([*worker, "--probe-case", str(path), "--side", side],
                                   capture_output=True, text=True, env=env, check=False,
                                   timeout=timeout)
            except subprocess.TimeoutExpired:
                return "timeout"
        return side_status(p.returncode, p.stdout)
    return probe


class CrashShrinker(Shrinker):
    """Shrinks while ``probe(case) == want`` (the side dies the same way)."""

    def __init__(self, function: str, legacy: Any, refactored: Any,
                 probe: Callable[[Case], str], want: str, budget: int = PROBE_BUDGET) -> None:
        super().__init__(function, legacy, refactored)
        self.probe, self.want, self.left = probe, want, budget

    def disagree(self, case: Case) -> bool:
        key = case.key()
        if key not in self._seen:
            if self.left <= 0:
                return False
            self.left -= 1
            self._seen[key] = self.probe(case) == self.want
        return self._seen[key]

    def outcomes(self, case: Case) -> tuple[Any, Any]:
        return ("crash", None, "ok"), ("crash", None, self.want)
