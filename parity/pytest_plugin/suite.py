"""The differential suite the plugin runs against ``--parity-refactored``: the public
golden vectors, hypothesis properties (refactored vs legacy) and the regression cases.
A difference found on a block is shrunk (:mod:`parity.shrink`) and the failure prints
the minimal case, ready to save under ``tests/regressions/``."""
from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernels import constants as C
from kernels.constants import Block
from parity import strategies as ps
from parity.corpus.manifest import Manifest
from parity.corpus.shard import from_blocks
from parity.errors import ParityError
from parity.functions import REGISTRY
from parity.pytest_plugin import HERE
from parity.shrink import Case, Shrinker, check_case, load_case
from parity.shrink.case import to_lines

NOW = 1_767_225_600
PROPERTY = settings(max_examples=40, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="session")
def golden() -> dict:
    return json.loads(gzip.decompress((HERE / "coinjecture_v1_public.json.gz").read_bytes()))


def _fail_minimal(start: Case, legacy: Any, refactored: Any, where: str) -> None:
    """Fail naming the function and the minimal case the difference shrinks to."""
    try:
        case = Shrinker(start.function, legacy, refactored).shrink(start).case
    except ParityError as exc:  # the block alone does not reproduce it
        pytest.fail(f"{start.function}: the refactored twin differs on {where} ({exc})",
                    pytrace=False)
    text = "\n".join(json.dumps(line) for line in to_lines(case))
    pytest.fail(f"{case.function}: the refactored twin differs on {where}; minimal case "
                f"{case.name} (save as tests/regressions/{case.name}.jsonl):\n{text}",
                pytrace=False)


def _context(blocks: list[Block], i: int, anchor: Any, history: tuple[bytes, ...]
             ) -> tuple[Any, tuple[bytes, ...]]:
    """Block ``i``'s parent and the commitments seen before it."""
    parent = blocks[i - 1].header if i else anchor
    seen = tuple(b.header[C.OFF_COMMITMENT_HASH:C.OFF_COMMITMENT_HASH + 32] for b in blocks[:i])
    return parent, history + seen


def compare_blocks(function: str, blocks: list[Block], legacy: Any, refactored: Any,
                   expected: list[Any] | None = None, anchor: Any = None,
                   now: int = NOW, target: bytes = b"\x0f" + b"\xff" * 31,
                   where: str = "generated blocks") -> None:
    """``function`` over ``blocks`` as one batch: refactored against ``expected`` (the
    ``describe`` form of each output) or else against legacy, shrinking a difference."""
    fn = REGISTRY[function]
    shard, m = from_blocks(blocks), Manifest(len(blocks), now, target, None)

    def run(twin: Any) -> list[Any]:
        replay = twin.new_replay_state() if fn.chain_state else None
        out = np.asarray(fn.call(twin, shard, m, anchor, replay))
        if out.shape[:1] != (len(blocks),):
            pytest.fail(f"{function}: the refactored twin returned shape {out.shape} for "
                        f"{len(blocks)} blocks of {where}", pytrace=False)
        return [r.tobytes().hex() if out.dtype == np.uint8 else r.item() for r in out]
    want = expected if expected is not None else run(legacy)
    got = run(refactored)
    for i, (a, b) in enumerate(zip(want, got)):
        if a != b:
            parent, history = _context(blocks, i, anchor, ())
            start = Case(function, blocks[i], parent if "parent" in fn.parts else None,
                         history if "replay" in fn.parts else (), now, target)
            _fail_minimal(start, legacy, refactored, f"{where}[{i}]")


def _chain(golden: dict) -> tuple[dict, list[Block], Any]:
    c = golden["chain"]
    blocks = [Block(bytes.fromhex(b["header"]), [bytes.fromhex(t) for t in b["txids"]],
                    b["numbers"], b["target"], b["indices"]) for b in c["blocks"]]
    a = c["anchor"]
    return c, blocks, (a["height"], bytes.fromhex(a["hash"]), a["timestamp"]) if a else None


def _bare(header: bytes = bytes(C.HEADER_SIZE), txids: list[bytes] | None = None) -> Block:
    return Block(header, txids or [], [], 0, [])


def test_golden_header_hashes(golden: dict, legacy_twin: Any, refactored_twin: Any) -> None:
    hs = golden["headers"]
    compare_blocks("header_hash", [_bare(bytes.fromhex(h["header"])) for h in hs],
                   legacy_twin, refactored_twin, [h["hash"] for h in hs],
                   where="golden headers")


def test_golden_merkle_roots(golden: dict, legacy_twin: Any, refactored_twin: Any) -> None:
    cases = golden["merkle"]
    compare_blocks("merkle_root", [_bare(txids=[bytes.fromhex(t) for t in c["txids"]])
                                   for c in cases],
                   legacy_twin, refactored_twin, [c["root"] for c in cases],
                   where="golden merkle")


@pytest.mark.parametrize("function,key", [("header_hash", "header_hash"),
                                          ("merkle_root", "tx_root"), ("validate", "status"),
                                          ("commitment", None)])
def test_golden_chain(golden: dict, legacy_twin: Any, refactored_twin: Any, function: str,
                      key: str | None) -> None:
    c, blocks, anchor = _chain(golden)
    compare_blocks(function, blocks, legacy_twin, refactored_twin,
                   [b["expect"][key] for b in c["blocks"]] if key else None, anchor, c["now"],
                   bytes.fromhex(c["difficulty_target"]), where="golden chain")


@PROPERTY
@given(st.lists(ps.headers(), min_size=1, max_size=16))
def test_property_header_hashes(legacy_twin: Any, refactored_twin: Any,
                                headers: list[bytes]) -> None:
    compare_blocks("header_hash", [_bare(h) for h in headers], legacy_twin, refactored_twin)


@PROPERTY
@given(st.lists(ps.txid_lists(), min_size=1, max_size=8))
def test_property_merkle_roots(legacy_twin: Any, refactored_twin: Any,
                               lists: list[list[bytes]]) -> None:
    compare_blocks("merkle_root", [_bare(txids=t) for t in lists], legacy_twin, refactored_twin)


@PROPERTY
@given(ps.chains(), st.sampled_from(["validate", "commitment"]))
def test_property_chains(legacy_twin: Any, refactored_twin: Any,
                         chain: tuple[list[Block], Any], function: str) -> None:
    blocks, anchor = chain
    if blocks:
        compare_blocks(function, blocks, legacy_twin, refactored_twin, anchor=anchor)


def test_regression_case(parity_case: Path, legacy_twin: Any, refactored_twin: Any) -> None:
    problem = check_case(load_case(parity_case), legacy_twin, refactored_twin)
    if problem:
        pytest.fail(f"{problem} ({parity_case})", pytrace=False)
