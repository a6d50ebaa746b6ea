"""Shared fixtures for the kernel's tests."""

from __future__ import annotations

import importlib
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
def make_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """Install a throw-away distribution (dist-info + module) on sys.path; return its entry-point name.

    This exercises the real importlib.metadata discovery rather than a mock.
    """
    monkeypatch.syspath_prepend(str(tmp_path))
    created: list[str] = []

    def make(ep_name: str, source: str | None, *, dist: str | None = None, version: str = "1.0.0",
             target: str | None = None) -> str:
        dist = dist or f"mdq-test-{ep_name}"
        module = f"mdqtest_{ep_name.replace('-', '_')}"
        if source is not None:
            (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
            created.append(module)
        info = tmp_path / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(f"[mdq.plugins]\n{ep_name} = {target or module}\n")
        importlib.invalidate_caches()
        return ep_name

    yield make
    for m in created:
        sys.modules.pop(m, None)


GOOD_PLUGIN = """
    import mdqcore

    @mdqcore.hookimpl
    def register_gates(register):
        register("legal", lambda pkg, state: mdqcore.GateResult.passed())

    @mdqcore.hookimpl
    def register_index_features(register):
        register("idf", object(), semiring="max")
"""


@pytest.fixture(scope="session")
def pg_server():
    """Start a throw-away PostgreSQL cluster on 127.0.0.1; yield a function making fresh database URLs."""
    from mdqcore.ledger.base import LedgerError
    from mdqcore.ledger.pgcluster import LocalCluster

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
        from mdqcore.ledger.postgres import PostgresLedger

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
