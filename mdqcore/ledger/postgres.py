"""A ledger in PostgreSQL (psycopg 3), shared by several machines.

Appends take a transaction-scoped advisory lock, so writers on any machine serialize and each
chains onto the true head. The append's transaction also sends `NOTIFY mdq_ledger, '<seq>'`,
delivered only if it commits. A follower LISTENs on its own connection; on a notification it
calls back, and the callback reads everything after the last event it has seen, so a replica
that was disconnected catches up from the ledger itself, never from the notifications it missed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

from .base import GENESIS, Event, Follower, LedgerError, event_from_row, make_event, now_ts

CHANNEL = "mdq_ledger"
_LOCK_KEY = 0x6D6471  # "mdq": one advisory lock for all ledger writers

_SCHEMA = """
CREATE TABLE IF NOT EXISTS mdq_events (
    seq BIGINT PRIMARY KEY,
    ts TEXT NOT NULL,
    kind TEXT NOT NULL,
    cohort TEXT NOT NULL,
    package TEXT,
    version TEXT,
    body TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS mdq_events_package ON mdq_events(package);
"""


def _connect(url: str) -> Any:
    try:
        import psycopg
    except ImportError:
        raise LedgerError("the PostgreSQL ledger needs psycopg 3: pip install 'psycopg[binary]'") from None
    try:
        return psycopg.connect(url, autocommit=True)
    except psycopg.Error as exc:
        raise LedgerError(f"cannot connect to {url}: {str(exc).strip()}; check the URL, that the server runs, "
                          f"and that this user may connect") from None


class PostgresLedger:
    """A ledger table in PostgreSQL."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn = _connect(url)
        self._lock = threading.Lock()
        with self._conn.transaction():
            self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            self._conn.execute(_SCHEMA)

    def append(self, kind: str, *, cohort: str, package: str | None = None, version: str | None = None,
               actor: str, reason: str = "", payload: dict[str, Any] | None = None) -> Event:
        """Append one event in a transaction serialized by an advisory lock; notify followers on commit."""
        with self._lock, self._conn.transaction():
            self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            row = self._conn.execute("SELECT seq, hash, ts FROM mdq_events ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev, last_ts = (row[0] + 1, row[1], row[2]) if row else (1, GENESIS, "")
            ev = make_event(seq, prev, max(now_ts(), last_ts), kind, cohort, package, version, actor, reason,
                            payload or {})
            self._conn.execute(
                "INSERT INTO mdq_events(seq, ts, kind, cohort, package, version, body, prev_hash, hash) "
                "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                (seq, ev.ts, kind, cohort, package, version, ev.text, prev, ev.hash))
            self._conn.execute(f"NOTIFY {CHANNEL}, '{seq}'")
        return ev

    def events(self, since: int = 0) -> Iterator[Event]:
        """Yield events with seq > since, in order."""
        with self._lock:
            rows = self._conn.execute("SELECT seq, body, prev_hash, hash FROM mdq_events WHERE seq > %s ORDER BY seq",
                                      (since,)).fetchall()
        for seq, body, prev, h in rows:
            try:
                yield event_from_row(body, prev, h)
            except (ValueError, TypeError, KeyError) as exc:
                raise LedgerError(f"ledger {self.url}: entry {seq} is unreadable ({exc}); run `mdq ledger verify`") from None

    def raw_rows(self) -> Iterator[tuple[int, str, str, str]]:
        """Yield (seq, body text, prev_hash, hash) for verification."""
        with self._lock:
            rows = self._conn.execute("SELECT seq, body, prev_hash, hash FROM mdq_events ORDER BY seq").fetchall()
        yield from rows

    def state_rows(self, since: int = 0) -> Iterator[tuple[int, str, str, str, str]]:
        """Yield (seq, ts, kind, cohort, body) of state-changing events after `since`, in order."""
        with self._lock:
            rows = self._conn.execute("SELECT seq, ts, kind, cohort, body FROM mdq_events WHERE seq > %s AND kind IN "
                                      "('base', 'promoted', 'rolled_back') ORDER BY seq", (since,)).fetchall()
        yield from rows

    def head(self) -> int:
        """Return the last sequence number (0 for an empty ledger)."""
        with self._lock:
            return self._conn.execute("SELECT COALESCE(MAX(seq), 0) FROM mdq_events").fetchone()[0]

    def follow(self, callback: Any, interval: float = 1.0) -> Follower:
        """LISTEN for appends from any machine; call `callback` on each, and after every reconnect."""
        url = self.url

        def loop(stopped: threading.Event) -> None:
            conn = None
            while not stopped.is_set():
                try:
                    if conn is None:
                        conn = _connect(url)
                        conn.execute(f"LISTEN {CHANNEL}")
                        follower.backend_pid = conn.info.backend_pid
                        callback()  # catch up on whatever happened while we were away
                    for _ in conn.notifies(timeout=interval):
                        callback()
                except Exception as exc:  # dropped connection: reconnect, then catch up from the ledger
                    follower.errors.append(f"{type(exc).__name__}: {str(exc).strip()[:200]}")
                    follower.reconnects += 1
                    try:
                        if conn is not None:
                            conn.close()
                    except Exception:  # noqa: BLE001 - the connection is already broken
                        pass
                    conn = None
                    stopped.wait(min(interval, 0.2))
            if conn is not None:
                conn.close()

        follower = Follower.__new__(Follower)
        follower.reconnects, follower.backend_pid = 0, None
        Follower.__init__(follower, loop, "mdq-ledger-listen")
        deadline = time.monotonic() + 10
        while follower.backend_pid is None and time.monotonic() < deadline and not follower.errors:
            time.sleep(0.01)
        return follower

    def _execute(self, sql: str, params: tuple = ()) -> None:
        """Run raw SQL (for tests that tamper with rows); table name `events` maps to mdq_events."""
        with self._lock:
            self._conn.execute(sql.replace(" events ", " mdq_events ").replace("FROM events", "FROM mdq_events"), params)

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()
