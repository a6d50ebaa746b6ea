"""A ledger in PostgreSQL (psycopg 3), shared by several machines.

Appends take a transaction-scoped advisory lock, so writers on any machine serialize and each
chains onto the true head. The append's transaction also sends `NOTIFY mdq_ledger, '<seq>'`,
delivered only if it commits. A follower LISTENs on its own connection; on a notification it
calls back, and the callback reads everything after the last event it has seen, so a replica
that was disconnected catches up from the ledger itself, never from the notifications it missed.
Readers never take the writers' lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from mdqcore.errors import LedgerError
from mdqcore.ledger import SQLLedger
from mdqcore.ledger.base import Follower
from mdqcore.ledger.sql import schema

CHANNEL = "mdq_ledger"
_LOCK_KEY = 0x6D6471  # "mdq": one advisory lock for all ledger writers


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


class PostgresLedger(SQLLedger):
    """A ledger table in PostgreSQL."""

    table = "mdq_events"
    mark = "%s"

    def __init__(self, url: str, *, readonly: bool = False) -> None:
        self.url = url
        self.readonly = readonly
        self._conn = _connect(url)
        self._lock = threading.Lock()
        if readonly:
            return
        with self._conn.transaction():
            self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            for stmt in schema(self.table, "BIGINT"):
                self._conn.execute(stmt)

    @contextmanager
    def _write(self) -> Iterator[Any]:
        if self.readonly:
            raise LedgerError(f"ledger {self.url} was opened read-only")
        with self._lock, self._conn.transaction():
            self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            yield self._conn.cursor()

    def _after_append(self, cur: Any, ev: Any) -> None:
        cur.execute(f"NOTIFY {CHANNEL}, '{ev.seq}'")

    def _rows(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

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
