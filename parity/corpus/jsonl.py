"""Human-readable JSONL form of a corpus, for hand-written edge cases.

Line 1: ``{"corpus": {"now": ..., "difficulty_target": "<hex>", "anchor": {...} | null}}``.
Every other line is one block::

    {"header": {"version": 1, "height": 42, "prev_hash": "<hex>", ...,
                "work_score": 1.5, "solution_quality": "7ff8000000000001"},
     "txids": ["<hex>", ...], "numbers": [...], "target": 7, "indices": [...]}

Floats are JSON numbers, or 16 hex digits of their IEEE-754 bits (export uses the
bits form for NaN and infinities so payloads survive). Bytes are lowercase hex.
"""
from __future__ import annotations

import json
import math
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path


from kernels import constants as C
from kernels.constants import Block
from kernels.legacy import decode_header, encode_header
from parity.corpus.manifest import parse_manifest
from parity.corpus.reader import open_corpus
from parity.corpus.shard import from_blocks
from parity.corpus.writer import CorpusWriter
from parity.errors import ParityError

BATCH = 10_000
_RANGES = {"u32": (0, 2**32 - 1), "u64": (0, C.U64_MAX), "i64": (C.I64_MIN, C.I64_MAX)}


def _float_out(x: float) -> float | str:
    if math.isfinite(x):
        return x
    return struct.pack(">d", x).hex()


def _float_in(value: object, where: str) -> float:
    if isinstance(value, str):
        if len(value) != 16:
            raise ValueError(f"{where}: a float bit pattern needs 16 hex digits, got {value!r}")
        try:
            return struct.unpack(">d", bytes.fromhex(value))[0]
        except ValueError:
            raise ValueError(f"{where}: not hex: {value!r}") from None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise ValueError(f"{where}: expected a number or 16 hex digits, got {value!r}")


def _hex32(value: object, where: str) -> bytes:
    if not isinstance(value, str) or len(value) != 64:
        raise ValueError(f"{where}: expected 64 hex digits, got {value!r}")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise ValueError(f"{where}: not hex: {value!r}") from None


def _int(value: object, kind: str, where: str) -> int:
    lo, hi = _RANGES[kind]
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{where}: expected an integer, got {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{where}: {value} is outside the {kind} range [{lo}, {hi}]")
    return value


def block_to_json(block: Block) -> dict:
    fields = decode_header(block.header)
    header = {}
    for name, _off, _size, kind in C.HEADER_FIELDS:
        v = fields[name]
        header[name] = v.hex() if kind == "b32" else _float_out(v) if kind == "f64" else v
    return {"header": header, "txids": [bytes(t).hex() for t in block.txids],
            "numbers": list(block.numbers), "target": block.target,
            "indices": list(block.indices)}


def block_from_json(obj: object) -> Block:
    if not isinstance(obj, dict):
        raise ValueError("a block line must be a JSON object")
    for key in ("header", "txids", "numbers", "target", "indices"):
        if key not in obj:
            raise ValueError(f"missing {key!r}")
    raw = obj["header"]
    if not isinstance(raw, dict):
        raise ValueError("header must be an object of named fields")
    unknown = set(raw) - set(C.FIELD_NAMES)
    if unknown:
        raise ValueError(f"unknown header fields {sorted(unknown)}")
    fields: dict[str, object] = {}
    for name, _off, _size, kind in C.HEADER_FIELDS:
        if name not in raw:
            raise ValueError(f"header.{name} is missing")
        where = f"header.{name}"
        if kind == "b32":
            fields[name] = _hex32(raw[name], where)
        elif kind == "f64":
            fields[name] = _float_in(raw[name], where)
        else:
            fields[name] = _int(raw[name], kind, where)
    for key in ("txids", "numbers", "indices"):
        if not isinstance(obj[key], list):
            raise ValueError(f"{key} must be a list")
    txids = [_hex32(t, f"txids[{i}]") for i, t in enumerate(obj["txids"])]
    numbers = [_int(x, "i64", f"numbers[{i}]") for i, x in enumerate(obj["numbers"])]
    indices = [_int(x, "u64", f"indices[{i}]") for i, x in enumerate(obj["indices"])]
    return Block(encode_header(fields), txids, numbers, _int(obj["target"], "i64", "target"),
                 indices)


def _lines(path: Path) -> Iterator[tuple[int, object]]:
    try:
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    yield number, json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ParityError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
    except OSError as exc:
        raise ParityError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ParityError(f"{path}: not UTF-8 text") from None


def import_jsonl(src: str | Path, out: str | Path, *, rows_per_file: int = 100_000,
                 force: bool = False) -> int:
    """JSONL -> corpus. Returns the number of blocks written."""
    src = Path(src)
    lines = _lines(src)
    first = next(lines, None)
    if first is None or not isinstance(first[1], dict) or "corpus" not in first[1]:
        raise ParityError(f"{src}:1: the first line must be {{\"corpus\": {{now, "
                          f"difficulty_target, anchor}}}}")
    meta = first[1]["corpus"]
    try:
        manifest = parse_manifest({"format": "parity-corpus", "version": 1, "blocks": 0,
                                   "files": [{"path": "x", "rows": 0, "blake3": "0" * 64}],
                                   **(meta if isinstance(meta, dict) else {})})
    except ValueError as exc:
        raise ParityError(f"{src}:{first[0]}: {exc}") from None
    out = Path(out)
    if (out / "manifest.json").exists() and not force:
        raise ParityError(f"{out}: a corpus already exists there (use --force)")
    tmp = out.with_name(out.name + ".partial")  # renamed into place only when complete
    shutil.rmtree(tmp, ignore_errors=True)
    blocks: list[Block] = []
    total = 0
    writer = CorpusWriter(tmp, now=manifest.now, difficulty_target=manifest.difficulty_target,
                          anchor=manifest.anchor, rows_per_file=rows_per_file, overwrite=force)
    for number, obj in lines:
        try:
            blocks.append(block_from_json(obj))
        except ValueError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise ParityError(f"{src}:{number}: {exc}") from None
        if len(blocks) == BATCH:
            writer.append(from_blocks(blocks))
            total += len(blocks)
            blocks = []
    if blocks:
        writer.append(from_blocks(blocks))
        total += len(blocks)
    writer.close()
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return total


def export_jsonl(corpus: str | Path, dst: str | Path) -> int:
    """Corpus -> JSONL. Returns the number of blocks written."""
    c = open_corpus(corpus)
    m = c.manifest
    anchor = None
    if m.anchor is not None:
        anchor = {"height": m.anchor[0], "hash": m.anchor[1].hex(), "timestamp": m.anchor[2]}
    count = 0
    with open(dst, "w", encoding="utf-8") as f:
        f.write(json.dumps({"corpus": {"now": m.now, "difficulty_target": m.difficulty_target.hex(),
                                       "anchor": anchor}}) + "\n")
        for shard in c.shards():
            for i in range(len(shard)):
                f.write(json.dumps(block_to_json(shard.block(i))) + "\n")
                count += 1
    return count


