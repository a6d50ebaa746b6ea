"""Ledger events, the hash chain, the Ledger protocol, verify and replay.

The ledger is append-only. Each event hashes the previous event's hash together with its own
canonical JSON, so editing or deleting any row breaks every hash after it. Events that change
state ("base", "promoted", "rolled_back") carry the exact diff they made, so replay is a fold
of diffs: exact by construction and independent of which plugins are installed at replay time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from typing import Any, Protocol

import orjson
from attrs import field, frozen

from ..errors import LedgerError
from ..gcpause import gc_paused
from ..model.state import ControlState

KINDS = ("base", "received", "rejected", "staged", "shadow_passed", "shadow_failed", "canary_started",
         "promoted", "rolled_back")
STATE_CHANGING = frozenset({"base", "promoted", "rolled_back"})
GENESIS = "0" * 64


@frozen
class Event:
    """One ledger entry. `text` is the canonical JSON of its body: what is hashed and what is stored."""

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
    text: str = field(default="", repr=False, eq=False)

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
    """Canonical JSON of a ledger body: sorted keys, no spaces, UTF-8 kept, tuples as arrays.

    orjson, not the json module: a 10,000-atom package is encoded and decoded several times per
    apply, and replay decodes every row. The hash covers exactly this stored text.
    """
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS).decode("utf-8")


def chain_hash(prev_hash: str, body: dict[str, Any] | str) -> str:
    """Hash one event's body (a dict, or its canonical text) onto the previous hash."""
    text = body if isinstance(body, str) else canonical(body)
    return hashlib.sha256((prev_hash + "\n" + text).encode("utf-8")).hexdigest()


def event_from_row(text: str, prev_hash: str, hash_: str) -> Event:
    """Rebuild an event from its stored canonical text and hashes."""
    d = orjson.loads(text)
    return Event(d["seq"], d["ts"], d["kind"], d["cohort"], d["package"], d["version"], d["actor"], d["reason"],
                 d["payload"], prev_hash, hash_, text)


def make_event(seq: int, prev_hash: str, ts: str, kind: str, cohort: str, package: str | None, version: str | None,
               actor: str, reason: str, payload: dict[str, Any]) -> Event:
    """Build an event with its hash."""
    if kind not in KINDS:
        raise LedgerError(f"unknown event kind {kind!r} (kinds: {', '.join(KINDS)})")
    body = {"seq": seq, "ts": ts, "kind": kind, "cohort": cohort, "package": package, "version": version,
            "actor": actor, "reason": reason, "payload": payload}
    text = canonical(body)
    return Event(seq, ts, kind, cohort, package, version, actor, reason, payload, prev_hash,
                 chain_hash(prev_hash, text), text)


class Ledger(Protocol):
    """What every ledger backend provides."""

    url: str

    def append(self, kind: str, *, cohort: str, package: str | None = None, version: str | None = None,
               actor: str, reason: str = "", payload: dict[str, Any] | None = None) -> Event:
        """Append one event atomically and durably; return it with its seq and hash."""

    def events(self, since: int = 0) -> Iterator[Event]:
        """Yield events with seq > since, in order."""

    def raw_rows(self) -> Iterator[tuple[int, str, str, str]]:
        """Yield (seq, stored canonical body text, prev_hash, hash) for verification."""

    def state_rows(self, since: int = 0) -> Iterator[tuple[int, str, str, str, str]]:
        """Yield (seq, ts, kind, cohort, body text) of state-changing events after `since`, in order."""

    def head(self) -> int:
        """Return the last sequence number (0 for an empty ledger)."""

    def close(self) -> None:
        """Release the connection."""


def diff_to_json(diff: Iterable[tuple[tuple[str, ...], Any, Any]]) -> list[Any]:
    """Return a diff ready for the ledger's encoder, which writes tuples as [[path...], old, new] arrays."""
    return list(diff)  # a copy: callers go on appending to their own diff


def diff_from_json(data: list[list[Any]]) -> list[tuple[tuple[str, ...], Any, Any]]:
    """Return a diff read back from JSON."""
    return [(tuple(p), old, new) for p, old, new in data]


def replay_ledger(ledger: Ledger, at: str | None = None) -> dict[str, ControlState]:
    """Rebuild every cohort's state at time `at` reading only the state-changing rows (the fast path)."""
    return replay(ledger.state_rows(), at)


def replay(events: Iterable[Event] | Iterable[tuple[int, str, str, str, str]],
           at: str | None = None) -> dict[str, ControlState]:
    """Rebuild every cohort's state as it was at time `at` (ISO 8601; None = now).

    `events` are Event objects or (seq, ts, kind, cohort, canonical body text) rows.
    """
    return replay_with_base(events, at)[1]


def replay_with_base(events: Iterable[Event] | Iterable[tuple[int, str, str, str, str]],
                     at: str | None = None) -> tuple[ControlState, dict[str, ControlState]]:
    """Return (the base state plugins declared, every cohort's state) at time `at`, in one pass."""
    with gc_paused():
        return _replay_with_base(events, at)


def _replay_with_base(events: Iterable[Event] | Iterable[tuple[int, str, str, str, str]],
                      at: str | None) -> tuple[ControlState, dict[str, ControlState]]:
    limit = normalize_ts(at) if at else None
    work: dict[str, dict] = {}
    seqs: dict[str, int] = {}
    base: dict = {}
    loads = orjson.loads
    for ev in events:
        if isinstance(ev, tuple):
            seq, ts, kind, cohort, text = ev
            if limit is not None and ts > limit:
                break
            payload = loads(text)["payload"]
        else:
            ts, kind, cohort, payload, seq = ev.ts, ev.kind, ev.cohort, ev.payload, ev.seq
            if limit is not None and ts > limit:
                break
        if kind not in STATE_CHANGING:
            continue
        diff = payload.get("diff", [])
        targets = [base, *work.values()] if kind == "base" else [work.get(cohort) or work.setdefault(cohort, dict(base))]
        for data in targets:
            for path, _old, new in diff:
                if new is None:
                    data.pop(tuple(path), None)
                else:
                    data[tuple(path)] = new
        if kind != "base":
            seqs[cohort] = seq
    states = {c: ControlState(d, seqs.get(c, 0)) for c, d in work.items()}
    states.setdefault("default", ControlState(base))
    return ControlState(base), states


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
    for seq, text, stored_prev, stored_hash in ledger.raw_rows():
        n += 1
        if seq != expected:
            return VerifyReport(n, False, seq, f"entry {seq}: expected sequence number {expected} (an entry is missing)")
        try:
            ev = event_from_row(text, stored_prev, stored_hash)
        except (ValueError, TypeError, KeyError) as exc:
            return VerifyReport(n, False, seq, f"entry {seq}: unreadable ({exc})")
        if ev.seq != seq:
            return VerifyReport(n, False, seq, f"entry {seq}: its body says sequence {ev.seq}")
        if stored_prev != prev_hash:
            return VerifyReport(n, False, seq, f"entry {seq} ({ev.kind}): prev_hash does not match entry {seq - 1}'s hash")
        if chain_hash(prev_hash, text) != stored_hash:
            return VerifyReport(n, False, seq, f"entry {seq} ({ev.kind} {ev.package or ''}): content does not match its "
                                               f"hash: the entry was altered after it was written")
        prev_hash, expected = stored_hash, expected + 1
    return VerifyReport(n, True)


class Follower:
    """A daemon thread that calls `callback` when the ledger may have new events; `stop()` ends it."""

    def __init__(self, target: Any, name: str) -> None:
        import threading

        self.stopped = threading.Event()
        self.errors: list[str] = []
        self._thread = threading.Thread(target=target, args=(self.stopped,), name=name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the thread to end and wait for it."""
        self.stopped.set()
        self._thread.join(timeout)


def poll_follower(callback: Any, interval: float) -> Follower:
    """Follow by polling: call `callback` every `interval` seconds (it reads only what is new)."""
    def loop(stopped: Any) -> None:
        while not stopped.wait(interval):
            try:
                callback()
            except Exception as exc:  # keep following; the next poll catches up from the ledger
                follower.errors.append(f"{type(exc).__name__}: {exc}")

    follower = Follower(loop, "mdq-ledger-poll")
    return follower
