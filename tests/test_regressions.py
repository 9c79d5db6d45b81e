"""Every regression case in tests/regressions/ (minimal reproducers written by
``parity shrink``) against both twins: legacy still gives the outcome it gave when the
case was shrunk, and the JIT twin gives the same."""
import pytest

import kernels.jit as jit
import kernels.legacy as legacy
from parity.shrink import check_case, load_case
from tests.conftest import ROOT

CASES = sorted((ROOT / "tests" / "regressions").glob("*.jsonl"))


def test_there_are_cases():
    assert len(CASES) >= 6


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_regression_case(path):
    case = load_case(path)
    assert case.name == path.stem
    problem = check_case(case, legacy, jit)
    assert problem is None, problem


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_case_still_catches_the_planted_bugs(path, monkeypatch):
    """Each case came from a planted bug: the twin with every bug planted still fails it."""
    from tests import broken_twin
    case = load_case(path)
    monkeypatch.setenv("BROKEN_TWIN", "flip,odd_copy,negzero,noreplay,overflow,short_replay")
    monkeypatch.setenv("BROKEN_TWIN_HEIGHTS", str(legacy.decode_header(case.block.header)["height"]))
    problem = check_case(case, legacy, broken_twin)
    assert problem is not None and case.name in problem and case.function in problem
