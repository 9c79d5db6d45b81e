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
def _read_only(path: Path):
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
    """The :func:`_read_only` context manager, for tests."""
    return _read_only


def public_chain(vectors: dict) -> tuple[dict, list, tuple | None]:
    """The public conformance chain: (its vector entry, its blocks, its anchor)."""
    from kernels.constants import Block
    c = vectors["chain"]
    blocks = [Block(bytes.fromhex(b["header"]), [bytes.fromhex(t) for t in b["txids"]],
                    b["numbers"], b["target"], b["indices"]) for b in c["blocks"]]
    a = c["anchor"]
    anchor = (a["height"], bytes.fromhex(a["hash"]), a["timestamp"]) if a else None
    return c, blocks, anchor


CHAIN_SHARD = 100  # the public chain's 300 blocks in 3 shards


@pytest.fixture(scope="session")
def chain(public_vectors, tmp_path_factory):
    """The public conformance chain as a corpus in shards of CHAIN_SHARD blocks: (corpus,
    each block's expected status, each block's height)."""
    import numpy as np

    from kernels import constants as C
    from parity.corpus.jsonl import block_to_json, import_jsonl
    c, blocks, _ = public_chain(public_vectors)
    tmp = tmp_path_factory.mktemp("chain")
    lines = [json.dumps({"corpus": {"now": c["now"], "difficulty_target": c["difficulty_target"],
                                    "anchor": c["anchor"]}})]
    lines += [json.dumps(block_to_json(b)) for b in blocks]
    (tmp / "chain.jsonl").write_text("\n".join(lines) + "\n")
    import_jsonl(tmp / "chain.jsonl", tmp / "chain", shard_size=CHAIN_SHARD)
    heights = [int(np.frombuffer(b.header, "<u8", 1, C.OFF_HEIGHT)[0]) for b in blocks]
    return tmp / "chain", [b["expect"]["status"] for b in c["blocks"]], heights


def shadow(tmp_path, corpus, *args, name="run"):
    """``parity shadow`` in-process: (exit code, JSON report or None)."""
    report = tmp_path / f"{name}.json"
    from parity.cli import main
    code = main(["shadow", str(corpus), "--legacy", "kernels.legacy", "--quiet", "--run-dir",
                 str(tmp_path / name), "--report", str(report), *args])
    return code, (json.loads(report.read_text()) if report.exists() else None)
