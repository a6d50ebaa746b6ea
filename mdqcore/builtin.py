"""The kernel's own plugin ("core"): generic index features, the standard gates, the SQLite ledger.

It is found through mdqcore's own entry point like any other plugin and always loads first;
`MDQ_PLUGINS=-core` turns it off, and tests can load it in isolation. Everything it registers is
a reference, so loading it imports neither the models nor SQLite.
"""

from __future__ import annotations

from typing import Any

from .hookspecs import hookimpl

# feature -> semiring: weights add up (idf boosts) or keep the strongest evidence (membership)
FEATURES = {"idf": "sum", "alias": "max", "synonym": "max", "regex": "max", "vector": "max", "blacklist": "max"}


@hookimpl
def register_index_features(register: Any) -> None:
    """Register the generic index feature families with their semirings."""
    for name, semiring in FEATURES.items():
        register(name, semiring=semiring, version="1.0.0")


@hookimpl
def register_gates(register: Any) -> None:
    """Register the standard hard gates."""
    register("legal", "mdqcore.gates:legal", version="1.0.0")
    register("budget", "mdqcore.gates:budget", version="1.0.0", params={"ceiling": (0.0, 1e9)}, defaults={"ceiling": 1.0})
    register("blacklist", "mdqcore.gates:blacklist", version="1.0.0")


@hookimpl
def register_ledger_backends(register: Any) -> None:
    """Register the embedded SQLite ledger (the default; other backends come from plugins)."""
    register("sqlite", "mdqcore.ledger.sqlite:SQLiteLedger", schemes=("sqlite", "file", ""))
