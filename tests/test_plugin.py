"""The pytest plugin: the differential suite a user's repository runs against its twin.

The slow test builds a wheel from a copy of the tracked tree, installs it with its
dependencies into a fresh virtual environment (once per session) and runs pytest in a
scratch project: against ``kernels.jit`` it passes; against a planted twin it fails,
naming the function and the minimal case."""
import gzip
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from parity.pytest_plugin import HERE, SHIPPED
from tests.conftest import ROOT, SHARED

PLANTED = '''
"""kernels.jit, except that the odd merkle node is copied instead of re-hashed."""
import numpy as np
from blake3 import blake3

import kernels.jit as _jit
from kernels.jit import commitments, hash_headers, new_replay_state, validate_blocks  # noqa: F401


def merkle_roots(ids, offsets):
    out = _jit.merkle_roots(ids, offsets)
    for b in range(len(offsets) - 1):
        level = [blake3(r.tobytes()).digest() for r in ids[offsets[b]:offsets[b + 1]]]
        while len(level) > 1:
            nxt = [blake3(level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
            if len(level) % 2:
                nxt.append(level[-1])
            level = nxt
        if level:
            out[b] = np.frombuffer(level[0], np.uint8)
    return out
'''
OWN_TEST = '''
import numpy as np


def test_my_twin_hashes_like_legacy(legacy_twin, refactored_twin):
    headers = np.arange(2 * 276, dtype=np.uint64).astype(np.uint8).reshape(2, 276)
    assert (refactored_twin.hash_headers(headers) == legacy_twin.hash_headers(headers)).all()
'''


def scratch_project(root: Path) -> Path:
    (root / "tests").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[tool.pytest.ini_options]\naddopts = \"-p no:cacheprovider\"\n")
    (root / "planted_twin.py").write_text(textwrap.dedent(PLANTED))
    (root / "tests" / "test_own.py").write_text(textwrap.dedent(OWN_TEST))
    return root


def pytest_in(project: Path, python: str, twin: str, env: dict | None = None
              ) -> subprocess.CompletedProcess:
    return subprocess.run([python, "-m", "pytest", "-q", "--parity-refactored", twin],
                          cwd=project, capture_output=True, text=True, timeout=1800,
                          env=env)


def test_shipped_vectors_are_the_public_ones():
    packed = gzip.decompress((HERE / "coinjecture_v1_public.json.gz").read_bytes())
    assert packed == (SHARED / "vectors" / "coinjecture_v1_public.json").read_bytes()
    assert SHIPPED.resolve() == (ROOT / "tests" / "regressions").resolve()


def test_plugin_from_the_source_tree(tmp_path):
    """The same suite without a wheel: the plugin loaded with -p from this tree."""
    project = scratch_project(tmp_path / "project")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("BROKEN_TWIN", None)
    from importlib.metadata import entry_points
    installed = any(e.value.startswith("parity.pytest_plugin")
                    for e in entry_points(group="pytest11"))
    load = [] if installed else ["-p", "parity.pytest_plugin"]  # an install registers it
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", *load,
                          "--parity-refactored", "kernels.jit"], cwd=project,
                         capture_output=True, text=True, timeout=900, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "16 passed" in run.stdout


@pytest.fixture(scope="session")
def plugin_venv(tmp_path_factory):
    """A fresh virtual environment with parity installed from a wheel built from a copy
    of the tracked tree (so nothing is written into this one)."""
    base = tmp_path_factory.mktemp("plugin")
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                             check=True).stdout.decode().split("\0")
    src = base / "src"
    for name in filter(None, tracked):
        dst = src / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if (ROOT / name).is_symlink():
            dst.symlink_to(os.readlink(ROOT / name))
        elif (ROOT / name).is_file():
            shutil.copy2(ROOT / name, dst)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(src), "-w",
                    str(base / "wheel")], check=True, timeout=900)
    (wheel,) = (base / "wheel").glob("parity-*.whl")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    subprocess.run([python, "-m", "pip", "install", "-q", f"parity[testing] @ {wheel.as_uri()}",
                    "pytest"], check=True, timeout=1800)
    return python


@pytest.mark.slow
def test_plugin_in_a_fresh_venv(plugin_venv, tmp_path):
    project = scratch_project(tmp_path / "project")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "BROKEN_TWIN")}
    where = subprocess.run([plugin_venv, "-c", "import parity; print(parity.__file__)"],
                           cwd=project, capture_output=True, text=True, env=env, check=True)
    assert "site-packages" in where.stdout  # the installed wheel, not this tree
    good = pytest_in(project, plugin_venv, "kernels.jit", env)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "16 passed" in good.stdout  # the suite (15) and the project's own test
    bad = pytest_in(project, plugin_venv, "planted_twin", env)
    out = bad.stdout
    assert bad.returncode == 1, out + bad.stderr
    assert "FAILED" in out and "test_regression_case[merkle_root-42808d2b]" in out
    assert "merkle_root: the refactored twin differs on golden merkle" in out
    assert "minimal case merkle_root-42808d2b" in out
    assert "test_my_twin_hashes_like_legacy PASSED" not in out and " passed" in out
