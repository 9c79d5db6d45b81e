"""Output paths that never destroy what parity did not write.

Rules, for every command that takes an output path:

- ``/``, the home directory, the project root and the working directory (and any
  directory above them) are refused outright.
- A directory parity creates carries a marker file (:data:`MARKER`). A fresh run
  takes a directory that does not exist or is empty; an existing non-empty one is
  refused unless it carries the marker and ``--force`` was given. ``--force`` then
  removes only the entries parity writes there (names it knows); anything else in
  the directory is left alone and makes the command refuse.
- The outputs of one command are distinct paths, none inside another (compared with
  symbolic links followed): refused before any work otherwise.
- A file is replaced only when it carries parity's signature for its kind and
  ``--force`` was given. New files are linked into place (never clobbering a file
  that appeared meanwhile); every write goes through a unique temporary file in
  the same directory, fsynced, then renamed.
"""
from __future__ import annotations

import contextlib
import fnmatch
import itertools
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from parity.errors import ParityError

MARKER = ".parity-output"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _protected() -> list[Path]:
    out = [Path("/"), PROJECT_ROOT, Path.cwd().resolve()]
    with contextlib.suppress(RuntimeError, KeyError):
        out.append(Path.home().resolve())
    return out


def refuse_dangerous(path: Path, what: str) -> Path:
    """``path`` resolved; refuses ``/``, home, the project root, the working directory
    and their ancestors."""
    resolved = path.expanduser().resolve()
    for p in _protected():
        if resolved == p or resolved in p.parents:
            raise ParityError(f"{what} {path}: refusing to use {resolved} as an output "
                              f"directory (it is or contains {p})")
    return resolved


def _where(given: str | Path) -> Path:
    """``given`` as the file system will see it: symbolic links followed (a path that
    does not exist yet resolves through its parent; a link loop is left as it is, for
    the write to report)."""
    return Path(os.path.realpath(Path(given).expanduser()))


def _same_file(a: Path, b: Path) -> bool:
    """Two existing paths naming one file (a hard link)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # either does not exist (yet)
        return False


def refuse_overlaps(outputs: Sequence[tuple[str, str | Path | None]]) -> None:
    """Refuse outputs (option, path; ``None``: not given) that are one path, however
    written (``./r.json``, ``r.json``, a symbolic link to it), or one inside another (a
    file inside the run directory): one would overwrite or block the other after the
    run. Called before any work; writes nothing."""
    given = [(opt, path, _where(path)) for opt, path in outputs if path is not None]
    for (opt_a, path_a, a), (opt_b, path_b, b) in itertools.permutations(given, 2):
        if a == b or _same_file(a, b):
            raise ParityError(f"{opt_a} {path_a} and {opt_b} {path_b} are the same path "
                              f"({a}): give each output its own path")
        if b in a.parents:
            raise ParityError(f"{opt_a} {path_a} is inside {opt_b} {path_b} ({b}): give "
                              "each output its own path")


def usual_mode(path: Path) -> None:
    """Give ``path`` the mode plain ``open``/``mkdir`` would under the umask (temporary
    files and directories start private: 0600/0700)."""
    mask = os.umask(0o022)
    os.umask(mask)
    os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~mask)


def fsync_path(path: Path) -> None:
    """fsync a file or a directory (after a rename into it) by path."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_marker(directory: Path) -> dict | None:
    """The marker's content, or None when the directory carries none."""
    try:
        data = json.loads((directory / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("tool") == "parity" else None


def write_marker(directory: Path, kind: str) -> None:
    atomic_write_text(directory / MARKER, json.dumps(
        {"tool": "parity", "kind": kind, "created": time.time(), "pid": os.getpid()}) + "\n")


class OutputDir:
    """A directory parity writes: ``kind`` names it in the marker, ``owned`` lists the
    glob patterns of the entries parity writes there (what ``--force`` may remove)."""

    def __init__(self, path: str | Path, kind: str, owned: Sequence[str], what: str) -> None:
        self.given = Path(path)
        self.kind = kind
        self.owned = tuple(owned) + (MARKER,)
        self.what = what

    def _foreign(self, directory: Path) -> list[str]:
        return sorted(e.name for e in directory.iterdir()
                      if not any(fnmatch.fnmatchcase(e.name, pat) for pat in self.owned))

    def check(self, force: bool) -> Path:
        """Refuse now (exit 2) what :meth:`prepare` would refuse; returns the path."""
        path = refuse_dangerous(self.given, self.what)
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            raise ParityError(f"{self.what} {self.given}: exists and is not a directory")
        if not path.exists() or not any(path.iterdir()):
            return path
        if read_marker(path) is None:
            raise ParityError(f"{self.what} {self.given}: exists, is not empty and was not "
                              f"written by parity (no {MARKER}); refusing to touch it")
        if not force:
            raise ParityError(f"{self.what} {self.given}: holds earlier parity output; "
                              "use --force to replace it")
        foreign = self._foreign(path)
        if foreign:
            raise ParityError(f"{self.what} {self.given}: holds files parity did not write "
                              f"({', '.join(foreign[:5])}); move them away first")
        return path

    def prepare(self, force: bool) -> Path:
        """Create (or, with ``force``, clear what parity wrote in) the directory and mark it."""
        path = self.check(force)
        if path.exists():
            clear_owned(path, self.owned)
        path.mkdir(parents=True, exist_ok=True)
        write_marker(path, self.kind)
        return path

    def adopt(self, built: Path, force: bool) -> Path:
        """Move a complete directory ``built`` (a sibling made by :func:`staging_dir`) into
        place, replacing parity's earlier output there when ``force``."""
        path = self.check(force)
        write_marker(built, self.kind)
        if path.exists():
            clear_owned(path, self.owned)
            path.rmdir()  # empty now: check() refused anything foreign
        os.rename(built, path)
        fsync_path(path.parent)
        return path


def clear_owned(directory: Path, patterns: Sequence[str]) -> None:
    """Remove the entries of ``directory`` that match ``patterns`` (files, or directories
    holding only matching files); nothing else."""
    for entry in directory.iterdir():
        if not any(fnmatch.fnmatchcase(entry.name, pat) for pat in patterns):
            continue
        if entry.is_dir() and not entry.is_symlink():
            clear_owned(entry, ("*",) if entry.name != MARKER else patterns)
            entry.rmdir()
        else:
            entry.unlink()


@contextlib.contextmanager
def staging_dir(target: str | Path) -> Iterator[Path]:
    """A fresh directory beside ``target``, removed (it and only it) if the block fails."""
    target = Path(target).expanduser().resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".parity-tmp",
                                dir=target.parent))
    usual_mode(tmp)
    try:
        yield tmp
    except BaseException:
        if tmp.exists():
            clear_owned(tmp, ("*",))
            tmp.rmdir()
        raise


# ---- files ---------------------------------------------------------------------------

def _temp_beside(path: Path) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    return Path(name)


def _install(tmp: Path, path: Path, replace: bool,
             ours: Callable[[Path], bool] | None = None) -> None:
    if replace and ours is not None:  # checked when the write began: is it still ours?
        if not os.path.lexists(path):
            replace = False  # removed meanwhile: linked, as a new file
        elif path.is_symlink() or path.is_dir() or not ours(path):
            raise ParityError(f"{path}: changed while parity was writing it (no longer "
                              "parity's output); left alone (nothing written)")
    if replace:
        os.replace(tmp, path)
    else:
        try:
            os.link(tmp, path)  # never clobbers a file that appeared meanwhile
        except FileExistsError:
            raise ParityError(f"{path}: appeared while parity was writing it; left alone "
                              "(nothing written)") from None
        finally:
            tmp.unlink()
    fsync_path(path.parent)


@contextlib.contextmanager
def staged_file(path: str | Path, *, replace: bool = True,
                ours: Callable[[Path], bool] | None = None) -> Iterator[Path]:
    """A unique temporary file beside ``path`` to write during the block (a file written
    piece by piece); when the block ends normally it is fsynced and renamed into place,
    otherwise only it is removed. With ``replace=False`` an existing ``path`` is never
    overwritten; with ``ours``, one it no longer accepts (replaced meanwhile) neither."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_beside(path)
    try:
        yield tmp
        usual_mode(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        _install(tmp, path, replace, ours)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write(path: str | Path, write: Callable[[Path], object], *, replace: bool = True,
                 ours: Callable[[Path], bool] | None = None) -> None:
    """Call ``write(tmp)`` on a unique temporary file beside ``path``, fsync it and rename
    it into place; on failure only the temporary file is removed. With ``replace=False``
    an existing ``path`` is never overwritten."""
    with staged_file(path, replace=replace, ours=ours) as tmp:
        write(tmp)


def atomic_write_text(path: str | Path, text: str, *, replace: bool = True) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), replace=replace)


class OutputFile:
    """A file parity writes. ``is_ours(path)`` recognizes parity's signature for this kind
    of file; an existing file is replaced only when it is ours and ``force`` was given."""

    def __init__(self, path: str | Path, what: str, is_ours: Callable[[Path], bool]) -> None:
        self.path = Path(path).expanduser()
        self.what = what
        self.is_ours = is_ours

    def check(self, force: bool) -> bool:
        """Refuse now what :meth:`write` would refuse; returns whether it replaces a file."""
        p = self.path
        if p.is_dir():
            raise ParityError(f"{self.what} {p}: is a directory")
        if p.is_symlink():
            raise ParityError(f"{self.what} {p}: is a symbolic link; refusing to write through it")
        if not p.exists():
            if p.parent.exists() and not p.parent.is_dir():
                raise ParityError(f"{self.what} {p}: {p.parent} is not a directory")
            return False
        if not self.is_ours(p):
            raise ParityError(f"{self.what} {p}: exists and was not written by parity; "
                              "refusing to overwrite it")
        if not force:
            raise ParityError(f"{self.what} {p}: exists (earlier parity output); use --force "
                              "to replace it")
        return True

    def write(self, force: bool, write: Callable[[Path], object]) -> None:
        atomic_write(self.path, write, replace=self.check(force), ours=self.is_ours)

    def staged(self, force: bool) -> contextlib.AbstractContextManager[Path]:
        """:func:`staged_file` for this output, refused now as :meth:`write` would."""
        return staged_file(self.path, replace=self.check(force), ours=self.is_ours)


# ---- signatures of parity's files --------------------------------------------------------

def json_has(key: str, value: Any) -> Callable[[Path], bool]:
    """A JSON file, or a JSONL file whose first line, is an object with ``key == value``."""
    def check(path: Path) -> bool:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read(64 << 20)
        except (OSError, UnicodeDecodeError):
            return False
        for candidate in (text, text.split("\n", 1)[0]):
            try:
                obj = json.loads(candidate)
            except (ValueError, RecursionError):
                continue
            return isinstance(obj, dict) and obj.get(key) == value
        return False
    return check


def text_starts_with(prefix: str) -> Callable[[Path], bool]:
    def check(path: Path) -> bool:
        try:
            with open(path, "rb") as f:
                return f.read(len(prefix.encode())) == prefix.encode()
        except OSError:
            return False
    return check


PARQUET_KEY = b"parity.output"


def parquet_tagged(tag: str) -> Callable[[Path], bool]:
    """A Parquet file whose schema metadata carries ``parity.output = tag``."""
    def check(path: Path) -> bool:
        import pyarrow as pa
        import pyarrow.parquet as pq
        try:
            meta = pq.read_schema(path).metadata or {}
        except (OSError, pa.ArrowException):
            return False
        return meta.get(PARQUET_KEY) == tag.encode()
    return check

