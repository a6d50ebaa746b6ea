"""mdq hooks of mdq-ledger-postgres: the `postgres` ledger backend (postgresql:// URLs)."""

from __future__ import annotations

from typing import Any

import mdqcore


@mdqcore.hookimpl
def register_ledger_backends(register: Any) -> None:
    """Register the PostgreSQL ledger for postgresql:// and postgres:// URLs."""
    register("postgres", "mdq_ledger_postgres.ledger:PostgresLedger", schemes=("postgresql", "postgres"))
