"""The MDQ calculus and `mdq propose` (issue #4)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

from mdq_calculus.calculus import (
    CalculusError, balance, clip, commutator_norms, commutator_penalty, propose_deltas, quantize,
)
from mdq_calculus.commands import propose_package


def test_quantize_worked_example():
    assert quantize([0.04, -0.09], beta=0.5, eta=0.05).tolist() == [0.05, -0.05]
    assert quantize([0.0001], beta=0.5, eta=0.05)[0] == pytest.approx(0.01)  # sub-linear: small v grows


@given(v=st.floats(-100, 100), beta=st.floats(0.05, 1.0), eta=st.floats(1e-3, 10))
def test_quantize_keeps_sign_and_never_exceeds_eta(v, beta, eta):
    q = quantize([v], beta, eta)[0]
    assert abs(q) <= eta + 1e-12 and (np.sign(q) == np.sign(v) or q == 0)


def test_commutators_of_commuting_and_non_commuting_generators():
    diag1, diag2 = np.diag([1.0, 2.0]), np.diag([3.0, 4.0])
    shift = np.array([[0.0, 1.0], [0.0, 0.0]])
    C = commutator_norms(np.stack([diag1, diag2, shift]))
    assert C[0, 1] == 0 and C[0, 2] > 0 and np.allclose(C, C.T)
    pen = commutator_penalty(C, [1.0, 1.0, 1.0], lambda_comm=0.5)
    assert pen[1] > 0 and pen.shape == (3,)


def test_penalty_shrinks_but_never_flips_a_step():
    C = np.array([[0.0, 10.0], [10.0, 0.0]])
    d = propose_deltas([0.04, -0.04], beta=1.0, eta=1.0, lambda_comm=1.0, C=C, pi=[1.0, 1.0])
    assert d.tolist() == [0.0, 0.0]
    d = propose_deltas([0.04, -0.04], beta=1.0, eta=1.0, lambda_comm=0.001, C=C, pi=[1.0, 1.0])
    assert d[0] == pytest.approx(0.03) and d[1] == pytest.approx(-0.03)


def test_clip_to_admissible_interval():
    assert clip(np.array([0.5, -0.5]), [0.8, 0.2], [0, 0], [1, 1]).tolist() == pytest.approx([0.2, -0.2])
    with pytest.raises(CalculusError, match="lo > hi"):
        clip(np.array([0.1]), [0.0], [1.0], [0.0])


def test_balance_solves_lambda_inverse_v():
    L = np.array([[2.0, 0.5], [0.5, 1.0]])
    d = balance([1.0, 0.5], L)
    assert np.allclose(L @ d, [1.0, 0.5])


@pytest.mark.parametrize("L, fragment", [
    ([[1.0, 2.0], [2.0, 1.0]], "not positive definite"),
    ([[0.0, 0.0], [0.0, 0.0]], "not positive definite"),
    ([[1.0, 0.2], [0.0, 1.0]], "must be symmetric"),
    ([[1.0]], "must be 2x2"),
])
def test_balance_rejects_bad_lambda(L, fragment):
    with pytest.raises(CalculusError, match=fragment):
        balance([1.0, 1.0], L)


@pytest.mark.parametrize("call, fragment", [
    (lambda: quantize([1.0], 1.5, 0.1), "beta must be in"),
    (lambda: quantize([1.0], 0.5, 0.0), "eta"),
    (lambda: quantize([float("nan")], 0.5, 0.1), "non-finite"),
    (lambda: quantize([[1.0]], 0.5, 0.1), "must be a vector"),
    (lambda: commutator_norms(np.zeros((2, 2, 3))), "shape"),
])
def test_bad_inputs(call, fragment):
    with pytest.raises(CalculusError, match=fragment):
        call()


def test_propose_builds_a_reversible_package(core_registry, ledger):
    from mdqcore import load_package
    from mdqcore.runtime.hotplug import Runtime

    state = Runtime(core_registry, ledger).current
    stats = {"name": "mdq.op.tune", "semver": "1.0.0", "beta": 0.5, "eta": 0.05, "params": [
        {"atom": {"type": "Op", "op": "L", "param": "lambda_lex"}, "v": 0.04},
        {"atom": {"type": "Op", "op": "L", "param": "tau"}, "v": -0.09},
        {"atom": {"type": "Idx", "feature": "idf", "seg": "奥司他韦"}, "v": 0.0}]}
    doc = propose_package(stats, state)
    pkg = load_package(doc)
    assert [(a.param, a.delta) for a in pkg.atoms] == [("lambda_lex", 0.05), ("tau", -0.05)]
    assert [a.delta for a in pkg.inverse_atoms()] == [0.05, -0.05] and not pkg.rollback.auto
    stats["params"][0]["v"] = 100.0
    stats["eta"] = 5.0
    assert load_package(propose_package(stats, state)).atoms[0].delta == pytest.approx(0.7)  # clipped to 1.0


def test_propose_cli(tmp_path, mdq_cli_plugins):
    import json

    from click.testing import CliRunner

    from mdqcore.cli import main

    mdq_cli_plugins("calculus")
    stats = tmp_path / "stats.json"
    stats.write_text(json.dumps({"name": "mdq.gate.tune", "semver": "0.1.0", "beta": 0.5, "eta": 0.05, "params": [
        {"atom": {"type": "Gate", "gate": "budget", "param": "ceiling"}, "v": 0.3}]}))
    r = CliRunner().invoke(main, ["propose", "--stats", str(stats)])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["atoms"] == [{"type": "Gate", "gate": "budget", "param": "ceiling", "delta": 0.05}]
    assert doc["rollback"]["inverse"][0]["delta"] == -0.05
    stats.write_text('{"params": [{"atom": {"type": "Op"}, "v": 1}]}')
    assert CliRunner().invoke(main, ["propose", "--stats", str(stats)]).exit_code == 2
    r = CliRunner().invoke(main, ["propose", "--help"])
    assert r.exit_code == 0 and "Example" in r.output
