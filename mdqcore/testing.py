"""A pytest plugin for plugin authors: load one plugin in isolation, with a fresh registry.

Installed with mdqcore (entry point `pytest11`), so its fixtures are available in any test:

    def test_my_gate(mdq_load_plugin):
        import my_plugin
        registry = mdq_load_plugin(my_plugin)
        assert registry.get("gate", "atom-budget").obj(package, None).ok
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from .errors import PluginError
from .plugins import Loader
from .registry import Registry


def load_isolated(obj: Any, name: str = "plugin-under-test", *, allow_broken: bool = False,
                  registry: Registry | None = None) -> Registry:
    """Load one plugin object into a fresh (or given) registry without scanning entry points."""
    loader = Loader(registry)
    info = loader.load_object(obj, name)
    if info.status != "ok" and not allow_broken:
        raise PluginError(name, info.error or "broken")
    return loader.registry


@pytest.fixture
def mdq_registry() -> Registry:
    """Give an empty registry, unaffected by whatever plugins are installed."""
    return Registry()


@pytest.fixture
def mdq_load_plugin() -> Callable[..., Registry]:
    """Give a function that loads one plugin object in isolation and returns its registry.

    It raises PluginError if the plugin is broken, unless called with allow_broken=True.
    """
    return load_isolated


@pytest.fixture
def mdq_cli_plugins(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Give a function limiting the `mdq` CLI to the named plugins (MDQ_PLUGINS), with a fresh registry.

    The CLI loads plugins once per process; this clears that cache before and after the test.
    """
    from . import cli

    def use(names: str) -> None:
        monkeypatch.setenv("MDQ_PLUGINS", names)
        cli.registry.cache_clear()

    yield use
    cli.registry.cache_clear()
