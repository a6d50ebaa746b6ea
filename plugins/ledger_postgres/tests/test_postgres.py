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
    a, b = Runtime(core_registry, PostgresLedger(url)), Runtime(core_registry, PostgresLedger(url))
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
    from mdqcore.ledger.base import LedgerError

    with pytest.raises(LedgerError, match="cannot connect to postgresql://nobody@127.0.0.1:1/x"):
        PostgresLedger("postgresql://nobody@127.0.0.1:1/x?connect_timeout=2")
