"""Tests of the template plugin, written as any third-party plugin author would."""

import mdqcore
import mdq_plugin_template


def _package(n_atoms: int) -> mdqcore.MdqPackage:
    atoms = [{"type": "Idx", "feature": "idf", "seg": f"term{i}", "delta": 0.01} for i in range(n_atoms)]
    return mdqcore.load_package({"name": "demo.budget", "semver": "1.0.0", "atoms": atoms})


def test_gate_refuses_over_budget_and_passes_within(mdq_load_plugin):
    registry = mdq_load_plugin(mdq_plugin_template)
    gate = registry.get("gate", "atom-budget").obj
    assert gate(_package(3)).ok
    refused = gate(_package(101))
    assert not refused.ok and "101 atoms" in refused.reason


def test_installed_entry_point_is_found():
    # proves the pyproject's entry point works once the distribution is installed
    registry = mdqcore.load_plugins(only=["template"])
    info = registry.plugins["template"]
    assert info.status == "ok", info.error
    assert info.distribution == "mdq-plugin-template"
    assert registry.get("gate", "atom-budget").plugin == "template"
