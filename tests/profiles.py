"""Hypothesis profiles, chosen with HYPOTHESIS_PROFILE (else "ci" when CI is set, else
"default"), and the per-test example budgets scaled by the profile.

- ``ci``: derandomized (the same inputs every run), each test's own ``max_examples``;
- ``default``: random inputs, the same budgets;
- ``fuzz`` (``make fuzz``): random inputs and ``HYPOTHESIS_SCALE`` (default 10) times
  every budget, failures kept in the local example database for the next run.
"""
from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

PROFILE = os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "default")
FUZZ = PROFILE == "fuzz"
SCALE = int(os.environ.get("HYPOTHESIS_SCALE", "10")) if FUZZ else 1
_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large]

settings.register_profile("default", max_examples=60, deadline=None,
                          suppress_health_check=_QUIET)
settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True,
                          print_blob=True, database=None, suppress_health_check=_QUIET)
settings.register_profile("fuzz", max_examples=60 * SCALE, deadline=None, derandomize=False,
                          print_blob=True, suppress_health_check=_QUIET)
settings.load_profile(PROFILE)


def examples(n: int) -> int:
    """A test's example budget ``n``, scaled by the profile (``n`` in CI)."""
    return n * SCALE
