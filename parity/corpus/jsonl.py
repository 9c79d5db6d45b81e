"""Human-readable JSONL form of a corpus, for hand-written edge cases.

Line 1: ``{"corpus": {"now": ..., "difficulty_target": "<hex>", "anchor": {...} | null}}``
(export adds ``"written_by": "parity corpus export"``, its signature; import ignores it).
Every other line is one block::

    {"header": {"version": 1, "height": 42, "prev_hash": "<hex>", ...,
                "work_score": 1.5, "solution_quality": "7ff8000000000001"},
     "txids": ["<hex>", ...], "numbers": [...], "target": 7, "indices": [...]}

Floats are JSON numbers, or 16 hex digits of their IEEE-754 bits (export uses the
bits form for NaN and infinities so payloads survive). Bytes are lowercase hex.
"""
from __future__ import annotations

import contextlib
import json
import math
import re
import struct
from collections.abc import Generator, Iterator
from pathlib import Path

from kernels import constants as C
from kernels.constants import Block
from kernels.legacy import decode_header, encode_header
from parity.corpus.manifest import loads, parse_manifest, show
from parity.corpus.reader import open_corpus
from parity.corpus.shard import from_blocks
from parity.corpus.writer import CORPUS_OWNED, CorpusWriter, check_rows_per_file
from parity.errors import ParityError
from parity.outputs import OutputDir, OutputFile, json_has, staging_dir, usual_mode

BATCH = 10_000
MAX_LINE = 64 << 20  # bytes; a block of MAX_TRANSACTIONS txids takes under 1 MiB
WRITTEN_BY = "parity corpus export"
_RANGES = {"u32": (0, 2**32 - 1), "u64": (0, C.U64_MAX), "i64": (C.I64_MIN, C.I64_MAX)}
_HEX = {n: re.compile(f"[0-9a-fA-F]{{{n}}}") for n in (16, 64)}


def _float_out(x: float) -> float | str:
    if math.isfinite(x):
        return x
    return struct.pack(">d", x).hex()


def _float_in(value: object, where: str) -> float:
    if isinstance(value, str):
        if len(value) != 16:
            raise ValueError(f"{where}: a float bit pattern needs 16 hex digits, got {show(value)}")
        if not _HEX[16].fullmatch(value):
            raise ValueError(f"{where}: not hex: {show(value)}")
        return struct.unpack(">d", bytes.fromhex(value))[0]
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:
            raise ValueError(f"{where}: {show(value, 30)} is too large for a float") from None
    if isinstance(value, float):
        return value
    raise ValueError(f"{where}: expected a number or 16 hex digits, got {show(value)}")


def _hex32(value: object, where: str) -> bytes:
    if not isinstance(value, str) or len(value) != 64:
        raise ValueError(f"{where}: expected 64 hex digits, got {show(value)}")
    if not _HEX[64].fullmatch(value):
        raise ValueError(f"{where}: not hex: {show(value)}")
    return bytes.fromhex(value)


def _int(value: object, kind: str, where: str) -> int:
    lo, hi = _RANGES[kind]
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{where}: expected an integer, got {show(value)}")
    if not lo <= value <= hi:
        raise ValueError(f"{where}: {show(value, 30)} is outside the {kind} range [{lo}, {hi}]")
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


def _lines(path: Path) -> Generator[tuple[int, object], None, None]:
    """(line number, decoded JSON) of every non-blank line; ParityError names the line."""
    try:
        f = open(path, "rb")
    except OSError as exc:
        raise ParityError(f"{path}: cannot read ({exc.strerror})") from None
    with f:
        number = 0
        while True:
            try:
                raw = f.readline(MAX_LINE + 1)
            except OSError as exc:
                raise ParityError(f"{path}: cannot read ({exc.strerror})") from None
            if not raw:
                return
            number += 1
            if len(raw) > MAX_LINE:
                raise ParityError(f"{path}:{number}: line longer than {MAX_LINE >> 20} MiB")
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ParityError(f"{path}:{number}: not UTF-8 text (byte {exc.start})") from None
            if not text.strip():
                continue
            try:
                yield number, loads(text)
            except ValueError as exc:
                raise ParityError(f"{path}:{number}: {exc}") from None


def _corpus_line(src: Path, lines: Iterator[tuple[int, object]]) -> tuple:
    """The corpus line's (now, difficulty_target, anchor)."""
    first = next(lines, None)
    if first is None or not isinstance(first[1], dict) or "corpus" not in first[1]:
        raise ParityError(f"{src}:{first[0] if first else 1}: the first line must be "
                          f"{{\"corpus\": {{now, difficulty_target, anchor}}}}")
    meta = first[1]["corpus"]
    if not isinstance(meta, dict):
        raise ParityError(f"{src}:{first[0]}: corpus must be an object, got {show(meta)}")
    try:
        m = parse_manifest({"format": "parity-corpus", "version": 1, "blocks": 0,
                            "files": [{"path": "x", "rows": 0, "blake3": "0" * 64}],
                            **{k: meta[k] for k in ("now", "difficulty_target", "anchor")
                               if k in meta}})
    except ValueError as exc:
        raise ParityError(f"{src}:{first[0]}: corpus.{exc}") from None
    return m.now, m.difficulty_target, m.anchor


def import_jsonl(src: str | Path, out: str | Path, *, rows_per_file: int = 100_000,
                 shard_size: int = BATCH, force: bool = False) -> int:
    """JSONL -> corpus, ``shard_size`` blocks a row group (a file boundary splits one).
    Returns the number of blocks written.

    ``out`` is checked first; the corpus is built in a staging directory beside it, moved
    into place when complete, and removed (leaving ``out`` as it was) on any error."""
    src = Path(src)
    check_rows_per_file(rows_per_file)
    if shard_size < 1:
        raise ParityError("--shard-size must be at least 1")
    target = OutputDir(out, "corpus", CORPUS_OWNED, "OUT")
    target.check(force)
    total = 0
    with contextlib.closing(_lines(src)) as lines, staging_dir(out) as tmp:
        now, difficulty_target, anchor = _corpus_line(src, lines)
        writer = CorpusWriter(tmp, now=now, difficulty_target=difficulty_target, anchor=anchor,
                              rows_per_file=rows_per_file)
        blocks: list[Block] = []
        for number, obj in lines:
            try:
                blocks.append(block_from_json(obj))
            except ValueError as exc:
                raise ParityError(f"{src}:{number}: {exc}") from None
            if len(blocks) == shard_size:
                writer.append(from_blocks(blocks))
                total += len(blocks)
                blocks = []
        if blocks:
            writer.append(from_blocks(blocks))
            total += len(blocks)
        writer.close()
        target.adopt(tmp, force)
    return total


def export_jsonl(corpus: str | Path, dst: str | Path, force: bool = False) -> int:
    """Corpus -> JSONL. Returns the number of blocks written.

    The first line carries ``"written_by": "parity corpus export"``; an existing ``dst`` is
    replaced only when it carries that signature and ``force`` is given."""
    target = OutputFile(dst, "--jsonl", json_has("written_by", WRITTEN_BY))
    target.check(force)
    c = open_corpus(corpus)
    m = c.manifest
    anchor = None
    if m.anchor is not None:
        anchor = {"height": m.anchor[0], "hash": m.anchor[1].hex(), "timestamp": m.anchor[2]}
    count = 0

    def write(tmp: Path) -> None:
        nonlocal count
        usual_mode(tmp)
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(json.dumps({"corpus": {"now": m.now, "difficulty_target":
                                           m.difficulty_target.hex(), "anchor": anchor},
                                "written_by": WRITTEN_BY}) + "\n")
            for shard in c.shards():
                for i in range(len(shard)):
                    f.write(json.dumps(block_to_json(shard.block(i))) + "\n")
                    count += 1
    target.write(force, write)
    return count
