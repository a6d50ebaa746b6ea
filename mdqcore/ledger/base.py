"""Ledger events, the hash chain, the Ledger protocol and replay.

The ledger is append-only. Each event hashes the previous event's hash together with its own
canonical JSON, so editing or deleting any row breaks every hash after it. Events that change
state ("base", "promoted", "rolled_back") carry the exact diff they made, so replay is a fold
of diffs: exact by construction and independent of which plugins are installed at replay time.

Everything that decides state is read from the hashed body, never from the table's other
columns (they are indexes): kind, cohort, sequence number and time included. Replay refuses a
gap in the sequence instead of folding around it.
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
from ..model.state import ControlState, patch

KINDS = ("genesis", "base", "policy", "received", "rejected", "staged", "shadow_passed", "shadow_failed",
         "shadow_skipped", "canary_started", "observed", "analysis", "promoted", "rolled_back", "aborted", "checkpoint")
STATE_CHANGING = frozenset({"base", "policy", "promoted", "rolled_back"})
GLOBAL = frozenset({"base", "policy"})  # state events that every cohort folds in
CLOSING = ("rejected", "promoted", "rolled_back", "aborted")  # an apply ends with exactly one of these
BODY = ("seq", "ts", "kind", "cohort", "package", "version", "actor", "reason", "payload")  # the hashed fields
BODY_KEYS = frozenset(BODY)
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
        return {k: getattr(self, k) for k in BODY}

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
    """Rebuild an event from its stored canonical text (the hashed bytes) and hashes."""
    d = orjson.loads(text)
    return Event(**{k: d[k] for k in BODY_KEYS}, prev_hash=prev_hash, hash=hash_, text=text)


def make_event(seq: int, prev_hash: str, ts: str, kind: str, cohort: str, package: str | None, version: str | None,
               actor: str, reason: str, payload: dict[str, Any]) -> Event:
    """Build an event with its hash."""
    if kind not in KINDS:
        raise LedgerError(f"unknown event kind {kind!r} (kinds: {', '.join(KINDS)})")
    body = dict(zip(BODY, (seq, ts, kind, cohort, package, version, actor, reason, payload)))
    text = canonical(body)
    return Event(**body, prev_hash=prev_hash, hash=chain_hash(prev_hash, text), text=text)


class Ledger(Protocol):
    """What every ledger backend provides."""

    url: str
    readonly: bool

    def append(self, kind: str, *, cohort: str, package: str | None = None, version: str | None = None,
               actor: str, reason: str = "", payload: dict[str, Any] | None = None,
               expect: tuple[str, int] | None = None) -> Event:
        """Append one event atomically and durably; with `expect=(cohort, seq)`, only if that is the cohort's head."""

    def events(self, since: int = 0) -> Iterator[Event]:
        """Yield events with seq > since, in order, decoded from their hashed bodies."""

    def rows(self, since: int = 0) -> Iterator[tuple[int, str]]:
        """Yield (seq, body text) of every event after `since`, in order (what replay folds)."""

    def raw_rows(self) -> Iterator[tuple[Any, ...]]:
        """Yield (seq, ts, kind, cohort, package, version, body, prev_hash, hash) of every row, for verify."""

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


def _diff(seq: int, payload: Any) -> list[Any]:
    diff = payload.get("diff", []) if isinstance(payload, dict) else None
    if not isinstance(diff, list) or not all(isinstance(c, list) and len(c) == 3 and isinstance(c[0], list)
                                             and c[0] and all(isinstance(p, str) for p in c[0]) for c in diff):
        raise LedgerError(f"entry {seq}: its diff is not a list of [path, old, new] changes; "
                          f"run `mdq ledger verify` to see the damage")
    return diff


def state_events(rows: Iterable[tuple[int, str]], since: int = 0, at: str | None = None,
                 kinds: frozenset[str] = STATE_CHANGING) -> Iterator[tuple[int, str, str, list[Any], dict[str, Any]]]:
    """Yield (seq, kind, cohort, diff, payload) of the events of `kinds` among `rows`, read from hashed bodies.

    `rows` are (seq, body text) of every event after `since`; a gap in the sequence is refused.
    """
    limit = normalize_ts(at) if at else None
    expected, loads, state = since + 1, orjson.loads, kinds
    for seq, text in rows:
        if seq != expected:
            raise LedgerError(f"entry {expected} is missing (the next one is {seq}): the ledger was cut; "
                              f"run `mdq ledger verify` and restore it from a copy")
        expected += 1
        # the kind, read without decoding the body: keys are sorted (actor, cohort, kind, ...) and a JSON
        # string cannot hold an unescaped quote, so the first `,"kind":"` is the top-level key
        i = text.find(',"kind":"') + 9
        kind = text[i:text.find('"', i)] if i > 8 else ""
        if kind not in state:
            continue
        try:
            d = loads(text)
            ok = d["seq"] == seq and d["kind"] == kind
        except (ValueError, KeyError, TypeError):
            ok = False
        if not ok:
            raise LedgerError(f"entry {seq}: its body is unreadable or names another entry; run `mdq ledger verify`")
        if limit is not None and d["ts"] > limit:
            return
        payload = d["payload"]
        diff = payload.get("diff", []) if type(payload) is dict else None
        yield seq, kind, d["cohort"], diff if type(diff) is list else _diff(seq, payload), payload


def replay_ledger(ledger: Ledger, at: str | None = None) -> dict[str, ControlState]:
    """Rebuild every cohort's state at time `at` from the ledger's hashed bodies."""
    return replay_with_base(ledger.rows(), at)[1]


def replay(events: Iterable[Event], at: str | None = None) -> dict[str, ControlState]:
    """Rebuild every cohort's state as it was at time `at` (ISO 8601; None = now) from Event objects."""
    return replay_with_base(((e.seq, e.text or canonical(e.body())) for e in events), at)[1]


def replay_with_base(rows: Iterable[tuple[int, str]], at: str | None = None,
                     ) -> tuple[ControlState, dict[str, ControlState]]:
    """Return (the base state plugins declared, every cohort's state) at time `at`, in one pass over `rows`."""
    with gc_paused():
        work: dict[str, dict] = {}
        seqs: dict[str, int] = {}
        base: dict = {}
        base_seq = 0
        for seq, kind, cohort, diff, _payload in state_events(rows, 0, at):
            targets = [base, *work.values()] if kind in GLOBAL else [work.get(cohort) or work.setdefault(cohort, dict(base))]
            try:
                for data in targets:
                    patch(data, diff)
            except (TypeError, ValueError):  # checked here, not up front: replay folds millions of diffs
                _diff(seq, {"diff": None})
            if kind in GLOBAL:
                base_seq = seq
                seqs = {c: seq for c in work}
            else:
                seqs[cohort] = seq
        states = {c: ControlState(d, seqs.get(c, base_seq)) for c, d in work.items()}
        states.setdefault("default", ControlState(base, base_seq))
        return ControlState(base, base_seq), states


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
