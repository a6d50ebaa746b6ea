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
        register("good-gate", lambda pkg, state: mdqcore.GateResult.passed())

    @mdqcore.hookimpl
    def register_index_features(register):
        register("good-feature", semiring="max")
"""
