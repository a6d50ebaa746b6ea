"""Ledger events, the hash chain, the Ledger protocol, verify and replay.

The ledger is append-only. Each event hashes the previous event's hash together with its own
canonical JSON, so editing or deleting any row breaks every hash after it. Events that change
state ("base", "promoted", "rolled_back") carry the exact diff they made, so replay is a fold
of diffs: exact by construction and independent of which plugins are installed at replay time.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from typing import Any, Protocol

from attrs import frozen

from ..errors import MdqError
from ..model.state import ControlState

KINDS = ("base", "received", "rejected", "staged", "shadow_passed", "shadow_failed", "canary_started",
         "promoted", "rolled_back")
STATE_CHANGING = frozenset({"base", "promoted", "rolled_back"})
GENESIS = "0" * 64


class LedgerError(MdqError):
    """The ledger cannot be read, written or trusted; says which entry and what to do."""


@frozen
class Event:
    """One ledger entry."""

    seq: int
    ts: str
    kind: str
    cohort: str
    package: str | None
    version: str | None
    actor: str
    reason: str
    payload: dict[str, Any]
    prev_hash: str
    hash: str

    def body(self) -> dict[str, Any]:
        """Return the hashed fields."""
        return {"seq": self.seq, "ts": self.ts, "kind": self.kind, "cohort": self.cohort, "package": self.package,
                "version": self.version, "actor": self.actor, "reason": self.reason, "payload": self.payload}

    def as_dict(self) -> dict[str, Any]:
        """Return every field, JSON-ready."""
        return {**self.body(), "prev_hash": self.prev_hash, "hash": self.hash}


def now_ts() -> str:
    """Return the current UTC time in the ledger's sortable ISO form."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def normalize_ts(text: str) -> str:
    """Turn any ISO 8601 time (with zone, or UTC if none) into the ledger's sortable form."""
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise LedgerError(f"{text!r} is not an ISO 8601 time; e.g. 2026-11-22T18:40:00Z") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical(obj: Any) -> str:
    """Canonical JSON: sorted keys, no spaces, UTF-8 kept."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def chain_hash(prev_hash: str, body: dict[str, Any]) -> str:
    """Hash one event's body onto the previous hash."""
    return hashlib.sha256((prev_hash + "\n" + canonical(body)).encode("utf-8")).hexdigest()


def make_event(seq: int, prev_hash: str, ts: str, kind: str, cohort: str, package: str | None, version: str | None,
               actor: str, reason: str, payload: dict[str, Any]) -> Event:
    """Build an event with its hash."""
    if kind not in KINDS:
        raise LedgerError(f"unknown event kind {kind!r} (kinds: {', '.join(KINDS)})")
    body = {"seq": seq, "ts": ts, "kind": kind, "cohort": cohort, "package": package, "version": version,
            "actor": actor, "reason": reason, "payload": payload}
    return Event(seq, ts, kind, cohort, package, version, actor, reason, payload, prev_hash, chain_hash(prev_hash, body))


class Ledger(Protocol):
    """What every ledger backend provides."""

    url: str

    def append(self, kind: str, *, cohort: str, package: str | None = None, version: str | None = None,
               actor: str, reason: str = "", payload: dict[str, Any] | None = None) -> Event:
        """Append one event atomically and durably; return it with its seq and hash."""

    def events(self, since: int = 0) -> Iterator[Event]:
        """Yield events with seq > since, in order."""

    def raw_rows(self) -> Iterator[tuple[int, str]]:
        """Yield (seq, stored JSON text of the whole event) for verification."""

    def close(self) -> None:
        """Release the connection."""


def diff_to_json(diff: Iterable[tuple[tuple[str, ...], Any, Any]]) -> list[list[Any]]:
    """Return a diff as JSON-ready [[path...], old, new] triples."""
    return [[list(p), old, new] for p, old, new in diff]


def diff_from_json(data: list[list[Any]]) -> list[tuple[tuple[str, ...], Any, Any]]:
    """Return a diff read back from JSON."""
    return [(tuple(p), old, new) for p, old, new in data]


def replay(events: Iterable[Event], at: str | None = None) -> dict[str, ControlState]:
    """Rebuild every cohort's state as it was at time `at` (ISO 8601; None = now)."""
    limit = normalize_ts(at) if at else None
    work: dict[str, dict] = {}
    seqs: dict[str, int] = {}
    base: dict = {}
    for ev in events:
        if limit is not None and ev.ts > limit:
            break
        if ev.kind not in STATE_CHANGING:
            continue
        diff = ev.payload.get("diff", [])
        targets = [base, *work.values()] if ev.kind == "base" else [work.setdefault(ev.cohort, dict(base))]
        for data in targets:
            for path, _old, new in diff:
                p = tuple(path)
                if new is None:
                    data.pop(p, None)
                else:
                    data[p] = new
        if ev.kind != "base":
            seqs[ev.cohort] = ev.seq
    states = {c: ControlState(d, seqs.get(c, 0)) for c, d in work.items()}
    states.setdefault("default", ControlState(base))
    return states


def replay_base(events: Iterable[Event]) -> ControlState:
    """Return the base state (what plugins declare) as last recorded."""
    data: dict = {}
    for ev in events:
        if ev.kind == "base":
            for path, _old, new in ev.payload.get("diff", []):
                if new is None:
                    data.pop(tuple(path), None)
                else:
                    data[tuple(path)] = new
    return ControlState(data)


@frozen
class VerifyReport:
    """What `verify` found: how many events were checked and the first broken one."""

    checked: int
    ok: bool
    first_bad_seq: int | None = None
    problem: str = ""


def verify(ledger: Ledger) -> VerifyReport:
    """Check the hash chain and the sequence; report the first broken entry."""
    prev_hash, expected, n = GENESIS, 1, 0
    for seq, text in ledger.raw_rows():
        n += 1
        if seq != expected:
            return VerifyReport(n, False, seq, f"entry {seq}: expected sequence number {expected} (an entry is missing)")
        try:
            d = json.loads(text)
            ev = Event(**d)
        except (ValueError, TypeError) as exc:
            return VerifyReport(n, False, seq, f"entry {seq}: unreadable ({exc})")
        if ev.prev_hash != prev_hash:
            return VerifyReport(n, False, seq, f"entry {seq} ({ev.kind}): prev_hash does not match entry {seq - 1}'s hash")
        if chain_hash(prev_hash, ev.body()) != ev.hash:
            return VerifyReport(n, False, seq, f"entry {seq} ({ev.kind} {ev.package or ''}): content does not match its "
                                               f"hash: the entry was altered after it was written")
        prev_hash, expected = ev.hash, expected + 1
    return VerifyReport(n, True)
