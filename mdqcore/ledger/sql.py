"""The SQL both ledger backends share: one schema, one append, one set of reads.

A backend supplies its parameter marker, a `_write()` context manager that opens a transaction
holding the writers' lock (SQLite: BEGIN IMMEDIATE; PostgreSQL: an advisory lock) and `_rows()`
for reads. Everything else is written once here: what "state-changing" means, the
compare-and-swap on a cohort's head, the genesis entry, the append-only triggers.

The columns besides `body` exist to find rows fast; nothing that decides state is read from
them (see base.py), and `verify` checks each against the hashed body.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

from ..errors import ConflictError, LedgerError
from .base import CLOSING, GENESIS, GLOBAL, STATE_CHANGING, Event, event_from_row, make_event, now_ts

_STATE_KINDS = ", ".join(f"'{k}'" for k in sorted(STATE_CHANGING))
_GLOBAL = ", ".join(f"'{k}'" for k in sorted(GLOBAL))
_CLOSING = ", ".join(f"'{k}'" for k in CLOSING)
PAGE = 8192  # rows per query when reading the whole ledger
FORMAT = 2  # the ledger layout: genesis entry, hashed-body reads, append-only triggers


def schema(table: str, seq_type: str = "INTEGER") -> list[str]:
    """Return the statements that create the events table and its indexes (idempotent)."""
    return [
        f"CREATE TABLE IF NOT EXISTS {table} (seq {seq_type} PRIMARY KEY, ts TEXT NOT NULL, kind TEXT NOT NULL, "
        f"cohort TEXT NOT NULL, package TEXT, version TEXT, body TEXT NOT NULL, prev_hash TEXT NOT NULL, "
        f"hash TEXT NOT NULL)",
        f"CREATE INDEX IF NOT EXISTS {table}_package ON {table}(package, seq)",
        f"CREATE INDEX IF NOT EXISTS {table}_kind ON {table}(kind, seq)",
        f"CREATE INDEX IF NOT EXISTS {table}_cohort ON {table}(cohort, seq)",
    ]


class SQLLedger:
    """Ledger logic over any DB-API connection; subclasses open the connection and the write transaction."""

    url: str
    readonly: bool = False
    table: str = "events"
    mark: str = "?"  # the driver's parameter marker
    same: str = "IS"  # null-safe equality

    def _write(self) -> AbstractContextManager[Any]:
        """Open a write transaction holding the writers' lock; yield a cursor-like object with execute()."""
        raise NotImplementedError

    def _rows(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Run a read query and return all its rows (fetched at once: no statement outlives the call)."""
        raise NotImplementedError

    def _after_append(self, cur: Any, ev: Event) -> None:
        """Hook inside the append's transaction (PostgreSQL notifies followers here)."""

    def _sql(self, text: str) -> str:
        return text.replace("{t}", self.table).replace("?", self.mark)

    def _one(self, cur: Any, sql: str, params: tuple = ()) -> Any:
        cur.execute(self._sql(sql), params)
        row = cur.fetchone()
        return None if row is None else row[0]

    def cohort_head(self, cur: Any, cohort: str) -> int:
        """Return the seq of the newest state-changing event that applies to `cohort` (its own, a base or a policy)."""
        own = self._one(cur, f"SELECT seq FROM {{t}} WHERE cohort = ? AND kind IN ({_STATE_KINDS}) "
                             f"ORDER BY seq DESC LIMIT 1", (cohort,))
        every = self._one(cur, f"SELECT seq FROM {{t}} WHERE kind IN ({_GLOBAL}) ORDER BY seq DESC LIMIT 1")
        return max(own or 0, every or 0)

    def append(self, kind: str, *, cohort: str, package: str | None = None, version: str | None = None,
               actor: str, reason: str = "", payload: dict[str, Any] | None = None,
               expect: tuple[str, int] | None = None) -> Event:
        """Append one event in its own write transaction, chained onto the head read inside it.

        With `expect=(cohort, seq)` the append happens only if `seq` is still that cohort's head
        (compare-and-swap); otherwise ConflictError, and nothing is written.
        """
        with self._write() as cur:
            if expect is not None:
                head = self.cohort_head(cur, expect[0])
                if head != expect[1]:
                    raise ConflictError(f"cohort {expect[0]!r} moved on (entry {head}) since this change was planned "
                                        f"against entry {expect[1]}")
            cur.execute(self._sql("SELECT seq, hash, ts FROM {t} ORDER BY seq DESC LIMIT 1"))
            row = cur.fetchone()
            seq, prev, last_ts = (row[0] + 1, row[1], row[2]) if row else (1, GENESIS, "")
            ts = max(now_ts(), last_ts)  # replay-at-T needs time to follow the sequence
            ev = make_event(seq, prev, ts, kind, cohort, package, version, actor, reason, payload or {})
            self._insert(cur, ev)
            self._after_append(cur, ev)
        return ev

    def _insert(self, cur: Any, ev: Event) -> None:
        cur.execute(self._sql("INSERT INTO {t}(seq, ts, kind, cohort, package, version, body, prev_hash, hash) "
                              "VALUES (?,?,?,?,?,?,?,?,?)"),
                    (ev.seq, ev.ts, ev.kind, ev.cohort, ev.package, ev.version, ev.text, ev.prev_hash, ev.hash))

    def _genesis(self, actor: str = "mdq") -> None:
        """Give a new ledger its identity: entry 1 is a genesis event with a random nonce (writers only)."""
        with self._write() as cur:
            if self._one(cur, "SELECT COUNT(*) FROM {t}"):
                return
            self._insert(cur, make_event(1, GENESIS, now_ts(), "genesis", "default", None, None, actor,
                                         "ledger created", {"format": FORMAT, "nonce": uuid.uuid4().hex}))

    def _pages(self, columns: str, since: int) -> Iterator[tuple]:
        """Yield rows after `since` in order, a page per query: no statement stays open between yields,
        so another thread may write on the same connection meanwhile and see the true head."""
        sql = self._sql(f"SELECT {columns} FROM {{t}} WHERE seq > ? ORDER BY seq LIMIT {PAGE}")
        while True:
            page = self._rows(sql, (since,))
            yield from page
            if len(page) < PAGE:
                return
            since = page[-1][0]

    def events(self, since: int = 0) -> Iterator[Event]:
        """Yield events with seq > since, in order, decoded from their hashed bodies."""
        for seq, body, prev, h in self._pages("seq, body, prev_hash, hash", since):
            try:
                ev = event_from_row(body, prev, h)
            except (ValueError, TypeError, KeyError) as exc:
                raise LedgerError(f"ledger {self.url}: entry {seq} is unreadable ({exc}); "
                                  f"run `mdq ledger verify` to find the damage") from None
            if ev.seq != seq:
                raise LedgerError(f"ledger {self.url}: row {seq} holds entry {ev.seq}; run `mdq ledger verify`")
            yield ev

    def rows(self, since: int = 0) -> Iterator[tuple[int, str]]:
        """Yield (seq, body text) of every event after `since`, in order."""
        return self._pages("seq, body", since)

    def raw_rows(self) -> Iterator[tuple[Any, ...]]:
        """Yield (seq, ts, kind, cohort, package, version, body, prev_hash, hash) of every row, for verify."""
        return self._pages("seq, ts, kind, cohort, package, version, body, prev_hash, hash", 0)

    def head(self) -> int:
        """Return the last sequence number (0 for an empty ledger)."""
        return next(iter(self._rows(self._sql("SELECT COALESCE(MAX(seq), 0) FROM {t}"))))[0]

    def open_applies(self) -> list[tuple[Event, Event]]:
        """Return (received, newest event) of every apply with no closing event: in flight, or left by a crash."""
        rows = list(self._rows(self._sql(
            f"SELECT r.seq FROM {{t}} r WHERE r.kind = 'received' AND NOT EXISTS (SELECT 1 FROM {{t}} c "
            f"WHERE c.seq > r.seq AND c.cohort = r.cohort AND c.package {self.same} r.package "
            f"AND c.version {self.same} r.version AND c.kind IN ({_CLOSING})) ORDER BY r.seq")))
        out = []
        for (seq,) in rows:
            first = next(self.events(seq - 1))
            last = next(iter(self._rows(self._sql(
                f"SELECT MAX(seq) FROM {{t}} WHERE seq >= ? AND cohort = ? AND package {self.same} ? "
                f"AND version {self.same} ?"), (seq, first.cohort, first.package, first.version))))[0]
            out.append((first, next(self.events(last - 1))))
        return out

    def latest(self, kind: str, cohort: str, package: str | None, version: str | None) -> Event | None:
        """Return the newest event of `kind` for one package in one cohort, or None."""
        for (seq,) in self._rows(self._sql(
                f"SELECT seq FROM {{t}} WHERE kind = ? AND cohort = ? AND package {self.same} ? AND version {self.same} ? "
                f"ORDER BY seq DESC LIMIT 1"), (kind, cohort, package, version)):
            return next(self.events(seq - 1))
        return None
