"""The embedded default ledger: one SQLite file, WAL, synchronous=FULL.

Appends run in `BEGIN IMMEDIATE` transactions, so several processes may share one file: the
write lock serializes them and each append reads the head it chains onto inside its own
transaction. A crash before COMMIT leaves no trace; after it, the event is on disk.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .base import GENESIS, Event, LedgerError, event_from_row, make_event, now_ts

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    ts TEXT NOT NULL,
    kind TEXT NOT NULL,
    cohort TEXT NOT NULL,
    package TEXT,
    version TEXT,
    body TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
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
                cur.execute("INSERT INTO events(seq, ts, kind, cohort, package, version, body, prev_hash, hash) "
                            "VALUES (?,?,?,?,?,?,?,?,?)",
                            (seq, ts, kind, cohort, package, version, ev.text, prev, ev.hash))
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            return ev

    def events(self, since: int = 0) -> Iterator[Event]:
        """Yield events with seq > since, in order."""
        cur = self._db.execute("SELECT seq, body, prev_hash, hash FROM events WHERE seq > ? ORDER BY seq", (since,))
        for seq, body, prev, h in cur:
            try:
                yield event_from_row(body, prev, h)
            except (ValueError, TypeError, KeyError) as exc:
                raise LedgerError(f"ledger {self.path}: entry {seq} is unreadable ({exc}); "
                                  f"run `mdq ledger verify` to find the damage") from None

    def raw_rows(self) -> Iterator[tuple[int, str, str, str]]:
        """Yield (seq, body text, prev_hash, hash) for verification."""
        yield from self._db.execute("SELECT seq, body, prev_hash, hash FROM events ORDER BY seq")

    def state_rows(self, since: int = 0) -> Iterator[tuple[int, str, str, str, str]]:
        """Yield (seq, ts, kind, cohort, body) of state-changing events after `since`, in order."""
        yield from self._db.execute("SELECT seq, ts, kind, cohort, body FROM events WHERE seq > ? AND kind IN "
                                    "('base', 'promoted', 'rolled_back') ORDER BY seq", (since,))

    def head(self) -> int:
        """Return the last sequence number (0 for an empty ledger)."""
        row = self._db.execute("SELECT MAX(seq) FROM events").fetchone()
        return row[0] or 0

    def follow(self, callback: Any, interval: float = 1.0) -> Any:
        """Call `callback` every `interval` seconds so a runtime sees other processes' events."""
        from .base import poll_follower

        return poll_follower(callback, interval)

    def _execute(self, sql: str, params: tuple = ()) -> None:
        """Run raw SQL (for tests that tamper with rows)."""
        self._db.execute(sql, params)

    def close(self) -> None:
        """Close the connection."""
        self._db.close()
