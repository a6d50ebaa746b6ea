"""Fixtures shared by the kernel's and the first-party plugins' tests: ledgers of every backend, a core registry."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def pg_server():
    """Start a throw-away PostgreSQL cluster on 127.0.0.1; yield a function making fresh database URLs."""
    from mdqcore.errors import LedgerError

    try:
        from mdq_ledger_postgres import LocalCluster
    except ImportError:
        pytest.skip("PostgreSQL tests skipped: mdq-ledger-postgres is not installed (scripts/setup.sh installs it)")
    try:
        cluster = LocalCluster()
    except LedgerError as exc:
        pytest.skip(f"PostgreSQL tests skipped: {exc} (.ci/run installs it)")
    yield cluster.fresh_url
    cluster.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def ledger(request, tmp_path):
    """A fresh ledger of each backend: both must pass the same tests."""
    if request.param == "sqlite":
        from mdqcore.ledger.sqlite import SQLiteLedger

        led = SQLiteLedger(tmp_path / "ledger.sqlite")
    else:
        from mdq_ledger_postgres import PostgresLedger

        led = PostgresLedger(request.getfixturevalue("pg_server")())
    yield led
    led.close()


@pytest.fixture
def core_registry():
    """The kernel's core plugin loaded in isolation, plus a small operator/length plugin."""
    import mdqcore
    from mdqcore import builtin
    from mdqcore.testing import load_isolated

    class Ops:
        @mdqcore.hookimpl
        def register_operators(self, register):
            register("L", object(), params={"lambda_lex": (0.0, 1.0), "tau": (0.0, 1.0)},
                     defaults={"lambda_lex": 0.3, "tau": 0.75})

        @mdqcore.hookimpl
        def register_length_policies(self, register):
            register("table", object(), params={"Lp_max": (3, 8), "lambda_p": (0.0, 1.0)},
                     defaults={"Lp_max": 6, "lambda_p": 0.1})

    reg = load_isolated(builtin, "core")
    return load_isolated(Ops(), "ops", registry=reg)
