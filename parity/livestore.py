"""The live validator's durable state, in the same SQLite database as the mode.

Tables: every acknowledged block's served result (keyed by its position ``seq`` and
unique by height, with a digest of its bytes for idempotent retries), the commitment
replay cache (commitment -> first height), the chain tip (the last block's header,
the next block's parent), every mismatch record, and the chain parameters fixed at
the first start. A batch is written in one transaction, together with a mode-2
demotion when it brings one: acknowledged means durable.
"""
from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from parity.errors import ParityError, StateError
from parity.state import ModeState

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS live_chain (id INTEGER PRIMARY KEY CHECK (id = 1),
       params TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS live_blocks (seq INTEGER PRIMARY KEY, height INTEGER NOT NULL
       UNIQUE, digest BLOB NOT NULL, result TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS live_commitments (commitment BLOB PRIMARY KEY,
       height INTEGER NOT NULL) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS live_tip (id INTEGER PRIMARY KEY CHECK (id = 1),
       seq INTEGER NOT NULL, height INTEGER NOT NULL, hash BLOB NOT NULL,
       timestamp INTEGER NOT NULL, header BLOB NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS live_mismatches (id INTEGER PRIMARY KEY AUTOINCREMENT,
       seq INTEGER NOT NULL, height INTEGER, function TEXT NOT NULL, record TEXT NOT NULL)""",
)


@dataclass
class Tip:
    seq: int
    height: int
    hash: bytes
    timestamp: int
    header: bytes


@dataclass
class Acknowledged:
    """What one batch adds: per-block rows, commitments, mismatch records, the new tip."""

    blocks: list[tuple[int, int, bytes, str]]      # seq, height, digest, result JSON
    commitments: list[tuple[bytes, int]]           # commitment, height
    records: list[tuple[int, int | None, str, str]]  # seq, height, function, record JSON
    tip: Tip


class LiveStore:
    """Reads and writes the live tables through the mode state's connection."""

    def __init__(self, state: ModeState, params: dict) -> None:
        self.state = state
        self.params = params
        with state._write("create the live tables") as db:
            for statement in _SCHEMA:
                db.execute(statement)
            row = db.execute("SELECT params FROM live_chain WHERE id = 1").fetchone()
            if row is None:
                db.execute("INSERT INTO live_chain VALUES (1, ?)", (json.dumps(params),))
            elif json.loads(row[0]) != params:
                raise ParityError(f"{state.path}: this store holds a chain with other "
                                  f"parameters ({row[0]}); use another --state")

    def _read(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self.state._lock:
            try:
                return self.state._db.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise StateError(f"{self.state.path}: cannot read the live state ({exc})") \
                    from None

    def tip(self) -> Tip | None:
        rows = self._read("SELECT seq, height, hash, timestamp, header FROM live_tip")
        return Tip(*rows[0]) if rows else None

    def commitments(self) -> list[bytes]:
        """Every commitment seen, in the order first seen."""
        return [r[0] for r in self._read(
            "SELECT commitment FROM live_commitments ORDER BY height")]

    def cache_size(self) -> int:
        return int(self._read("SELECT COUNT(*) FROM live_commitments")[0][0])

    def known(self, heights: Iterable[int]) -> dict[int, tuple[int, bytes, dict]]:
        """height -> (seq, digest, stored result) for the heights already acknowledged."""
        hs = sorted(set(heights))
        out: dict[int, tuple[int, bytes, dict]] = {}
        for lo in range(0, len(hs), 500):
            part = hs[lo:lo + 500]
            rows = self._read("SELECT height, seq, digest, result FROM live_blocks WHERE height "
                              f"IN ({','.join('?' * len(part))})", tuple(part))
            out.update({h: (s, bytes(d), json.loads(r)) for h, s, d, r in rows})
        return out

    def results(self, after: int, limit: int) -> list[dict]:
        rows = self._read("SELECT seq, result FROM live_blocks WHERE seq > ? ORDER BY seq LIMIT ?",
                          (after, limit))
        return [{"seq": s, **json.loads(r)} for s, r in rows]

    def mismatches(self, since: int, limit: int) -> list[dict]:
        rows = self._read("SELECT id, seq, height, function, record FROM live_mismatches "
                          "WHERE id > ? ORDER BY id LIMIT ?", (since, limit))
        return [{"id": i, "seq": s, "height": h, "function": f, "record": json.loads(r)}
                for i, s, h, f, r in rows]

    def counts(self) -> dict[str, int]:
        return {"blocks": int(self._read("SELECT COUNT(*) FROM live_blocks")[0][0]),
                "replay_cache": self.cache_size(),
                "mismatches": int(self._read("SELECT COUNT(*) FROM live_mismatches")[0][0])}

    def acknowledge(self, ack: Acknowledged, demotion: str | None) -> int:
        """Write one batch in one transaction (with the mode-2 demotion it brings, if any);
        returns how many commitments were new to the cache. StateError when it could not
        be made durable."""
        added = [0]

        def work(db: sqlite3.Connection) -> None:
            db.executemany("INSERT INTO live_blocks VALUES (?, ?, ?, ?)", ack.blocks)
            added[0] = db.executemany("INSERT OR IGNORE INTO live_commitments VALUES (?, ?)",
                                      ack.commitments).rowcount
            db.executemany("INSERT INTO live_mismatches (seq, height, function, record) "
                           "VALUES (?, ?, ?, ?)", ack.records)
            t = ack.tip
            db.execute("INSERT OR REPLACE INTO live_tip VALUES (1, ?, ?, ?, ?, ?)",
                       (t.seq, t.height, t.hash, t.timestamp, t.header))
        self.state.demote_primary(demotion, work)
        return added[0]


def result_json(result: dict[str, Any]) -> str:
    return json.dumps(result, separators=(",", ":"), sort_keys=True)
