"""What every `mdq` command shares: the consoles, `fail`, the plugin registry, shared options, openers.

A leaf: it imports nothing from the other CLI modules, so commands (the kernel's and plugins')
can import it without an import circle.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from ..plugins import load as load_plugins
from ..registry import Registry


class _LazyConsole:
    """A rich Console made on first use: `mdq --help` and most commands never pay for importing rich."""

    def __init__(self, **options: Any) -> None:
        self._options, self._console = options, None

    def __getattr__(self, name: str) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(highlight=False, soft_wrap=True, **self._options)
        return getattr(self._console, name)


out = _LazyConsole(width=None if sys.stdout.isatty() else 160)  # pipes and CI logs get wide tables, not 80 columns
err = _LazyConsole(stderr=True)

LEDGER_OPT = click.option("--ledger", "ledger_url", envvar="MDQ_LEDGER", metavar="URL",
                          help="Ledger: a path, sqlite:///PATH or postgresql://... (default: MDQ_LEDGER, "
                               "else a SQLite file in the user data directory).")
TRUST_OPT = click.option("--trust", "trust_path", envvar="MDQ_TRUST", type=click.Path(dir_okay=False),
                         help="Trust file (default: MDQ_TRUST, else trust.json in the user config directory). "
                              "A file named here must exist and be valid.")


@functools.lru_cache(maxsize=1)
def registry() -> Registry:
    """Load the installed plugins once per process (MDQ_PLUGINS limits which)."""
    return load_plugins()


def fail(msg: str, code: int = 2) -> NoReturn:
    """Print `msg` to stderr (no markup) and exit with `code` (2: bad input or environment; 1: refused)."""
    err.print(msg, markup=False)
    sys.exit(code)


def default_trust_path() -> Path:
    """Return the trust file used when none is named: trust.json in the user config directory."""
    from platformdirs import user_config_dir

    return Path(user_config_dir("mdq")) / "trust.json"


def open_ledger(ledger_url: str | None, *, readonly: bool = False) -> Any:
    """Open the ledger named by --ledger / MDQ_LEDGER (or the default); exit 2 with the reason if it cannot be."""
    from ..errors import LedgerError
    from ..ledger import open_ledger as _open

    try:
        return _open(ledger_url, registry(), readonly=readonly)
    except LedgerError as exc:
        fail(str(exc), 2)


def open_runtime(ledger_url: str | None, trust_path: str | None = None, actor: str | None = None) -> Any:
    """Open a writing Runtime on the ledger, with the trust file; exit 2 with the reason if either fails."""
    from ..errors import LedgerError, PolicyError, SignatureError
    from ..runtime import Runtime, TrustPolicy

    try:
        trust = TrustPolicy.load(trust_path) if trust_path else TrustPolicy.load_default(default_trust_path())
    except SignatureError as exc:
        fail(str(exc), 2)
    ledger = open_ledger(ledger_url)
    try:
        return Runtime(registry(), ledger, actor=actor or os.environ.get("USER", "mdq"), trust=trust)
    except (LedgerError, PolicyError, SignatureError) as exc:
        ledger.close()
        fail(str(exc), 2)


def print_state(s: Any, cohort: str, as_json: bool) -> None:
    """Print a control state as canonical JSON, or as a table of paths and values."""
    import json

    if as_json:
        click.echo(s.canonical())
        return
    from rich.table import Table

    table = Table(title=f"control state, cohort {cohort} ({len(s)} entries)")
    for c in ("path", "value"):
        table.add_column(c)
    for path in sorted(s.data, key=lambda p: tuple(map(str, p))):
        v = s.data[path]
        table.add_row("/".join(path), v["version"] if path[0] == "package" else json.dumps(v, ensure_ascii=False))
    out.print(table)


__all__ = ["LEDGER_OPT", "TRUST_OPT", "default_trust_path", "err", "fail", "open_ledger", "open_runtime", "out",
           "print_state", "registry"]
