"""Open a ledger by URL through the registered ledger backends."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import LedgerError
from ..registry import Registry
from .base import Ledger

ENV = "MDQ_LEDGER"
FILE_SCHEMES = ("sqlite", "file", "")


def default_url() -> str:
    """Return MDQ_LEDGER, or one SQLite file under the user's data directory."""
    if os.environ.get(ENV):
        return os.environ[ENV]
    from platformdirs import user_data_dir

    return f"sqlite:///{Path(user_data_dir('mdq')) / 'ledger.sqlite'}"


def open_ledger(url: str | None, registry: Registry, *, readonly: bool = False) -> Ledger:
    """Open the ledger at `url` (a path, sqlite:///PATH or postgresql://...) with the backend for its scheme.

    Readers pass readonly=True: the backend then never creates, changes or write-locks anything.
    """
    url = url or default_url()
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    for cap in registry.of_kind("ledger_backend"):
        if scheme in cap.meta.get("schemes", ()):
            # file-like schemes hand the backend a path; network ones the whole URL
            return cap.obj(rest if scheme in FILE_SCHEMES else url, readonly=readonly)
    known = sorted({s for c in registry.of_kind("ledger_backend") for s in c.meta.get("schemes", ()) if s})
    hint = "is the core plugin loaded?" if not known else "install the plugin for it (e.g. mdq-ledger-postgres)"
    raise LedgerError(f"no ledger backend handles {scheme or 'plain paths'!r} in {url!r} "
                      f"(schemes: {', '.join(known) or 'none'}; {hint})")
