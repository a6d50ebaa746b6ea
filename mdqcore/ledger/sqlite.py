"""The embedded default ledger: one SQLite file, WAL, synchronous=FULL.

Appends run in `BEGIN IMMEDIATE` transactions, so several processes may share one file: the
write lock serializes them and each append reads the head it chains onto inside its own
transaction. A crash before COMMIT leaves no trace; after it, the event is on disk.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .base import GENESIS, Event, LedgerError, make_event, now_ts

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    ts TEXT NOT NULL,
    kind TEXT NOT NULL,
    cohort TEXT NOT NULL,
    package TEXT,
    version TEXT,
    body TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_package ON events(package);
"""


class SQLiteLedger:
    """A ledger in one SQLite file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise LedgerError(f"cannot open ledger {self.path}: {exc}; check the path and permissions, "
                              f"or choose another with --ledger / MDQ_LEDGER") from None
        self._lock = threading.Lock()

    def append(self, kind: str, *, cohort: str, package: str | None = None, version: str | None = None,
               actor: str, reason: str = "", payload: dict[str, Any] | None = None) -> Event:
        """Append one event in its own write transaction."""
        with self._lock:
            cur = self._db.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                row = cur.execute("SELECT seq, hash, ts FROM events ORDER BY seq DESC LIMIT 1").fetchone()
                seq, prev, last_ts = (row[0] + 1, row[1], row[2]) if row else (1, GENESIS, "")
                ts = max(now_ts(), last_ts)  # replay-at-T needs time to follow the sequence
                ev = make_event(seq, prev, ts, kind, cohort, package, version, actor, reason, payload or {})
                cur.execute("INSERT INTO events(seq, ts, kind, cohort, package, version, body, hash) "
                            "VALUES (?,?,?,?,?,?,?,?)",
                            (seq, ts, kind, cohort, package, version, json.dumps(ev.as_dict(), ensure_ascii=False),
                             ev.hash))
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            return ev

    def events(self, since: int = 0) -> Iterator[Event]:
        """Yield events with seq > since, in order."""
        cur = self._db.execute("SELECT seq, body FROM events WHERE seq > ? ORDER BY seq", (since,))
        for seq, body in cur:
            try:
                yield Event(**json.loads(body))
            except (ValueError, TypeError) as exc:
                raise LedgerError(f"ledger {self.path}: entry {seq} is unreadable ({exc}); "
                                  f"run `mdq ledger verify` to find the damage") from None

    def raw_rows(self) -> Iterator[tuple[int, str]]:
        """Yield (seq, stored JSON) for verification."""
        yield from self._db.execute("SELECT seq, body FROM events ORDER BY seq")

    def head(self) -> int:
        """Return the last sequence number (0 for an empty ledger)."""
        row = self._db.execute("SELECT MAX(seq) FROM events").fetchone()
        return row[0] or 0

    def close(self) -> None:
        """Close the connection."""
        self._db.close()
