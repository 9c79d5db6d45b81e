"""``manifest.json`` of SPEC section 6: parsing with precise errors, and writing."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from kernels.constants import I64_MAX, I64_MIN, U64_MAX, Parent
from parity.errors import CorpusError
from parity.outputs import atomic_write_text

MANIFEST = "manifest.json"
FORMAT = "parity-corpus"
VERSION = 1
MAX_FILES = 100_000            # file entries a manifest may list
MAX_MANIFEST_BYTES = 32 << 20  # 100,000 entries as written by :meth:`Manifest.write` fit
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def show(value: object, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, safe for deeply nested values."""
    try:
        text = repr(value)
    except RecursionError:
        text = f"<{type(value).__name__} nested too deeply>"
    return text if len(text) <= limit else text[:limit - 3] + "..."


def loads(text: str | bytes) -> object:
    """``json.loads`` whose every failure (bad syntax, deep nesting, a number too long to
    convert) is a ValueError with a one-line reason."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at character {exc.pos})") from None
    except RecursionError:
        raise ValueError("not valid JSON for parity (nested too deeply)") from None
    except ValueError as exc:  # e.g. an integer beyond the int-conversion digit limit
        raise ValueError(f"not valid JSON for parity ({str(exc).splitlines()[0]})") from None


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
        atomic_write_text(directory / MANIFEST, json.dumps(self.to_json(), indent=2) + "\n")


def _int(obj: dict, key: str, where: str, lo: int, hi: int) -> int:
    value = obj.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{where}{key} must be an integer, got {show(value)}")
    if not lo <= value <= hi:
        raise ValueError(f"{where}{key} = {value} is outside [{lo}, {hi}]")
    return value


def _hex32(obj: dict, key: str, where: str) -> bytes:
    value = obj.get(key)
    if not isinstance(value, str) or not _HEX64.match(value):
        raise ValueError(f"{where}{key} must be 64 lowercase hex digits, got {show(value)}")
    return bytes.fromhex(value)


def _relative(path: object) -> bool:
    """A non-empty relative POSIX path naming something below the corpus directory."""
    if not isinstance(path, str) or not path or "\x00" in path:
        return False
    p = PurePosixPath(path)
    return not p.is_absolute() and ".." not in p.parts and p.parts not in ((), (".",))


def parse_manifest(data: object) -> Manifest:
    """Check every field of a decoded manifest; ValueError names the first bad one."""
    if not isinstance(data, dict):
        raise ValueError("the manifest must be a JSON object")
    if data.get("format") != FORMAT:
        raise ValueError(f"format must be {FORMAT!r}, got {show(data.get('format'))}")
    if type(data.get("version")) is not int or data.get("version") != VERSION:
        raise ValueError(f"unsupported version {show(data.get('version'))} "
                         f"(this reader knows {VERSION})")
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
    if len(files) > MAX_FILES:
        raise ValueError(f"files lists {len(files):,} entries, more than this reader takes "
                         f"({MAX_FILES:,})")
    entries = []
    seen: dict[PurePosixPath, int] = {}
    for i, f in enumerate(files):
        if not isinstance(f, dict):
            raise ValueError(f"files[{i}] must be an object")
        path = f.get("path")
        if not isinstance(path, str) or not _relative(path):
            raise ValueError(f"files[{i}].path must be a relative path inside the corpus, "
                             f"got {show(path)}")
        norm = PurePosixPath(path)
        if norm in seen:
            raise ValueError(f"files[{i}].path {show(path)} repeats files[{seen[norm]}]")
        seen[norm] = i
        blake = f.get("blake3")
        if not isinstance(blake, str) or not _HEX64.match(blake):
            raise ValueError(f"files[{i}].blake3 must be 64 lowercase hex digits, "
                             f"got {show(blake)}")
        entries.append(FileEntry(path, _int(f, "rows", f"files[{i}].", 0, I64_MAX), blake))
    return Manifest(blocks, now, target, anchor, entries)


def read_manifest(directory: Path) -> Manifest:
    path = directory / MANIFEST
    if not directory.is_dir():
        raise CorpusError(directory, "not a corpus directory (it does not exist or is a file)")
    if not path.is_file():
        raise CorpusError(path, "missing manifest" if not path.exists()
                          else "missing manifest (not a regular file)")
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_MANIFEST_BYTES + 1)
    except OSError as exc:
        raise CorpusError(path, f"cannot read the manifest ({exc.strerror})") from None
    if len(raw) > MAX_MANIFEST_BYTES:
        raise CorpusError(path, f"malformed manifest: larger than {MAX_MANIFEST_BYTES >> 20} MiB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CorpusError(path, f"malformed manifest: not UTF-8 (byte {exc.start})") from None
    try:
        return parse_manifest(loads(text))
    except ValueError as exc:
        raise CorpusError(path, f"malformed manifest: {exc}") from None
