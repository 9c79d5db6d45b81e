"""``manifest.json`` of SPEC section 6: parsing with precise errors, and writing."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from kernels.constants import I64_MAX, I64_MIN, U64_MAX, Parent
from parity.errors import CorpusError

MANIFEST = "manifest.json"
FORMAT = "parity-corpus"
VERSION = 1
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass
class FileEntry:
    path: str
    rows: int
    blake3: str


@dataclass
class Manifest:
    blocks: int
    now: int
    difficulty_target: bytes
    anchor: Parent | None
    files: list[FileEntry] = field(default_factory=list)

    def to_json(self) -> dict:
        anchor = None
        if self.anchor is not None:
            h, hsh, ts = self.anchor
            anchor = {"height": h, "hash": hsh.hex(), "timestamp": ts}
        return {"format": FORMAT, "version": VERSION, "blocks": self.blocks, "now": self.now,
                "difficulty_target": self.difficulty_target.hex(), "anchor": anchor,
                "files": [{"path": f.path, "rows": f.rows, "blake3": f.blake3} for f in self.files]}

    def write(self, directory: Path) -> None:
        tmp = directory / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        tmp.replace(directory / MANIFEST)


def _int(obj: dict, key: str, where: str, lo: int, hi: int) -> int:
    value = obj.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{where}{key} must be an integer, got {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{where}{key} = {value} is outside [{lo}, {hi}]")
    return value


def _hex32(obj: dict, key: str, where: str) -> bytes:
    value = obj.get(key)
    if not isinstance(value, str) or not _HEX64.match(value):
        raise ValueError(f"{where}{key} must be 64 lowercase hex digits, got {value!r}")
    return bytes.fromhex(value)


def parse_manifest(data: object) -> Manifest:
    """Check every field of a decoded manifest; ValueError names the first bad one."""
    if not isinstance(data, dict):
        raise ValueError("the manifest must be a JSON object")
    if data.get("format") != FORMAT:
        raise ValueError(f"format must be {FORMAT!r}, got {data.get('format')!r}")
    if data.get("version") != VERSION:
        raise ValueError(f"unsupported version {data.get('version')!r} (this reader knows {VERSION})")
    blocks = _int(data, "blocks", "", 0, I64_MAX)
    now = _int(data, "now", "", I64_MIN, I64_MAX)
    target = _hex32(data, "difficulty_target", "")
    raw_anchor = data.get("anchor", "missing")
    if raw_anchor == "missing":
        raise ValueError("anchor is missing (use null for a corpus without one)")
    anchor = None
    if raw_anchor is not None:
        if not isinstance(raw_anchor, dict):
            raise ValueError("anchor must be an object or null")
        anchor = (_int(raw_anchor, "height", "anchor.", 0, U64_MAX),
                  _hex32(raw_anchor, "hash", "anchor."),
                  _int(raw_anchor, "timestamp", "anchor.", I64_MIN, I64_MAX))
    files = data.get("files")
    if not isinstance(files, list) or not files:
        raise ValueError("files must be a non-empty list")
    entries = []
    for i, f in enumerate(files):
        if not isinstance(f, dict):
            raise ValueError(f"files[{i}] must be an object")
        path = f.get("path")
        if not isinstance(path, str) or not path or Path(path).is_absolute() or ".." in Path(path).parts:
            raise ValueError(f"files[{i}].path must be a relative path inside the corpus, got {path!r}")
        blake = f.get("blake3")
        if not isinstance(blake, str) or not _HEX64.match(blake):
            raise ValueError(f"files[{i}].blake3 must be 64 lowercase hex digits, got {blake!r}")
        entries.append(FileEntry(path, _int(f, "rows", f"files[{i}].", 0, I64_MAX), blake))
    return Manifest(blocks, now, target, anchor, entries)


def read_manifest(directory: Path) -> Manifest:
    path = directory / MANIFEST
    if not directory.is_dir():
        raise CorpusError(directory, "not a corpus directory (it does not exist or is a file)")
    if not path.is_file():
        raise CorpusError(path, "missing manifest")
    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorpusError(path, f"malformed manifest: not valid JSON ({exc})") from None
    try:
        return parse_manifest(data)
    except ValueError as exc:
        raise CorpusError(path, f"malformed manifest: {exc}") from None
