"""The ledger: hash chain, verify, replay to a moment (issue #4)."""

from __future__ import annotations

import time

import pytest

from mdqcore.ledger.base import LedgerError, normalize_ts, replay, verify
from mdqcore.ledger.open import open_ledger
from mdqcore.ledger.sqlite import SQLiteLedger


def _promote(led, cohort, diff, pkg="p", version="1.0.0"):
    return led.append("promoted", cohort=cohort, package=pkg, version=version, actor="t",
                      payload={"diff": [[list(p), o, n] for p, o, n in diff]})


def test_events_chain_and_verify(ledger):
    a = ledger.append("received", cohort="default", package="p", version="1.0.0", actor="ann", reason="why")
    b = _promote(ledger, "default", [(("index", "idf", "x"), None, 0.1)])
    assert (a.seq, b.seq) == (1, 2) and b.prev_hash == a.hash
    assert verify(ledger).ok and verify(ledger).checked == 2


def test_altered_row_is_named(ledger):
    _promote(ledger, "default", [(("index", "idf", "x"), None, 0.1)])
    _promote(ledger, "default", [(("index", "idf", "y"), None, 0.2)], version="1.1.0")
    _promote(ledger, "default", [(("index", "idf", "z"), None, 0.3)], version="1.2.0")
    ledger._execute("UPDATE events SET body = replace(body, '0.2', '0.9') WHERE seq = 2")
    rep = verify(ledger)
    assert not rep.ok and rep.first_bad_seq == 2 and "altered after it was written" in rep.problem


def test_deleted_row_is_named(ledger):
    for i in range(3):
        _promote(ledger, "default", [(("index", "idf", f"x{i}"), None, 0.1)], version=f"1.{i}.0")
    ledger._execute("DELETE FROM events WHERE seq = 2")
    rep = verify(ledger)
    assert not rep.ok and rep.first_bad_seq == 3 and "an entry is missing" in rep.problem


def test_garbage_row_is_named(ledger):
    _promote(ledger, "default", [(("index", "idf", "x"), None, 0.1)])
    ledger._execute("UPDATE events SET body = '{not json' WHERE seq = 1")
    rep = verify(ledger)
    assert not rep.ok and rep.first_bad_seq == 1 and "unreadable" in rep.problem
    with pytest.raises(LedgerError, match="entry 1 is unreadable"):
        list(ledger.events())


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


def test_two_connections_share_one_chain(tmp_path):
    a, b = SQLiteLedger(tmp_path / "l.sqlite"), SQLiteLedger(tmp_path / "l.sqlite")
    for i in range(10):
        (a if i % 2 else b).append("received", cohort="default", actor=f"w{i}")
    assert [e.seq for e in a.events()] == list(range(1, 11)) and verify(b).ok
