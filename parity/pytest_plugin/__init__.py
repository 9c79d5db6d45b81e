"""The differential suite as a pytest plugin (entry point ``pytest11``: ``parity``).

``pytest --parity-refactored mypkg.twin`` adds :mod:`parity.pytest_plugin.suite` to the
run: the public golden vectors (shipped, gzipped, beside this module), hypothesis
property tests built on :mod:`parity.strategies`, and every regression case (the ones
shipped in ``regressions/`` plus ``--parity-regressions DIR``, default
``tests/regressions`` under the rootdir). The ``legacy_twin`` and ``refactored_twin``
fixtures serve users' own tests. A twin is a module name or a ``.py`` path
(:mod:`parity.twins`); a golden or property failure is shrunk to a minimal case, which
the failure message prints in the case file form.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
SUITE = HERE / "suite.py"
SHIPPED = HERE / "regressions"


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("parity", "parity differential suite")
    g.addoption("--parity-refactored", metavar="TWIN", default=None,
                help="run the parity differential suite against this twin (module or .py path)")
    g.addoption("--parity-legacy", metavar="TWIN", default="kernels.legacy",
                help="the reference twin (default kernels.legacy)")
    g.addoption("--parity-regressions", metavar="DIR", action="append", default=[],
                help="more regression case files (default: tests/regressions under the rootdir)")


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("parity_refactored") and str(SUITE) not in config.args:
        config.args.append(str(SUITE))


def _twin(config: pytest.Config, option: str, role: str) -> Any:
    from parity.errors import ParityError
    from parity.twins import load_twin
    name = config.getoption(option)
    if not name:
        pytest.skip(f"no --{option.replace('_', '-')} TWIN given")
    try:
        return load_twin(name, role)
    except ParityError as exc:
        raise pytest.UsageError(str(exc)) from None


@pytest.fixture(scope="session")
def legacy_twin(pytestconfig: pytest.Config) -> Any:
    """The reference twin (``--parity-legacy``, default ``kernels.legacy``)."""
    return _twin(pytestconfig, "parity_legacy", "parity-legacy")


@pytest.fixture(scope="session")
def refactored_twin(pytestconfig: pytest.Config) -> Any:
    """The twin under test (``--parity-refactored``); tests using it skip without one."""
    return _twin(pytestconfig, "parity_refactored", "parity-refactored")


def case_files(config: pytest.Config) -> list[Path]:
    """Shipped cases, then the user's (``--parity-regressions``, else tests/regressions)."""
    dirs = [SHIPPED] + [Path(d) for d in config.getoption("parity_regressions")]
    if not config.getoption("parity_regressions"):
        dirs.append(config.rootpath / "tests" / "regressions")
    seen: dict[str, Path] = {}
    for d in dirs:
        for p in sorted(d.glob("*.jsonl")) if d.is_dir() else ():
            seen.setdefault(p.stem, p)
    return list(seen.values())


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "parity_case" in metafunc.fixturenames:
        files = case_files(metafunc.config)
        metafunc.parametrize("parity_case", files, ids=[p.stem for p in files])
