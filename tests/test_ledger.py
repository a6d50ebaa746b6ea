"""The ledger: hash chain from hashed bytes, Merkle tree, checkpoints, every tamper caught (issues #4, #15)."""

from __future__ import annotations

import shutil
import sqlite3
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings, strategies as st

from mdqcore.errors import ConflictError, LedgerError
from mdqcore.ledger import (
    GENESIS, chain_hash, check_checkpoint, make_checkpoint, make_event, merkle, replay, replay_ledger, verify,
)
from mdqcore.ledger.base import canonical, normalize_ts
from mdqcore.ledger.open import open_ledger
from mdqcore.ledger.sqlite import SQLiteLedger
from mdqcore.signing import TrustPolicy, public_text


def _promote(led, cohort, diff, pkg="p", version="1.0.0", **kw):
    return led.append("promoted", cohort=cohort, package=pkg, version=version, actor="t",
                      payload={"diff": [[list(p), o, n] for p, o, n in diff]}, **kw)


def _tamper(led, sql):
    """Change rows as an adversary with write access to the database would: past the append-only triggers."""
    if isinstance(led, SQLiteLedger):
        led._execute("DROP TRIGGER IF EXISTS events_no_update")
        led._execute("DROP TRIGGER IF EXISTS events_no_delete")
    else:
        led._execute("ALTER TABLE mdq_events DISABLE TRIGGER USER")
    led._execute(sql)


def _three(ledger):
    for i, v in enumerate((0.1, 0.2, 0.3)):
        _promote(ledger, "default", [(("index", "idf", f"x{i}"), None, v)], version=f"1.{i}.0")


def _trust_and_key():
    key = Ed25519PrivateKey.generate()
    trust = TrustPolicy()
    trust.trust(public_text(key.public_key()))
    return trust, key


def test_a_new_ledger_starts_with_its_genesis_and_chains(ledger):
    a = ledger.append("received", cohort="default", package="p", version="1.0.0", actor="ann", reason="why")
    b = _promote(ledger, "default", [(("index", "idf", "x"), None, 0.1)])
    first = next(ledger.events())
    assert first.kind == "genesis" and first.payload["format"] == 2 and len(first.payload["nonce"]) == 32
    assert (a.seq, b.seq) == (2, 3) and b.prev_hash == a.hash
    rep = verify(ledger)
    assert rep.ok and rep.checked == 3 and rep.ledger_id == first.hash and rep.head == b.hash
    assert rep.root == merkle.root(merkle.leaf_hash(bytes.fromhex(e.hash)) for e in ledger.events()).hex()


def test_the_database_refuses_update_and_delete(ledger):
    _three(ledger)
    with pytest.raises(Exception, match="append-only"):
        ledger._execute("UPDATE events SET cohort = 'x' WHERE seq = 2")
    with pytest.raises(Exception, match="append-only"):
        ledger._execute("DELETE FROM events WHERE seq = 4")
    assert verify(ledger).ok


def test_altered_body_is_named(ledger):
    _three(ledger)
    _tamper(ledger, "UPDATE events SET body = replace(body, '0.2', '0.9') WHERE seq = 3")
    rep = verify(ledger)
    assert not rep.ok and rep.first_bad_seq == 3 and "altered after it was written" in rep.problem


@pytest.mark.parametrize("column, value", [("kind", "received"), ("cohort", "canary"),
                                           ("ts", "2000-01-01T00:00:00.000000Z"), ("package", "q"),
                                           ("version", "9.9.9")])
def test_an_edited_index_column_changes_nothing_and_verify_names_it(ledger, column, value):
    # issue #15: `update events set kind='received' where kind='rolled_back'` brought a rolled-back package back
    _three(ledger)
    before = replay_ledger(ledger)
    _tamper(ledger, f"UPDATE events SET {column} = '{value}' WHERE seq = 3")
    assert replay_ledger(ledger) == before  # state comes from the hashed bodies only
    rep = verify(ledger)
    assert not rep.ok and rep.first_bad_seq == 3 and f"column {column} disagrees with its hashed body" in rep.problem


def test_a_deleted_middle_row_is_named_and_replay_refuses_the_gap(ledger):
    _three(ledger)
    _tamper(ledger, "DELETE FROM events WHERE seq = 3")
    rep = verify(ledger)
    assert not rep.ok and rep.first_bad_seq == 4 and "an entry is missing" in rep.problem
    with pytest.raises(LedgerError, match="entry 3 is missing"):
        replay_ledger(ledger)


def test_garbage_body_is_named(ledger):
    _promote(ledger, "default", [(("index", "idf", "x"), None, 0.1)])
    _tamper(ledger, "UPDATE events SET body = '{not json' WHERE seq = 2")
    rep = verify(ledger)
    assert not rep.ok and rep.first_bad_seq == 2 and "not JSON" in rep.problem
    with pytest.raises(LedgerError, match="entry 2 is unreadable"):
        list(ledger.events())


def _rewrite_from(ledger, seq, change):
    """Rewrite entry `seq` with `change(body)` and recompute every later hash: a chain that verifies."""
    rows = list(ledger.raw_rows())
    prev = rows[seq - 2][8] if seq > 1 else GENESIS
    for r in rows[seq - 1:]:
        body = change(r[6]) if r[0] == seq else r[6]
        h = chain_hash(prev, body)
        _tamper(ledger, f"UPDATE events SET body = '{body}', prev_hash = '{prev}', hash = '{h}' WHERE seq = {r[0]}")
        prev = h


def test_a_diff_replay_cannot_fold_is_reported_by_verify_not_a_type_error(ledger):
    _three(ledger)
    _rewrite_from(ledger, 3, lambda b: b.replace('"diff":[[["index","idf","x1"],null,0.2]]', '"diff":5'))
    rep = verify(ledger)
    assert not rep.ok and rep.first_bad_seq == 3 and "replay could not fold it" in rep.problem
    with pytest.raises(LedgerError, match="entry 3: its diff is not a list"):
        replay_ledger(ledger)


def test_without_an_anchor_a_recomputed_chain_verifies_with_one_it_does_not(ledger):
    _three(ledger)
    trust, key = _trust_and_key()
    cp = check_checkpoint(make_checkpoint(ledger, key), trust)
    _rewrite_from(ledger, 3, lambda b: b.replace("0.2", "0.9"))
    assert verify(ledger).ok  # the chain alone cannot tell
    rep = verify(ledger, [cp])
    assert not rep.ok and "rewritten (hashes recomputed) or forked at or before entry 4" in rep.problem


@pytest.mark.parametrize("cut", [1, 2, 4])
def test_truncation_is_caught_by_a_checkpoint(ledger, cut):
    _three(ledger)
    trust, key = _trust_and_key()
    cp = check_checkpoint(make_checkpoint(ledger, key), trust)
    _tamper(ledger, f"DELETE FROM events WHERE seq > {4 - cut}")
    assert verify(ledger).ok  # cutting the newest rows leaves a valid chain
    rep = verify(ledger, [cp])
    assert not rep.ok and f"saw 4 entries, the ledger now has {4 - cut}" in rep.problem


def test_a_spliced_foreign_tail_or_another_ledger_is_caught(ledger, tmp_path):
    _three(ledger)
    trust, key = _trust_and_key()
    cp = check_checkpoint(make_checkpoint(ledger, key), trust)
    other = SQLiteLedger(tmp_path / "other.sqlite")
    _three(other)
    _promote(other, "default", [(("index", "idf", "z"), None, 1.0)])
    rep = verify(other, [cp])
    assert not rep.ok and "not the ledger the checkpoint" in rep.problem
    other.close()


def test_a_fork_of_a_copy_is_caught(tmp_path):
    a = SQLiteLedger(tmp_path / "a.sqlite")
    _three(a)
    a.close()
    shutil.copy(tmp_path / "a.sqlite", tmp_path / "b.sqlite")
    a, b = SQLiteLedger(tmp_path / "a.sqlite"), SQLiteLedger(tmp_path / "b.sqlite")
    _promote(a, "default", [(("index", "idf", "honest"), None, 1.0)], version="2.0.0")
    trust, key = _trust_and_key()
    cp = check_checkpoint(make_checkpoint(a, key), trust)
    _promote(b, "default", [(("index", "idf", "forged"), None, 1.0)], version="2.0.0")
    rep = verify(b, [cp])
    assert not rep.ok and "forked at or before entry 5" in rep.problem
    assert verify(a, [cp]).ok and verify(a, [cp]).anchored == 5


def test_checkpoints_must_be_signed_by_a_trusted_key(ledger):
    _three(ledger)
    trust, key = _trust_and_key()
    cp = make_checkpoint(ledger, key)
    with pytest.raises(LedgerError, match="does not list"):
        check_checkpoint(cp, TrustPolicy({"x" * 16: Ed25519PrivateKey.generate().public_key()}))
    with pytest.raises(LedgerError, match="does not match the content"):
        check_checkpoint({**cp, "seq": 3}, trust)
    with pytest.raises(LedgerError, match="is not a checkpoint"):
        check_checkpoint({"seq": "x"}, trust)


def test_compare_and_swap_refuses_a_stale_plan(ledger):
    e1 = _promote(ledger, "default", [(("index", "idf", "x"), None, 0.1)])
    _promote(ledger, "canary", [(("index", "idf", "y"), None, 0.1)])  # another cohort: not a conflict
    e3 = _promote(ledger, "default", [(("index", "idf", "x"), 0.1, 0.2)], expect=("default", e1.seq))
    head = ledger.head()
    with pytest.raises(ConflictError, match="moved on"):
        _promote(ledger, "default", [(("index", "idf", "x"), 0.1, 0.5)], expect=("default", e1.seq))
    assert ledger.head() == head  # nothing written
    ledger.append("base", cohort="default", actor="mdq", payload={"diff": []})
    with pytest.raises(ConflictError):  # a base change moves every cohort's head
        _promote(ledger, "canary", [(("index", "idf", "y"), 0.1, 0.2)], expect=("canary", e3.seq - 1))


def test_replay_at_a_moment(ledger):
    ledger.append("base", cohort="default", actor="mdq", payload={"diff": [[["semiring", "idf"], None, "sum"]]})
    _promote(ledger, "default", [(("index", "idf", "x"), None, 0.1)])
    time.sleep(0.01)
    middle = normalize_ts(__import__("datetime").datetime.now(__import__("datetime").timezone.utc).isoformat())
    time.sleep(0.01)
    _promote(ledger, "default", [(("index", "idf", "x"), 0.1, 0.3)], version="2.0.0")
    _promote(ledger, "canary", [(("index", "idf", "y"), None, 1.0)])
    then, now = replay(ledger.events(), at=middle), replay(ledger.events())
    assert then["default"].index("idf", "x") == 0.1 and "canary" not in then
    assert now["default"].index("idf", "x") == 0.3
    assert now["canary"].index("idf", "y") == 1.0 and now["canary"].get(("semiring", "idf")) == "sum"
    assert now["canary"].index("idf", "x") == 0.0  # cohorts are separate gray groups


def test_bad_time_is_a_clear_error(ledger):
    with pytest.raises(LedgerError, match="not an ISO 8601 time"):
        replay(ledger.events(), at="yesterday")


def test_open_ledger_by_url(tmp_path, core_registry):
    for url in (str(tmp_path / "a.sqlite"), f"sqlite:///{tmp_path / 'b.sqlite'}"):
        led = open_ledger(url, core_registry)
        assert isinstance(led, SQLiteLedger)
        led.close()
    with pytest.raises(LedgerError, match="no ledger backend handles 'redis'"):
        open_ledger("redis://x", core_registry)


def test_unopenable_path_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(LedgerError, match="cannot open ledger"):
        SQLiteLedger(tmp_path / "file" / "ledger.sqlite")


@pytest.mark.parametrize("make, fragment", [
    (lambda p: None, "no ledger at"),
    (lambda p: p.mkdir(), "is a directory"),
    (lambda p: p.write_bytes(b""), "is an empty file"),
    (lambda p: p.write_bytes(b"not a database at all" * 50), "not a readable SQLite ledger"),
    (lambda p: sqlite3.connect(p).execute("CREATE TABLE t (x)").connection.commit(), "not an mdq ledger"),
])
def test_readers_refuse_what_is_not_a_ledger_and_create_nothing(tmp_path, make, fragment):
    path = tmp_path / "l.sqlite"
    make(path)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(LedgerError, match=fragment):
        SQLiteLedger(path, readonly=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no -wal, -shm, nor the file itself


def test_a_reader_cannot_write(tmp_path):
    SQLiteLedger(tmp_path / "l.sqlite").close()
    r = SQLiteLedger(tmp_path / "l.sqlite", readonly=True)
    with pytest.raises(LedgerError, match="read-only"):
        r.append("received", cohort="default", actor="x")
    assert r.head() == 1 and verify(r).ok


def test_two_connections_share_one_chain(tmp_path):
    a, b = SQLiteLedger(tmp_path / "l.sqlite"), SQLiteLedger(tmp_path / "l.sqlite")
    for i in range(10):
        (a if i % 2 else b).append("received", cohort="default", actor=f"w{i}")
    assert [e.seq for e in a.events()] == list(range(1, 12)) and verify(b).ok


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 70), data=st.data())
def test_merkle_proofs_hold_and_fail_on_any_change(n, data):
    leaves = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(n)]
    root = merkle.root(leaves)
    m = data.draw(st.integers(0, n - 1))
    proof = merkle.inclusion_proof(leaves, m)
    assert merkle.verify_inclusion(leaves[m], m, n, proof, root)
    assert not merkle.verify_inclusion(merkle.leaf_hash(b"x"), m, n, proof, root)
    k = data.draw(st.integers(1, n))
    cons = merkle.consistency_proof(leaves, k)
    assert merkle.verify_consistency(k, n, merkle.root(leaves[:k]), root, cons)
    if k < n:
        assert not merkle.verify_consistency(k, n, merkle.leaf_hash(b"other"), root, cons)


def test_make_event_refuses_an_unknown_kind():
    with pytest.raises(LedgerError, match="unknown event kind"):
        make_event(1, GENESIS, "t", "invented", "default", None, None, "a", "", {})
    assert canonical({"b": 1, "a": (1, 2)}) == '{"a":[1,2],"b":1}'
