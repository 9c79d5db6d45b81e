"""Shared fixtures: the vectors in ../shared and hypothesis profiles."""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from tests import profiles  # noqa: F401  (registers and loads the hypothesis profiles)

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("PARITY_SHARED", ROOT.parent / "shared"))


def _load(name: str) -> dict:
    path = SHARED / "vectors" / name
    if not path.exists():
        pytest.fail(f"missing conformance vectors: {path} (set PARITY_SHARED)")
    return json.loads(path.read_text())


@pytest.fixture(scope="session")
def public_vectors() -> dict:
    return _load("coinjecture_v1_public.json")


@pytest.fixture(scope="session")
def blake3_vectors() -> dict:
    return _load("blake3_test_vectors.json")


@contextlib.contextmanager
def read_only(path: Path):
    """Make directory ``path`` (and everything below it) read-only for this process, also
    as root: a read-only bind mount when running as root, else permission bits."""
    if os.geteuid() == 0:
        subprocess.run(["mount", "--bind", str(path), str(path)], check=True)
        try:
            subprocess.run(["mount", "-o", "remount,ro,bind", str(path)], check=True)
            yield path
        finally:
            if subprocess.run(["umount", str(path)]).returncode:
                subprocess.run(["umount", "-l", str(path)], check=True)
    else:
        path.chmod(0o500)
        try:
            yield path
        finally:
            path.chmod(0o700)


@pytest.fixture()
def readonly():
    """The :func:`read_only` context manager, for tests."""
    return read_only


def public_chain(vectors: dict) -> tuple[dict, list, tuple | None]:
    """The public conformance chain: (its vector entry, its blocks, its anchor)."""
    from kernels.constants import Block
    c = vectors["chain"]
    blocks = [Block(bytes.fromhex(b["header"]), [bytes.fromhex(t) for t in b["txids"]],
                    b["numbers"], b["target"], b["indices"]) for b in c["blocks"]]
    a = c["anchor"]
    anchor = (a["height"], bytes.fromhex(a["hash"]), a["timestamp"]) if a else None
    return c, blocks, anchor
