"""The append-only ledger: events in a hash chain with a Merkle tree, backends, replay, verify, checkpoints."""

from .base import (
    CLOSING, GENESIS, KINDS, STATE_CHANGING, Event, Ledger, canonical, chain_hash, diff_from_json, diff_to_json,
    make_event, now_ts, replay, replay_ledger, replay_with_base, state_events,
)
from .open import default_url, open_ledger
from .sql import SQLLedger
from .verify import VerifyReport, check_checkpoint, make_checkpoint, verify

__all__ = [
    "CLOSING", "Event", "GENESIS", "KINDS", "Ledger", "SQLLedger", "STATE_CHANGING", "VerifyReport", "canonical",
    "chain_hash", "check_checkpoint", "default_url", "diff_from_json", "diff_to_json", "make_checkpoint", "make_event",
    "now_ts", "open_ledger", "replay", "replay_ledger", "replay_with_base", "state_events", "verify",
]
