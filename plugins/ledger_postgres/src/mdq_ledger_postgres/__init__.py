"""mdq-ledger-postgres: the ledger in PostgreSQL, shared by several machines, and a throw-away test cluster."""

__all__ = ["LocalCluster", "PostgresLedger"]


def __getattr__(name: str) -> object:
    # psycopg loads only when the ledger is used, never when plugins register
    if name == "PostgresLedger":
        from .ledger import PostgresLedger

        return PostgresLedger
    if name == "LocalCluster":
        from .cluster import LocalCluster

        return LocalCluster
    raise AttributeError(name)
