"""mdq-geoquant as an mdq plugin: its capabilities, and a package changing its thresholds live."""

import pytest

from mdq_geoquant import plugin
from mdq_geoquant.constrained import param
from mdqcore import builtin, load_package
from mdqcore.ledger.sqlite import SQLiteLedger
from mdqcore.runtime.hotplug import Runtime
from mdqcore.testing import load_isolated


@pytest.fixture
def reg():
    return load_isolated(plugin, "geoquant", registry=load_isolated(builtin, "core"))


def test_registers_operator_classifiers_and_command(reg):
    assert reg.names("operator") == ["geoquant"]
    selectors = ["geoquant", "hessian", "kfac", "md", "random", "weight-error"]
    assert reg.names("outlier_classifier") == sorted(["functional", "sensitive", *selectors])
    assert reg.get("outlier_classifier", "functional").obj(threshold=0.5).threshold == 0.5
    # the row selectors of `mdq quantize --outliers` say so; the classifiers do not
    assert [n for n in reg.names("outlier_classifier") if reg.get("outlier_classifier", n).meta.get("selects_rows")] \
        == selectors
    assert reg.get("outlier_classifier", "hessian").obj(keep=0.02).keep == 0.02
    assert reg.names("command") == ["geoquant"]


def test_a_package_moves_tau_priv_and_a_rollback_restores_it(reg, tmp_path):
    rt = Runtime(reg, SQLiteLedger(str(tmp_path / "l.sqlite")))
    rt.set_policy({"allow_skip_shadow": True}, None, "geoquant registers no KPI evaluator")
    assert param(rt.snapshot(), "tau_priv") == 0.6
    pkg = load_package({"name": "privacy", "semver": "1.0.0", "tests": ["legal"],
                        "atoms": [{"type": "Op", "op": "geoquant", "param": "tau_priv", "value": 0.75}]})
    rt.apply(pkg)
    assert param(rt.snapshot(), "tau_priv") == 0.75
    rt.rollback("privacy")
    assert param(rt.snapshot(), "tau_priv") == 0.6
    rt.close()
