"""KPI analysis and checks fail closed (issue #16): NaN, zero inputs, missing evaluators, ceilings."""

from __future__ import annotations

import math

import pytest

import mdqcore
from mdqcore.errors import Rejected
from mdqcore.ledger.sqlite import SQLiteLedger
from mdqcore.runtime import Runtime
from mdqcore.testing import load_isolated

INPUTS = [{"key": f"k{i}"} for i in range(6)]


def pkg(name="p", version="1.0.0", **kw):
    return mdqcore.load_package({"name": name, "semver": version, "atoms": [
        {"type": "Idx", "feature": "idf", "seg": "x", "delta": 0.1}], **kw})


def runtime(core_registry, tmp_path, fn=None, lower=()):
    reg = core_registry
    if fn is not None:
        class Ev:
            @mdqcore.hookimpl
            def register_evaluators(self, register):
                register("kpi", fn, lower_is_better=lower)
        reg = load_isolated(Ev(), "ev", registry=core_registry)
    return Runtime(reg, SQLiteLedger(tmp_path / "l.sqlite"))


def kinds(rt):
    return [e.kind for e in rt.ledger.events()]


def test_zero_inputs_never_pass_shadow(core_registry, tmp_path):
    # issue #14/#16: `mdq pkg apply` recorded `shadow_passed` with "inputs": 0
    rt = runtime(core_registry, tmp_path, lambda s, i: {"ok": 1.0})
    with pytest.raises(Rejected, match="0 recorded inputs, the policy requires at least 1"):
        rt.apply(pkg())
    assert "shadow_passed" not in kinds(rt) and rt.current.packages() == {}


def test_skipping_shadow_is_allowed_only_by_policy_and_recorded_as_such(core_registry, tmp_path):
    rt = runtime(core_registry, tmp_path, lambda s, i: {"ok": 1.0})
    rt.set_policy({"allow_skip_shadow": True, "min_shadow_inputs": 10}, None, "test")
    rt.apply(pkg(), inputs=INPUTS[:3])
    assert "shadow_skipped" in kinds(rt) and "shadow_passed" not in kinds(rt)
    skipped = [e for e in rt.ledger.events() if e.kind == "shadow_skipped"][0]
    assert "3 recorded inputs, under the policy's 10" in skipped.reason


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, "high", None])
def test_a_kpi_that_is_not_a_finite_number_fails(core_registry, tmp_path, bad):
    rt = runtime(core_registry, tmp_path, lambda s, i: {"score": bad if s.index("idf", "x") else 1.0})
    with pytest.raises(Rejected, match="kpi.score is not a finite number"):
        rt.apply(pkg(), inputs=INPUTS)


def test_a_nan_baseline_does_not_wave_later_regressions_through(core_registry, tmp_path):
    # issue #16: while a package with a NaN KPI was active, later regressions passed too
    rt = runtime(core_registry, tmp_path, lambda s, i: {"score": math.nan})
    with pytest.raises(Rejected, match="not a finite number"):
        rt.apply(pkg(), inputs=INPUTS)


def test_no_evaluator_loaded_means_nothing_can_pass(core_registry, tmp_path):
    # issue #16: the KPI check passed when the evaluator's plugin was not loaded
    rt = runtime(core_registry, tmp_path)
    with pytest.raises(Rejected, match="no KPI evaluator is loaded"):
        rt.apply(pkg(), inputs=INPUTS)


def test_a_required_kpi_nobody_measures_fails(core_registry, tmp_path):
    rt = runtime(core_registry, tmp_path, lambda s, i: {"ok": 1.0})
    rt.set_policy({"required_kpis": ["w_nc"]}, None, "word compliance must be measured")
    with pytest.raises(Rejected, match="KPI 'w_nc' is required but no loaded evaluator measured it"):
        rt.apply(pkg(), inputs=INPUTS)
    with pytest.raises(Rejected, match="KPI 'recall' is required"):
        rt.apply(pkg(kpi={"tolerance": {"recall": 0.01}}), inputs=INPUTS)


def test_a_package_cannot_raise_its_own_tolerance_over_the_ceiling(core_registry, tmp_path):
    # issue #16: a package set its own kpi.tolerance to 1e308 and every regression passed
    rt = runtime(core_registry, tmp_path, lambda s, i: {"coverage": 1.0 - s.index("idf", "x")})
    with pytest.raises(Rejected, match="over the policy's ceiling 0.05") as exc:
        rt.apply(pkg(kpi={"tolerance": {"coverage": 1e308}}), inputs=INPUTS)
    assert exc.value.stage == "check"
    rt.set_policy({"kpi_ceiling": {"coverage": 0.2}}, None, "coverage may dip while the index is rebuilt")
    rt.apply(pkg(kpi={"tolerance": {"coverage": 0.2}}), inputs=INPUTS)


def test_an_evaluator_that_raises_or_returns_garbage_fails(core_registry, tmp_path):
    def boom(state, inputs):
        raise ValueError("model file missing")
    rt = runtime(core_registry, tmp_path, boom)
    with pytest.raises(Rejected, match="evaluator 'kpi' failed: ValueError: model file missing"):
        rt.apply(pkg(), inputs=INPUTS)


def test_a_mandatory_gate_no_plugin_provides_refuses_every_package(core_registry, tmp_path):
    rt = runtime(core_registry, tmp_path, lambda s, i: {"ok": 1.0})
    rt.set_policy({"mandatory_gates": {"*": ["legal"], "canary": ["pii-scan"]}}, None, "scan canaries")
    rt.apply(pkg(), inputs=INPUTS)  # the default cohort needs only `legal`
    with pytest.raises(Rejected, match="no loaded plugin provides gate 'pii-scan' \\(the policy makes it mandatory\\)"):
        rt.apply(pkg(), inputs=INPUTS, cohort="canary")


def test_a_gate_that_raises_refuses(core_registry, tmp_path):
    class Bad:
        @mdqcore.hookimpl
        def register_gates(self, register):
            register("flaky", lambda pkg, state: 1 / 0)

    reg = load_isolated(Bad(), "bad", registry=core_registry)
    rt = Runtime(reg, SQLiteLedger(tmp_path / "l.sqlite"))
    with pytest.raises(Rejected, match="gate 'flaky' refused: raised ZeroDivisionError"):
        rt.apply(pkg(tests=["flaky"]), inputs=INPUTS)


def test_too_many_atoms_are_refused_by_policy(core_registry, tmp_path):
    rt = runtime(core_registry, tmp_path, lambda s, i: {"ok": 1.0})
    rt.set_policy({"max_atoms": 2}, None, "small packages only")
    big = mdqcore.load_package({"name": "big", "semver": "1.0.0", "atoms": [
        {"type": "Idx", "feature": "idf", "seg": f"s{i}", "delta": 0.01} for i in range(3)]})
    with pytest.raises(Rejected, match="3 atoms is over the policy's limit of 2"):
        rt.apply(big, inputs=INPUTS)
