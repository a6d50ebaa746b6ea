"""Several machines sharing one PostgreSQL ledger: promotions propagate (issue #4)."""

from __future__ import annotations

import time

import pytest

import mdqcore
from mdqcore.ledger import verify
from mdq_ledger_postgres import PostgresLedger
from mdqcore.runtime.hotplug import Runtime


def _pkg(k: int) -> mdqcore.MdqPackage:
    return mdqcore.load_package({"name": "shared", "semver": f"1.0.{k}",
                                 "atoms": [{"type": "Idx", "feature": "alias", "seg": "a", "value": float(k)}]})


def _wait(pred, timeout=10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def machines(pg_server, core_registry):
    url = pg_server()
    a = Runtime(core_registry, PostgresLedger(url))
    a.set_policy({"allow_skip_shadow": True}, None, "the core registry loads no KPI evaluator")
    b = Runtime(core_registry, PostgresLedger(url))
    yield a, b
    a.close()
    b.close()


def test_promotion_reaches_a_listening_replica(machines):
    writer, replica = machines
    replica.follow(interval=0.5)
    writer.apply(_pkg(1))
    assert _wait(lambda: replica.current.index("alias", "a") == 1.0)
    assert replica.current == writer.current


def test_disconnected_replica_catches_up_from_the_ledger(machines):
    writer, replica = machines
    replica.follow(interval=0.2)
    follower = replica._follower
    assert follower.backend_pid is not None
    killer = writer.ledger._conn
    killer.execute("SELECT pg_terminate_backend(%s)", (follower.backend_pid,))
    for k in range(1, 4):  # promotions while the replica's LISTEN connection is down
        writer.apply(_pkg(k))
    assert _wait(lambda: replica.current.packages() == {"shared": "1.0.3"})
    assert follower.reconnects >= 1 and replica.current == writer.current


def test_two_writers_interleave_into_one_chain(machines):
    a, b = machines
    for k in range(1, 6):
        (a if k % 2 else b).apply(mdqcore.load_package({"name": f"w{k}", "semver": "1.0.0", "atoms": [
            {"type": "Idx", "feature": "idf", "seg": f"t{k}", "delta": 0.1}]}))
    a.refresh()
    b.refresh()
    assert a.current == b.current and len(a.current.packages()) == 5
    assert verify(a.ledger).ok


def test_unreachable_server_is_a_clear_error():
    from mdqcore.errors import LedgerError

    with pytest.raises(LedgerError, match="cannot connect to postgresql://nobody@127.0.0.1:1/x"):
        PostgresLedger("postgresql://nobody@127.0.0.1:1/x?connect_timeout=2")


def test_a_stuck_writer_blocks_no_reader_and_other_writers_get_a_clear_timeout(pg_server):
    # issue #15: opening the ledger took the writers' lock, so one stuck session blocked `verify` indefinitely
    import psycopg

    from mdqcore.errors import LedgerError
    from mdq_ledger_postgres.ledger import _LOCK_KEY

    url = pg_server()
    PostgresLedger(url).close()
    stuck = psycopg.connect(url, autocommit=True)
    stuck.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))  # a writer that never finishes
    try:
        reader = PostgresLedger(url, readonly=True)
        assert verify(reader).ok and reader.head() == 1
        with pytest.raises(LedgerError, match="read-only"):
            reader.append("received", cohort="default", actor="x")
        with pytest.raises(LedgerError, match="another writer held the lock"):
            PostgresLedger(url, lock_timeout="300ms")
    finally:
        stuck.close()


def test_a_database_without_the_table_is_not_a_ledger(pg_server):
    from mdqcore.errors import LedgerError

    with pytest.raises(LedgerError, match="is not an mdq ledger"):
        PostgresLedger(pg_server(), readonly=True)
