"""The SQL both ledger backends share: one schema, one append, one set of reads.

A backend supplies a DB-API connection, its parameter marker and a `_write()` context manager
that opens a transaction holding the writers' lock (SQLite: BEGIN IMMEDIATE; PostgreSQL: an
advisory lock). Everything else, including what "state-changing" means, is written once here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Any

from ..errors import LedgerError
from .base import GENESIS, STATE_CHANGING, Event, event_from_row, make_event, now_ts

_STATE_KINDS = ", ".join(f"'{k}'" for k in sorted(STATE_CHANGING))


def schema(table: str, seq_type: str = "INTEGER") -> list[str]:
    """Return the statements that create the events table and its indexes (idempotent)."""
    return [
        f"CREATE TABLE IF NOT EXISTS {table} (seq {seq_type} PRIMARY KEY, ts TEXT NOT NULL, kind TEXT NOT NULL, "
        f"cohort TEXT NOT NULL, package TEXT, version TEXT, body TEXT NOT NULL, prev_hash TEXT NOT NULL, "
        f"hash TEXT NOT NULL)",
        f"CREATE INDEX IF NOT EXISTS {table}_package ON {table}(package)",
    ]


class SQLLedger:
    """Ledger logic over any DB-API connection; subclasses open the connection and the write transaction."""

    url: str
    table: str = "events"
    mark: str = "?"  # the driver's parameter marker

    def _write(self) -> AbstractContextManager[Any]:
        """Open a write transaction holding the writers' lock; yield a cursor-like object with execute()."""
        raise NotImplementedError

    def _rows(self, sql: str, params: tuple = ()) -> Iterable[tuple]:
        """Run a read query and return its rows."""
        raise NotImplementedError

    def _after_append(self, cur: Any, ev: Event) -> None:
        """Hook inside the append's transaction (PostgreSQL notifies followers here)."""

    def _sql(self, text: str) -> str:
        return text.replace("{t}", self.table).replace("?", self.mark)

    def append(self, kind: str, *, cohort: str, package: str | None = None, version: str | None = None,
               actor: str, reason: str = "", payload: dict[str, Any] | None = None) -> Event:
        """Append one event in its own write transaction, chained onto the head read inside it."""
        with self._write() as cur:
            cur.execute(self._sql("SELECT seq, hash, ts FROM {t} ORDER BY seq DESC LIMIT 1"))
            row = cur.fetchone()
            seq, prev, last_ts = (row[0] + 1, row[1], row[2]) if row else (1, GENESIS, "")
            ts = max(now_ts(), last_ts)  # replay-at-T needs time to follow the sequence
            ev = make_event(seq, prev, ts, kind, cohort, package, version, actor, reason, payload or {})
            cur.execute(self._sql("INSERT INTO {t}(seq, ts, kind, cohort, package, version, body, prev_hash, hash) "
                                  "VALUES (?,?,?,?,?,?,?,?,?)"),
                        (seq, ts, kind, cohort, package, version, ev.text, prev, ev.hash))
            self._after_append(cur, ev)
        return ev

    def events(self, since: int = 0) -> Iterator[Event]:
        """Yield events with seq > since, in order."""
        for seq, body, prev, h in self._rows(self._sql("SELECT seq, body, prev_hash, hash FROM {t} WHERE seq > ? "
                                                       "ORDER BY seq"), (since,)):
            try:
                yield event_from_row(body, prev, h)
            except (ValueError, TypeError, KeyError) as exc:
                raise LedgerError(f"ledger {self.url}: entry {seq} is unreadable ({exc}); "
                                  f"run `mdq ledger verify` to find the damage") from None

    def raw_rows(self) -> Iterator[tuple[int, str, str, str]]:
        """Yield (seq, body text, prev_hash, hash) for verification."""
        yield from self._rows(self._sql("SELECT seq, body, prev_hash, hash FROM {t} ORDER BY seq"))

    def state_rows(self, since: int = 0) -> Iterator[tuple[int, str, str, str, str]]:
        """Yield (seq, ts, kind, cohort, body) of state-changing events after `since`, in order."""
        yield from self._rows(self._sql(f"SELECT seq, ts, kind, cohort, body FROM {{t}} WHERE seq > ? AND kind IN "
                                        f"({_STATE_KINDS}) ORDER BY seq"), (since,))

    def head(self) -> int:
        """Return the last sequence number (0 for an empty ledger)."""
        return next(iter(self._rows(self._sql("SELECT COALESCE(MAX(seq), 0) FROM {t}"))))[0]
