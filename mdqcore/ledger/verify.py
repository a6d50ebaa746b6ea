"""Verify a ledger from its hashed bytes alone, and anchor its head with signed checkpoints.

`verify` checks, row by row: the sequence has no gap; the body is canonical JSON of exactly the
event fields; every indexed column equals the body; the chain hash; time never goes back; the
kind is known; a state-changing event's diff can be folded. Without an anchor, a chain cannot
reveal that its newest rows were cut off or that the whole chain was rewritten with fresh
hashes. A **checkpoint** fixes that: a signed statement (ledger id, sequence number, head hash,
Merkle root, time) that another party keeps. Verifying against it detects truncation,
rewriting, forks and a foreign tail.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from attrs import frozen

from ..errors import LedgerError, SignatureError
from . import merkle
from .base import BODY_KEYS, GENESIS, KINDS, STATE_CHANGING, Ledger, _diff, canonical, chain_hash, now_ts

CHECKPOINT_KEYS = ("ledger", "seq", "head", "root", "ts")


@frozen
class VerifyReport:
    """What `verify` found: entries checked, the first problem (if any), the head and its anchors."""

    checked: int
    ok: bool
    first_bad_seq: int | None = None
    problem: str = ""
    ledger_id: str | None = None
    head: str = GENESIS
    root: str = ""
    anchored: int = 0  # the largest checkpointed sequence number the ledger was checked against


def _row_problem(row: tuple[Any, ...], expected: int, prev: str, last_ts: str) -> str:
    seq, ts, kind, cohort, package, version, body, stored_prev, stored_hash = row
    if seq != expected:
        return f"expected entry {expected} here but found {seq}: an entry is missing or out of order"
    try:
        d = orjson.loads(body)
    except (ValueError, TypeError):
        return "its body is not JSON"
    if not isinstance(d, dict) or set(d) != BODY_KEYS:
        return "its body does not hold exactly the event fields"
    if canonical(d) != body:
        return "its body is not in canonical form (it was rewritten outside mdq)"
    cols = {"seq": seq, "ts": ts, "kind": kind, "cohort": cohort, "package": package, "version": version}
    bad = [k for k, v in cols.items() if d[k] != v]
    if bad:
        return f"column{'s' if len(bad) > 1 else ''} {', '.join(bad)} disagree{'s' * (len(bad) == 1)} with its hashed body"
    if d["kind"] not in KINDS:
        return f"unknown kind {d['kind']!r}"
    if stored_prev != prev:
        return f"prev_hash does not match entry {seq - 1}'s hash (an entry was removed, inserted or replaced)"
    if chain_hash(prev, body) != stored_hash:
        return "content does not match its hash: the entry was altered after it was written"
    if d["ts"] < last_ts:
        return "its time is earlier than the entry before it"
    if d["kind"] in STATE_CHANGING:
        try:
            _diff(seq, d["payload"])
        except LedgerError:
            return "its diff is not a list of [path, old, new] changes: replay could not fold it"
    return ""


def verify(ledger: Ledger, checkpoints: Iterable[Mapping[str, Any]] = ()) -> VerifyReport:
    """Check every row and every (already signature-checked) checkpoint; report the first problem."""
    wanted = sorted(checkpoints, key=lambda c: c["seq"])
    stack: list[tuple[int, bytes]] = []
    prev, last_ts, n, ledger_id, anchored = GENESIS, "", 0, None, 0

    def report(first_bad: int | None = None, problem: str = "") -> VerifyReport:
        """What was found so far: the entries read, the head and Merkle root reached, and the problem if any."""
        return VerifyReport(n, not problem, first_bad, problem, ledger_id, prev, merkle.root_of_stack(stack).hex(),
                            0 if problem else anchored)

    for row in ledger.raw_rows():
        n += 1
        problem = _row_problem(row, n, prev, last_ts)
        if problem:
            return report(row[0], f"entry {row[0]} ({row[2]} {row[4] or ''}): {problem}".replace(" )", ")"))
        prev, last_ts = row[8], row[1]
        ledger_id = ledger_id or prev
        merkle.push(stack, merkle.leaf_hash(bytes.fromhex(prev)))
        while wanted and wanted[0]["seq"] == n:
            problem = _checkpoint_problem(wanted.pop(0), ledger_id, prev, merkle.root_of_stack(stack).hex())
            if problem:
                return report(n, problem)
            anchored = n
    for cp in wanted:  # checkpoints beyond the end: the ledger lost entries it once had
        if n == 0 or cp["ledger"] == ledger_id:
            return report(n + 1, f"truncated: a checkpoint signed at {cp['ts']} saw {cp['seq']} entries, "
                                 f"the ledger now has {n}")
        return report(None, _checkpoint_problem(cp, ledger_id, "", ""))
    return report()


def _checkpoint_problem(cp: Mapping[str, Any], ledger_id: str | None, head: str, root: str) -> str:
    if cp["ledger"] != ledger_id:
        return (f"this is not the ledger the checkpoint of {cp['ts']} describes (its first entry differs): "
                f"a different or re-created ledger")
    if cp["head"] != head or cp["root"] != root:
        return (f"entry {cp['seq']} is not what the checkpoint signed at {cp['ts']} saw: the ledger was rewritten "
                f"(hashes recomputed) or forked at or before entry {cp['seq']}")
    return ""


def make_checkpoint(ledger: Ledger, private: Any) -> dict[str, Any]:
    """Sign a checkpoint of the ledger's current head (ledger id, seq, head hash, Merkle root, time)."""
    from ..signing import sign_bytes

    rep = verify(ledger)
    if not rep.ok:
        raise LedgerError(f"refusing to checkpoint a ledger that does not verify: {rep.problem}")
    if rep.checked == 0:
        raise LedgerError("refusing to checkpoint an empty ledger: there is nothing to anchor")
    doc = {"ledger": rep.ledger_id, "seq": rep.checked, "head": rep.head, "root": rep.root, "ts": now_ts()}
    return {**doc, "signature": sign_bytes(canonical(doc).encode(), private)}


def check_checkpoint(doc: Any, trust: Any, *, source: str = "checkpoint") -> dict[str, Any]:
    """Return a checkpoint document if it is well formed and signed by a trusted key; else raise."""
    if not isinstance(doc, dict) or set(doc) != {*CHECKPOINT_KEYS, "signature"} or \
            not isinstance(doc.get("seq"), int) or isinstance(doc.get("seq"), bool) or doc["seq"] < 1 or \
            not all(isinstance(doc[k], str) for k in ("ledger", "head", "root", "ts", "signature")):
        raise LedgerError(f"{source} is not a checkpoint: expected {{{', '.join(CHECKPOINT_KEYS)}, signature}}")
    body = canonical({k: doc[k] for k in CHECKPOINT_KEYS}).encode()
    try:
        trust.verify_bytes(doc["signature"], body, what=source)
    except SignatureError as exc:
        raise LedgerError(str(exc)) from None
    return doc
