"""A regression case: one block in the chain context it needs, and its JSONL form.

A case file is SPEC section 6 JSONL (``parity corpus import`` reads it as a one-block
corpus), two lines::

    {"corpus": {"now": ..., "difficulty_target": "<hex>", "anchor": {...} | null},
     "written_by": "parity shrink"}
    {"header": {...}, "txids": [...], "numbers": [...], "target": 0, "indices": [...],
     "case": "<function>-<8 hex>", "function": "<registry name>",
     "parent": null | {"anchor": {"height", "hash", "timestamp"}} | {"header": "<552 hex>"},
     "replay": ["<64 hex>", ...],
     "outputs": {"legacy": ..., "refactored": ...}}

The block line is what :func:`parity.corpus.jsonl.block_from_json` reads (the case keys
are extra keys it ignores). ``parent`` and ``replay`` are the chain context: the parent
as the twins get it (none, the anchor tuple, or the parent's header bytes) and the
commitments the replay state holds. The corpus line's anchor is the parent as an anchor,
so an imported case has the same parent; ``outputs`` are both twins' outcomes at shrink
time (``parity.compare.describe`` form).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from blake3 import blake3

from kernels import constants as C
from kernels.constants import Block, Parent
from kernels.legacy import decode_header, hash_header
from parity.compare import describe
from parity.corpus.jsonl import block_from_json, block_to_json
from parity.corpus.manifest import Manifest, loads
from parity.corpus.shard import from_blocks
from parity.errors import ParityError
from parity.functions import REGISTRY, BatchFunction
from parity.outputs import OutputFile, json_has

WRITTEN_BY = "parity shrink"
ParentValue = Parent | bytes | None


@dataclass(frozen=True)
class Case:
    """One block for one registry function, with its parent and replay history."""

    function: str
    block: Block
    parent: ParentValue = None
    replay: tuple[bytes, ...] = ()
    now: int = 0
    difficulty_target: bytes = b"\xff" * 32
    name: str = ""
    outputs: dict = field(default_factory=dict, compare=False)

    def key(self) -> tuple:
        """Everything the twins see, hashable (for caching and equality)."""
        b = self.block
        return (self.function, b.header, tuple(b.txids), tuple(b.numbers), b.target,
                tuple(b.indices), self.parent, self.replay, self.now, self.difficulty_target)

    def with_block(self, **parts: Any) -> Case:
        return replace(self, block=self.block._replace(**parts))


def outcome(fn: BatchFunction, twin: Any, case: Case) -> Any:
    """One twin's outcome on the case: (dtype, row shape, value) or the exception."""
    shard = from_blocks([case.block])
    m = Manifest(1, case.now, case.difficulty_target, None)
    replay = None
    if fn.chain_state:
        replay = twin.new_replay_state()
        if case.replay:
            replay.update(list(case.replay))
    try:
        out = np.asarray(fn.call(twin, shard, m, case.parent, replay))
    except Exception as exc:  # an exception is an outcome (SPEC section 5)
        return ("exception", describe(exc))
    if out.ndim == 0 or out.shape[0] != 1:
        return ("shape", str(out.dtype), list(out.shape))
    return (str(out.dtype), list(out.shape[1:]), describe(out[0]))


def rendered(out: Any) -> Any:
    """An outcome as stored in a case file: the value, or the exception, or the shape."""
    return out[1] if out[0] == "exception" else out[2] if out[0] != "shape" else \
        {"shape": f"{out[1]}{out[2]}"}


def _anchor(parent: ParentValue) -> dict | None:
    if parent is None:
        return None
    if isinstance(parent, bytes):
        h = decode_header(parent)
        parent = (h["height"], hash_header(parent), h["timestamp"])
    return {"height": parent[0], "hash": bytes(parent[1]).hex(), "timestamp": parent[2]}


def to_lines(case: Case) -> list[dict]:
    """The case's two JSONL lines (corpus line, block line)."""
    parent: dict | None = None
    if isinstance(case.parent, bytes):
        parent = {"header": case.parent.hex()}
    elif case.parent is not None:
        parent = {"anchor": _anchor(case.parent)}
    corpus = {"now": case.now, "difficulty_target": case.difficulty_target.hex(),
              "anchor": _anchor(case.parent)}
    block = {**block_to_json(case.block), "case": case.name, "function": case.function,
             "parent": parent, "replay": [c.hex() for c in case.replay],
             "outputs": case.outputs}
    return [{"corpus": corpus, "written_by": WRITTEN_BY}, block]


def case_name(case: Case) -> str:
    """``<function>-<8 hex>``: a name from the content, so equal cases share a file."""
    body = json.dumps(to_lines(replace(case, name="", outputs={})), sort_keys=True)
    return f"{case.function}-{blake3(body.encode()).hexdigest()[:8]}"


def _parent_from(obj: Any) -> ParentValue:
    if obj is None:
        return None
    if isinstance(obj, dict) and isinstance(obj.get("header"), str):
        raw = bytes.fromhex(obj["header"])
        if len(raw) != C.HEADER_SIZE:
            raise ValueError(f"parent.header must be {C.HEADER_SIZE} bytes")
        return raw
    if isinstance(obj, dict) and isinstance(obj.get("anchor"), dict):
        a = obj["anchor"]
        return (int(a["height"]), bytes.fromhex(a["hash"]), int(a["timestamp"]))
    raise ValueError("parent must be null, {\"header\": hex} or {\"anchor\": {...}}")


def load_case(path: str | Path) -> Case:
    """A case back from its file; ParityError names the file and the reason."""
    path = Path(path)
    try:
        lines: list[Any] = [loads(t) for t in path.read_text(encoding="utf-8").splitlines()
                            if t.strip()]
        if len(lines) != 2 or not all(isinstance(x, dict) for x in lines):
            raise ValueError("a case file holds two JSON objects: the corpus and the block line")
        meta, obj = lines[0].get("corpus"), lines[1]
        if not isinstance(meta, dict):
            raise ValueError("the first line must be {\"corpus\": {...}}")
        if obj.get("function") not in REGISTRY:
            raise ValueError(f"unknown function {obj.get('function')!r}")
        target = bytes.fromhex(meta["difficulty_target"])
        if len(target) != 32:
            raise ValueError("corpus.difficulty_target must be 32 bytes")
        replay = tuple(bytes.fromhex(c) for c in obj.get("replay", []))
        if any(len(c) != 32 for c in replay):
            raise ValueError("replay entries must be 32 bytes")
        return Case(obj["function"], block_from_json(obj), _parent_from(obj.get("parent")),
                    replay, int(meta["now"]), target, str(obj.get("case", path.stem)),
                    obj.get("outputs") or {})
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ParityError(f"{path}: not a parity case ({exc})") from None


def write_case(case: Case, directory: str | Path) -> Path:
    """Write ``<directory>/<case name>.jsonl`` (a parity case there is replaced, anything
    else refused); returns the path."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{case.name}.jsonl"
    text = "".join(json.dumps(line) + "\n" for line in to_lines(case))
    OutputFile(path, "--out", json_has("written_by", WRITTEN_BY)).write(
        True, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return path
