"""The embedded default ledger: one SQLite file, WAL, synchronous=FULL.

Appends run in `BEGIN IMMEDIATE` transactions, so several processes may share one file: the
write lock serializes them and each append reads the head it chains onto inside its own
transaction. A crash before COMMIT leaves no trace; after it, the event is on disk.

Readers open the file read-only (`mode=ro`, or `immutable=1` on a read-only filesystem where
SQLite cannot create its shared-memory file): they never create, change or lock it for writing.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..errors import LedgerError, NoLedgerError
from .base import poll_follower
from .sql import SQLLedger, schema

_APPEND_ONLY = [f"CREATE TRIGGER IF NOT EXISTS events_no_{op.lower()} BEFORE {op} ON events "
                f"BEGIN SELECT RAISE(ABORT, 'mdq ledger entries are append-only'); END" for op in ("UPDATE", "DELETE")]


def _say(path: Path, exc: BaseException) -> str:
    """Turn an sqlite3 error into one line: what, where, what to do."""
    msg = str(exc)
    with contextlib.suppress(OSError):  # the filesystem's own flag says more than SQLite's wording
        if os.statvfs(path.parent).f_flag & os.ST_RDONLY:
            msg = "readonly filesystem"
    if "disk is full" in msg:  # also "database or disk is full"
        return f"ledger {path}: the disk is full; nothing was written. Free space, then retry"
    if "append-only" in msg:
        return f"ledger {path}: entries are append-only; nothing was changed"
    if "readonly" in msg or "read-only" in msg:
        return (f"ledger {path}: cannot write (read-only file or filesystem); writers need write access, readers "
                f"(mdq state show, mdq ledger verify) still work")
    if "locked" in msg or "busy" in msg:
        return f"ledger {path}: locked by another writer for too long; retry when it has finished"
    if "not a database" in msg or "malformed" in msg or "corrupt" in msg:
        return f"ledger {path}: not a readable SQLite ledger ({msg}); restore it from a copy"
    return f"ledger {path}: {msg}; check the path and permissions, or choose another with --ledger / MDQ_LEDGER"


class SQLiteLedger(SQLLedger):
    """A ledger in one SQLite file."""

    def __init__(self, path: str | Path, *, readonly: bool = False) -> None:
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        self.readonly = readonly
        self._lock = threading.Lock()
        self._leads: dict[str, Any] = {}
        if self.path.is_dir():
            raise LedgerError(f"ledger {self.path} is a directory, not a ledger file")
        try:
            self._db = self._open_readonly() if readonly else self._open_writer()
        except sqlite3.Error as exc:
            raise LedgerError(_say(self.path, exc)) from None
        except OSError as exc:
            raise LedgerError(f"cannot open ledger {self.path}: {exc.strerror}; check the path and permissions, "
                              f"or choose another with --ledger / MDQ_LEDGER") from None

    def _open_writer(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False, timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        for stmt in schema(self.table) + _APPEND_ONLY:
            db.execute(stmt)
        self._db = db
        self._genesis()
        return db

    def _open_readonly(self) -> sqlite3.Connection:
        if not self.path.exists():
            raise NoLedgerError(f"no ledger at {self.path} (nothing was created); check --ledger / MDQ_LEDGER")
        if self.path.stat().st_size == 0:
            raise LedgerError(f"ledger {self.path} is an empty file, not an mdq ledger")
        uri = f"file:{quote(str(self.path.resolve()))}"
        try:
            db = sqlite3.connect(f"{uri}?mode=ro", uri=True, isolation_level=None, check_same_thread=False, timeout=30)
            db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        except sqlite3.OperationalError:  # a read-only filesystem: no -shm file can be made, nobody can write
            db = sqlite3.connect(f"{uri}?immutable=1", uri=True, isolation_level=None, check_same_thread=False)
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if self.table not in tables:
            db.close()
            raise LedgerError(f"{self.path} is an SQLite file but not an mdq ledger (no {self.table!r} table)")
        return db

    @contextmanager
    def _write(self) -> Iterator[Any]:
        if self.readonly:
            raise LedgerError(f"ledger {self.path} was opened read-only")
        with self._lock:
            cur = self._db.cursor()
            try:  # a BEGIN that fails (busy, read-only) opens no transaction: nothing to roll back
                cur.execute("BEGIN IMMEDIATE")
                yield cur
                cur.execute("COMMIT")
            except BaseException as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise LedgerError(_say(self.path, exc)) from None
                raise

    def _rows(self, sql: str, params: tuple = ()) -> list[tuple]:
        try:
            with self._lock:  # one connection, several threads: a follower reads while the server appends
                return self._db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise LedgerError(_say(self.path, exc)) from None

    def try_lead(self, name: str) -> bool:
        """Try to become the one holder of the lock `name` among the processes sharing this file (non-blocking).

        A lock file beside the ledger, held with flock: the operating system releases it when
        the holder's process ends, however it ends, so another can take over.
        """
        import fcntl

        if name in self._leads:
            return True
        f = open(f"{self.path}.{name}.lock", "a")  # noqa: SIM115 - held open for as long as we lead
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            return False
        self._leads[name] = f
        return True

    def follow(self, callback: Any, interval: float = 1.0) -> Any:
        """Call `callback` every `interval` seconds so a runtime sees other processes' events."""
        return poll_follower(callback, interval)

    def _execute(self, sql: str, params: tuple = ()) -> None:
        """Run raw SQL (for tests that tamper with rows)."""
        self._db.execute(sql, params)

    def close(self) -> None:
        """Close the connection and give up any lead."""
        for f in self._leads.values():
            f.close()
        self._leads.clear()
        self._db.close()
