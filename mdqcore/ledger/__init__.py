"""The append-only ledger: events in a hash chain, backends (SQLite here; others by plugin), replay, verify."""

from .base import (
    GENESIS, KINDS, STATE_CHANGING, Event, Ledger, VerifyReport, chain_hash, diff_from_json, diff_to_json,
    make_event, now_ts, replay, replay_ledger, replay_with_base, verify,
)
from .open import default_url, open_ledger
from .sql import SQLLedger

__all__ = [
    "Event", "GENESIS", "KINDS", "Ledger", "SQLLedger", "STATE_CHANGING", "VerifyReport", "chain_hash", "default_url",
    "diff_from_json", "diff_to_json", "make_event", "now_ts", "open_ledger", "replay", "replay_ledger",
    "replay_with_base", "verify",
]
