"""The durable mode state: SQLite (WAL, FULL sync, busy timeout), one transaction per change.

Every change is decided against the mode read inside its own write transaction, so
changes from several processes serialize and none is lost (SPEC section 5). The
promotion window is rows per process and second, summed over every process that
shares the database; rows dated in the future are ignored. A change that cannot be
made durable raises :class:`~parity.errors.StateError`, and the process then serves
legacy (``degraded``) until the store works again.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from parity import policy
from parity.errors import ParityError, StateError
from parity.modes import Mode, mode_from_env, parse_mode
from parity.policy import PROMOTION_WINDOW_SECONDS, rollback_applies

log = logging.getLogger("parity.state")

DEFAULT_STATE = ".parity/state.db"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS mode (id INTEGER PRIMARY KEY CHECK (id = 1), mode INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY AUTOINCREMENT, time REAL NOT NULL, from_mode TEXT NOT NULL,
    to_mode TEXT NOT NULL, reason TEXT NOT NULL, process TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS window (
    process TEXT NOT NULL, second INTEGER NOT NULL, comparisons INTEGER NOT NULL,
    mismatches INTEGER NOT NULL, PRIMARY KEY (process, second));
"""


def default_state_path() -> str:
    return os.environ.get("PARITY_STATE") or os.environ.get("PARITY_MODE_FILE") or DEFAULT_STATE


def _locate(path: str | Path) -> tuple[Path, Path | None]:
    """The database path and a JSON mode file (version 1 format) to import once."""
    p = Path(path)
    if p.suffix == ".json":
        return p.with_suffix(".db"), p
    return p, p.parent / "mode.json"


def peek(path: str | Path) -> tuple[Path, Mode, str] | None:
    """Read only, creating nothing: None when a state exists at ``path``, else (the
    database path, the mode a new state would start with, where that mode comes from)."""
    db, legacy_json = _locate(path)
    if db.exists():
        return None
    if legacy_json is not None and legacy_json.is_file():
        return db, _import_json(legacy_json)[0], f"{legacy_json}, imported when it is created"
    return db, mode_from_env(), "$CODEC_MODE" if os.environ.get("CODEC_MODE") else "the default"


def _import_json(path: Path) -> tuple[Mode, list[dict]]:
    try:
        data = json.loads(path.read_text())
        mode = parse_mode(data["mode"], str(path))
        history = [h for h in data.get("history", []) if isinstance(h, dict)]
        return mode, history
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
        raise ParityError(f"{path}: unreadable mode state to import ({exc})") from None


class ModeState:
    """The current mode, its history and the promotion window, kept in SQLite at ``path``
    (a ``.json`` path names a version-1 mode file to import; the database sits beside it
    with ``.db``). ``path=None`` keeps everything in memory, for tests and benchmarks."""

    def __init__(self, path: str | Path | None, initial: Mode | None = None,
                 clock: Callable[[], float] = time.time, refresh_every: float = 1.0,
                 fallback: bool = False) -> None:
        self.path: Path | None
        legacy_json: Path | None
        self.path, legacy_json = _locate(path) if path is not None else (None, None)
        self.clock = clock
        self.refresh_every = refresh_every
        self.process = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.listeners: list[Callable[[dict], None]] = []
        self.degraded: str | None = None  # why this process serves legacy regardless
        self._lock = threading.RLock()
        self._pending: dict[int, list[int]] = {}
        self._checked = 0.0
        self._version = -1
        self._recorded = Mode.SHADOW
        self._initial = initial
        self._legacy_json = legacy_json
        try:
            self._db = self._connect()
            self._init()
        except StateError as exc:
            if not fallback:
                raise
            # serve legacy from memory; every change retries the real store first
            log.error("parity: %s; serving legacy until the state store works", exc)
            self._db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            self._rw = True
            self._init()
            self._rw = False
            self.degraded = str(exc)

    # --- the database ------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        """Read-write (WAL) if possible, else read-only (then degraded), else StateError."""
        if self.path is None:  # in memory: nothing survives the process
            self._rw = True
            return sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None,
                                 check_same_thread=False)
            db.execute("PRAGMA busy_timeout = 30000")
            if db.execute("PRAGMA journal_mode = WAL").fetchone()[0].lower() != "wal":
                raise sqlite3.OperationalError("cannot switch to WAL journal mode")
            db.execute("PRAGMA synchronous = FULL")
            self._rw = True
            return db
        except (OSError, sqlite3.Error) as exc:
            why = f"{self.path}: cannot open the mode state for writing ({exc})"
        if not self.path.is_file():
            raise StateError(why)
        try:  # read-only media: the mode can still be read
            db = sqlite3.connect(f"file:{self.path}?mode=ro&immutable=1", uri=True,
                                 isolation_level=None, check_same_thread=False)
            db.execute("SELECT mode FROM mode WHERE id = 1").fetchone()
        except sqlite3.Error as exc:
            raise StateError(f"{why}; reading it failed too ({exc})") from None
        self._rw = False
        self.degraded = why
        return db

    def _reopen(self) -> None:
        """A store that could not be written: try again (the directory may be back)."""
        if self._rw:
            return
        try:
            db = self._connect()
        except StateError:
            return
        if self._rw:
            self._db.close()
            self._db = db
            self._init()
            self.degraded = None
        else:
            db.close()

    @contextmanager
    def _write(self, what: str) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE: writers serialize here)."""
        with self._lock:
            self._reopen()
            if not self._rw:
                raise StateError(f"cannot {what}: {self.degraded}")
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StateError(f"{self.path}: cannot {what} ({exc})") from None
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException as exc:
                try:
                    self._db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                if isinstance(exc, sqlite3.Error):
                    raise StateError(f"{self.path}: cannot {what} ({exc})") from None
                raise

    def _init(self) -> None:
        if not self._rw:
            self._reload()
            return
        initial, legacy_json = self._initial, self._legacy_json
        try:
            with self._write("initialize the mode state") as db:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)",
                           (str(SCHEMA_VERSION),))
                have = db.execute("SELECT mode FROM mode WHERE id = 1").fetchone()
                imported = db.execute("SELECT 1 FROM meta WHERE key = 'imported'").fetchone()
                if have is None and not imported and legacy_json and legacy_json.is_file():
                    mode, history = _import_json(legacy_json)
                    for h in history:
                        db.execute("INSERT INTO history (time, from_mode, to_mode, reason, process)"
                                   " VALUES (?, ?, ?, ?, ?)",
                                   (float(h.get("time", 0.0)), str(h.get("from", "?")),
                                    str(h.get("to", "?")), str(h.get("reason", "")), "import"))
                    db.execute("INSERT INTO meta VALUES ('imported', ?)", (str(legacy_json),))
                    db.execute("INSERT INTO mode VALUES (1, ?)", (int(mode),))
                elif have is None:
                    start = initial if initial is not None else mode_from_env()
                    db.execute("INSERT INTO mode VALUES (1, ?)", (int(start),))
        except sqlite3.DatabaseError as exc:  # not a database at all
            raise StateError(f"{self.path}: unreadable mode state ({exc})") from None
        self._reload()

    def _reload(self) -> None:
        with self._lock:
            try:
                row = self._db.execute("SELECT mode FROM mode WHERE id = 1").fetchone()
                self._version = self._db.execute("PRAGMA data_version").fetchone()[0]
                self._recorded = Mode(int(row[0]))
            except (sqlite3.Error, TypeError, ValueError) as exc:
                raise StateError(f"{self.path}: unreadable mode state ({exc})") from None

    # --- reading -----------------------------------------------------------------------
    @property
    def recorded(self) -> Mode:
        """The mode as last read from the store."""
        return self._recorded

    @property
    def mode(self) -> Mode:
        """The mode this process serves under: the recorded one, or at most shadow while
        the store cannot be trusted (legacy is served either way)."""
        if self.degraded is not None and self._recorded > Mode.SHADOW:
            return Mode.SHADOW
        return self._recorded

    def refresh(self, force: bool = False) -> None:
        """Pick up changes other processes committed (cheap: ``PRAGMA data_version``)."""
        now = time.monotonic()
        if not force and now - self._checked < self.refresh_every:
            return
        self._checked = now
        with self._lock:
            before = self._recorded
            try:
                version = self._db.execute("PRAGMA data_version").fetchone()[0]
                if version != self._version:
                    self._reload()
            except (sqlite3.Error, StateError) as exc:
                self._degrade(f"cannot read the mode state: {exc}")
                return
            if self.degraded and self.degraded.startswith("cannot read"):
                self.degraded = None
            if self._recorded != before:
                last = self.last_changes(1)
                for listener in self.listeners:
                    listener(last[-1] if last else {})

    def _degrade(self, why: str) -> None:
        if self.degraded is None:
            log.error("parity: %s; serving legacy until the state store works again", why)
        self.degraded = why
        for listener in self.listeners:
            listener({"degraded": why})

    @property
    def history(self) -> list[dict]:
        """Every recorded change, oldest first."""
        return self.last_changes(None)

    def last_changes(self, last: int | None) -> list[dict]:
        """The last ``last`` recorded changes (all with None), oldest first."""
        with self._lock:
            try:
                rows = self._db.execute(
                    "SELECT id, time, from_mode, to_mode, reason, process FROM history "
                    "ORDER BY id DESC LIMIT ?", (-1 if last is None else last,)).fetchall()
            except sqlite3.Error as exc:
                raise StateError(f"{self.path}: unreadable mode state ({exc})") from None
        return [{"id": r[0], "time": r[1], "from": r[2], "to": r[3], "reason": r[4],
                 "process": r[5]} for r in reversed(rows)]

    # --- the promotion window ----------------------------------------------------------
    def record(self, comparisons: int, mismatches: int) -> None:
        """Count comparisons in memory; :meth:`flush` makes them durable."""
        sec = int(self.clock())
        with self._lock:
            slot = self._pending.setdefault(sec, [0, 0])
            slot[0] += comparisons
            slot[1] += mismatches

    def _flush_into(self, db: sqlite3.Connection) -> None:
        for sec, (c, m) in self._pending.items():
            db.execute("INSERT INTO window VALUES (?, ?, ?, ?) ON CONFLICT (process, second) DO "
                       "UPDATE SET comparisons = comparisons + excluded.comparisons, "
                       "mismatches = mismatches + excluded.mismatches",
                       (self.process, sec, c, m))
        db.execute("DELETE FROM window WHERE second < ?",
                   (int(self.clock()) - 2 * PROMOTION_WINDOW_SECONDS,))

    def flush(self) -> None:
        """Write the counted comparisons (one transaction); kept in memory on failure."""
        with self._lock:
            if not self._pending:
                return
            with self._write("record comparisons") as db:
                self._flush_into(db)
            self._pending.clear()

    def _window(self, db: sqlite3.Connection) -> tuple[int, int]:
        now = int(self.clock())
        row = db.execute("SELECT COALESCE(SUM(comparisons), 0), COALESCE(SUM(mismatches), 0) "
                         "FROM window WHERE second > ? AND second <= ?",
                         (now - PROMOTION_WINDOW_SECONDS, now)).fetchone()
        return int(row[0]), int(row[1])

    def window(self) -> tuple[int, int]:
        """(comparisons, mismatches) over the last 5 minutes, every process included."""
        with self._lock:
            try:
                self.flush()
            except StateError:
                pass
            try:
                return self._window(self._db)
            except sqlite3.Error as exc:
                raise StateError(f"{self.path}: unreadable mode state ({exc})") from None

    # --- changes -----------------------------------------------------------------------
    def _change(self, what: str, decide: Callable[[Mode, sqlite3.Connection], Mode | None],
                reason: str, work: Callable[[sqlite3.Connection], None] | None = None
                ) -> dict | None:
        """Read the mode in force inside one write transaction, let ``decide`` pick the new
        one (or None), record it; ``work`` writes more in the same transaction. Raises
        StateError (and serves legacy) when not durable."""
        try:
            with self._write(what) as db:
                if work is not None:
                    work(db)
                if self._pending:
                    self._flush_into(db)
                    self._pending.clear()
                current = Mode(int(db.execute("SELECT mode FROM mode WHERE id = 1").fetchone()[0]))
                to = decide(current, db)
                entry = None
                if to is not None and to != current:
                    t = self.clock()
                    cur = db.execute("INSERT INTO history (time, from_mode, to_mode, reason, "
                                     "process) VALUES (?, ?, ?, ?, ?)",
                                     (t, current.label, to.label, reason, self.process))
                    db.execute("UPDATE mode SET mode = ? WHERE id = 1", (int(to),))
                    entry = {"id": cur.lastrowid, "time": t, "from": current.label,
                             "to": to.label, "reason": reason, "process": self.process}
        except StateError as exc:
            if what.startswith("demote"):
                self._degrade(str(exc))
            raise
        self.degraded = None
        before = self._recorded
        self._reload()
        if entry is not None or self._recorded != before:
            for listener in self.listeners:
                listener(entry or {})
        return entry

    def demote(self, reason: str) -> dict | None:
        """Rollback: mode 2 or 3 -> mode 1, decided against the mode in force. Returns the
        change, or None when the mode in force is 0 or 1."""
        return self._change("demote (roll back)",
                            lambda m, db: Mode.SHADOW if rollback_applies(m) else None, reason)

    def demote_primary(self, reason: str | None,
                       work: Callable[[sqlite3.Connection], None] | None = None) -> dict | None:
        """Mode 2 -> 1 after a mismatch seen in mode 2 (not a rollback of mode 3); with
        ``reason`` None nothing changes but ``work`` (in the same transaction)."""
        return self._change("demote after a mismatch" if reason else "record",
                            lambda m, db: Mode.SHADOW if reason and m == Mode.REFACTORED_PRIMARY
                            else None, reason or "", work)

    def set_mode(self, to: Mode, reason: str) -> dict | None:
        """An operator's change; a promotion obeys :meth:`promotion_refusal`."""
        def decide(current: Mode, db: sqlite3.Connection) -> Mode | None:
            if to > current:
                refusal = policy.promotion_refusal(current, to, *self._window(db))
                if refusal:
                    raise ParityError(refusal)
            return to
        return self._change("change the mode", decide, reason)

    def promote(self, reason: str = "operator") -> dict:
        """One step up (0 -> 1 -> 2 -> 3), gated by the promotion window."""
        def decide(current: Mode, db: sqlite3.Connection) -> Mode | None:
            if current == Mode.REFACTORED_ONLY:
                raise ParityError(f"already at {current.label}: nothing to promote to")
            refusal = policy.promotion_refusal(current, Mode(current + 1), *self._window(db))
            if refusal:
                raise ParityError(refusal)
            return Mode(current + 1)
        entry = self._change("promote", decide, reason)
        assert entry is not None
        return entry

    def promotion_refusal(self, to: Mode | None = None) -> str | None:
        """Why a promotion (one step, or to ``to``) would be refused now; None if allowed."""
        current = self._recorded
        if to is None:
            if current == Mode.REFACTORED_ONLY:
                return f"already at {current.label}: nothing to promote to"
            to = Mode(current + 1)
        return policy.promotion_refusal(current, to, *self.window())

    def close(self) -> None:
        with self._lock:
            try:
                self.flush()
            except StateError as exc:
                log.warning("parity: %s", exc)
            self._db.close()
