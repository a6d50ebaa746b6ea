"""The pytest plugin that plugin authors use (issue #2)."""

from __future__ import annotations

import pytest

import mdqcore
from mdqcore import PluginError
from mdqcore.testing import load_isolated


class GoodPlugin:
    @mdqcore.hookimpl
    def register_gates(self, register):
        register("legal", lambda pkg, state: mdqcore.GateResult.passed())


class BrokenPlugin:
    @mdqcore.hookimpl
    def register_gates(self, register):
        raise RuntimeError("nope")


def test_fixture_loads_one_plugin_in_isolation(mdq_load_plugin):
    reg = mdq_load_plugin(GoodPlugin())
    assert list(reg.plugins) == ["plugin-under-test"]  # no entry-point scan: the template is absent
    assert reg.names("gate") == ["legal"]


def test_broken_plugin_fails_loudly_unless_allowed():
    with pytest.raises(PluginError, match="raised in hook register_gates: RuntimeError: nope"):
        load_isolated(BrokenPlugin())
    assert load_isolated(BrokenPlugin(), allow_broken=True).plugins["plugin-under-test"].status == "broken"


def test_registry_fixture_is_empty(mdq_registry):
    assert len(mdq_registry) == 0 and mdq_registry.plugins == {}


@pytest.mark.parametrize("names", [("core", "template"), ("core,template",), (" template ",)])
def test_cli_plugins_fixture_accepts_several_names(mdq_cli_plugins, names):
    # issue #18: mdq_cli_plugins("core", "acme") used to fail with a TypeError
    from mdqcore.cli import registry

    mdq_cli_plugins(*names)
    assert set(registry().plugins) == {"core", "template"}
