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
LOCK_TIMEOUT = "10s"  # a writer waits this long for the writers' lock, then gives up with a message
STATEMENT_TIMEOUT = "60s"  # no statement (a reader's scan included) runs longer than this

# the database itself refuses to change or remove an entry: a superuser who disables this is caught by checkpoints
_APPEND_ONLY = [
    """CREATE OR REPLACE FUNCTION mdq_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN RAISE EXCEPTION 'mdq ledger entries are append-only'; END $$""",
    """DO $$ BEGIN
         IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'mdq_events_no_change') THEN
           CREATE TRIGGER mdq_events_no_change BEFORE UPDATE OR DELETE ON mdq_events
             FOR EACH ROW EXECUTE FUNCTION mdq_events_append_only();
           CREATE TRIGGER mdq_events_no_truncate BEFORE TRUNCATE ON mdq_events
             FOR EACH STATEMENT EXECUTE FUNCTION mdq_events_append_only();
         END IF; END $$""",
]


def _say(url: str, exc: BaseException) -> str:
    """Turn a psycopg error into one line: what, where, what to do."""
    import psycopg.errors as e

    if isinstance(exc, e.LockNotAvailable):
        return f"ledger {url}: another writer held the lock for over {LOCK_TIMEOUT}; nothing was written, retry"
    if isinstance(exc, e.QueryCanceled):
        return f"ledger {url}: a statement ran over {STATEMENT_TIMEOUT} and was cancelled; nothing was written"
    if isinstance(exc, e.ReadOnlySqlTransaction):
        return f"ledger {url}: opened read-only; writers need a writable connection"
    if isinstance(exc, e.DiskFull):
        return f"ledger {url}: the database server's disk is full; nothing was written. Free space, then retry"
    if isinstance(exc, e.UndefinedTable):
        return f"{url} is not an mdq ledger (no mdq_events table)"
    if "append-only" in str(exc):
        return f"ledger {url}: entries are append-only; nothing was changed"
    return f"ledger {url}: {str(exc).strip().splitlines()[0]}"


def _connect(url: str, lock_timeout: str = LOCK_TIMEOUT) -> Any:
    try:
        import psycopg
    except ImportError:
        raise LedgerError("the PostgreSQL ledger needs psycopg 3: pip install 'psycopg[binary]'") from None
    try:
        conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
        conn.execute(f"SET lock_timeout = '{lock_timeout}'")
        conn.execute(f"SET statement_timeout = '{STATEMENT_TIMEOUT}'")
        return conn
    except psycopg.Error as exc:
        raise LedgerError(f"cannot connect to {url}: {str(exc).strip()}; check the URL, that the server runs, "
                          f"and that this user may connect") from None


class PostgresLedger(SQLLedger):
    """A ledger table in PostgreSQL."""

    table = "mdq_events"
    mark = "%s"
    same = "IS NOT DISTINCT FROM"

    def __init__(self, url: str, *, readonly: bool = False, lock_timeout: str = LOCK_TIMEOUT) -> None:
        self.url, self.readonly, self._lock_timeout = url, readonly, lock_timeout
        self._lock = threading.Lock()
        self._leads: dict[str, Any] = {}
        self._conn = self._open()
        if readonly:
            self.head()  # a database without the table is not a ledger: say so now
            return
        with self._write() as cur:
            for stmt in schema(self.table, "BIGINT") + _APPEND_ONLY:
                cur.execute(stmt)
        self._genesis()

    def _open(self) -> Any:
        conn = _connect(self.url, self._lock_timeout)
        if self.readonly:  # readers never take the writers' lock, and the server refuses any write they might try
            conn.execute("SET default_transaction_read_only = on")
        return conn

    def _healthy(self) -> None:
        """Reconnect if the server went away and came back (a follower keeps the same ledger object for days)."""
        if self._conn.closed or self._conn.broken:
            self._conn = self._open()

    @contextmanager
    def _write(self) -> Iterator[Any]:
        import psycopg

        if self.readonly:
            raise LedgerError(f"ledger {self.url} was opened read-only")
        try:
            self._healthy()
            with self._lock, self._conn.transaction():
                self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
                yield self._conn.cursor()
        except psycopg.Error as exc:
            raise LedgerError(_say(self.url, exc)) from None

    def _after_append(self, cur: Any, ev: Any) -> None:
        cur.execute(f"NOTIFY {CHANNEL}, '{ev.seq}'")

    def _rows(self, sql: str, params: tuple = ()) -> list[tuple]:
        import psycopg

        try:
            with self._lock:
                self._healthy()
                return self._conn.execute(sql, params).fetchall()
        except psycopg.Error as exc:
            raise LedgerError(_say(self.url, exc)) from None

    def try_lead(self, name: str) -> bool:
        """Try to become the one holder of the lock `name` among every machine using this ledger (non-blocking).

        A session-level advisory lock on a connection of its own: the server releases it when
        that connection ends (the holder stopped or died), so another replica can take over.
        """
        import zlib

        if name in self._leads:
            return True
        conn = _connect(self.url)
        key = zlib.crc32(f"mdq-lead:{name}".encode())
        if conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]:
            self._leads[name] = conn
            return True
        conn.close()
        return False

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
        """Close the connection and give up any lead."""
        for conn in self._leads.values():
            conn.close()
        self._leads.clear()
        self._conn.close()
