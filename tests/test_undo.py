"""Exact rollback (issue #16): any sequence of applies and rollbacks equals a fresh fold of what is still active."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import mdqcore
from mdqcore.errors import Rejected
from mdqcore.ledger import replay_ledger
from mdqcore.ledger.sqlite import SQLiteLedger
from mdqcore.model.state import ControlState
from mdqcore.runtime import Runtime
from mdqcore.runtime.undo import undo_diff
from mdqcore.testing import load_isolated

ATOMS = st.one_of(
    st.builds(lambda s, d: {"type": "Idx", "feature": "idf", "seg": s, "delta": d},
              st.sampled_from("xyz"), st.sampled_from([0.1, -0.05, 0.2, 0.013])),
    st.builds(lambda s, d: {"type": "Idx", "feature": "alias", "seg": s, "delta": d},
              st.sampled_from("xy"), st.sampled_from([0.1, 0.4, 0.25])),
    st.builds(lambda s, v: {"type": "Idx", "feature": "alias", "seg": s, "value": v},
              st.sampled_from("xy"), st.sampled_from([0.0, 0.3, 0.15])),
    st.builds(lambda d: {"type": "Op", "op": "L", "param": "lambda_lex", "delta": d}, st.sampled_from([0.05, -0.1, 0.2])),
    st.builds(lambda v: {"type": "Op", "op": "L", "param": "tau", "value": v}, st.sampled_from([0.5, 0.8, 0.9])),
    st.builds(lambda v: {"type": "Gate", "gate": "budget", "param": "ceiling", "value": v}, st.sampled_from([1.0, 2.0])),
)
STEPS = st.lists(st.one_of(
    st.tuples(st.just("apply"), st.sampled_from(["a", "b", "c", "d"]), st.lists(ATOMS, min_size=1, max_size=3)),
    st.tuples(st.just("rollback"), st.sampled_from(["a", "b", "c", "d"]), st.just([]))), min_size=1, max_size=12)


class Neutral:
    @mdqcore.hookimpl
    def register_evaluators(self, register):
        register("neutral", lambda state, inputs: {"ok": 1.0})


def _control(state: ControlState) -> dict:
    """The control plane itself, without the bookkeeping of which package did what."""
    return {p: v for p, v in state.data.items() if p[0] not in ("package", "history")}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=STEPS)
def test_any_applies_and_rollbacks_equal_a_fresh_fold_of_the_active_packages(core_registry, tmp_path_factory, steps):
    reg = core_registry if "neutral" in core_registry.plugins else load_isolated(Neutral(), "neutral",
                                                                                   registry=core_registry)
    led = SQLiteLedger(tmp_path_factory.mktemp("undo") / "l.sqlite")
    rt = Runtime(reg, led)
    base = rt.current
    applied: dict[str, mdqcore.MdqPackage] = {}
    for k, (what, name, atoms) in enumerate(steps):
        try:
            if what == "apply":
                p = mdqcore.load_package({"name": name, "semver": f"1.{k}.0", "atoms": atoms})
                rt.apply(p, inputs=[{"key": "k"}])
                applied[name] = p
            else:
                rt.rollback(name)
                applied.pop(name)
        except Rejected:
            pass  # refused packages (out of bounds, over budget, not active) change nothing
    order = sorted(rt.current.packages(), key=lambda n: rt.current.get(("package", n))["n"])
    assert set(order) == set(applied)
    fresh = base
    for name in order:
        fresh, _ = fresh.apply(applied[name].atoms)
    assert _control(rt.current) == _control(fresh)
    assert replay_ledger(led)["default"] == rt.current
    led.close()


def test_the_worked_example_of_the_module_docstring():
    s = ControlState({("semiring", "idf"): "sum", ("bound", "Gate", "g", "t"): [0.0, 10.0], ("param", "Gate", "g", "t"): 1.0})
    p_ops = [[["param", "Gate", "g", "t"], "set", 5.0, 1.0]]
    q_ops = [[["param", "Gate", "g", "t"], "add", 0.5, 5.0]]
    s = s.apply_diff([(("param", "Gate", "g", "t"), 1.0, 5.5),
                      (("package", "P"), None, {"version": "1.0.0", "n": 1, "ops": p_ops}),
                      (("package", "Q"), None, {"version": "1.0.0", "n": 2, "ops": q_ops})])
    after = s.apply_diff(undo_diff(s, "P"))
    assert after.param("Gate", "g", "t") == pytest.approx(1.5)
    assert after.get(("package", "Q"))["ops"][0][3] == 1.0  # Q now holds the baseline
    assert after.apply_diff(undo_diff(after, "Q")).param("Gate", "g", "t") == 1.0
