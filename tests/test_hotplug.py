"""The hot-plug loader: stage -> shadow -> canary -> promote | rollback (issue #4)."""

from __future__ import annotations

import threading
import time

import attrs
import pytest
from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import mdqcore
from mdqcore.ledger import replay, verify
from mdqcore.ledger.sqlite import SQLiteLedger
from mdqcore.runtime.hotplug import Rejected, Runtime
from mdqcore.signing import TrustPolicy, generate, load_private, sign
from mdqcore.testing import load_isolated


def pkg(name="p.a", version="1.0.0", atoms=None, **kw):
    atoms = atoms or [{"type": "Idx", "feature": "idf", "seg": "奥司他韦", "delta": 0.1}]
    return mdqcore.load_package({"name": name, "semver": version, "atoms": atoms, **kw})


INPUTS = [{"key": f"user-{i}"} for i in range(8)]


def kinds(ledger):
    return [e.kind for e in ledger.events()]


class Neutral:
    """An evaluator that measures something and never regresses: shadow needs one to be able to pass."""

    @mdqcore.hookimpl
    def register_evaluators(self, register):
        register("neutral", lambda state, inputs: {"ok": 1.0})


@pytest.fixture
def reg(core_registry):
    return load_isolated(Neutral(), "neutral", registry=core_registry)


class _RT(Runtime):
    """A runtime whose applies bring recorded inputs unless a test says otherwise."""

    def apply(self, p, **kw):
        kw.setdefault("inputs", INPUTS)
        return super().apply(p, **kw)


@pytest.fixture
def rt(reg, ledger):
    return _RT(reg, ledger, actor="tester")


def test_promote_changes_state_and_writes_every_arrow(rt, ledger):
    res = rt.apply(pkg(tests=["legal", "budget"]))
    assert rt.current.index("idf", "奥司他韦") == pytest.approx(0.1) and rt.current.packages() == {"p.a": "1.0.0"}
    assert kinds(ledger) == ["genesis", "base", "received", "staged", "shadow_passed", "canary_started", "promoted"]
    assert res.seq == 7 and all(e.actor in ("tester", "mdq") for e in ledger.events())
    assert replay(ledger.events())["default"] == rt.current
    staged = [e for e in ledger.events() if e.kind == "staged"][0]
    assert set(staged.payload["gates"]) == {"legal", "budget", "blacklist"}  # every gate result is recorded
    assert all(g["ok"] for g in staged.payload["gates"].values())


def test_base_declares_bounds_and_defaults(rt):
    assert rt.current.param("Op", "L", "lambda_lex") == 0.3 and rt.current.bound(("param", "Op", "L", "tau")) == (0.0, 1.0)
    assert rt.current.param("Len", "", "Lp_max") == 6  # the only length policy is also the default one


@pytest.mark.parametrize("p, fragment", [
    (pkg(tests=["nosuchgate"]), "no loaded plugin provides gate 'nosuchgate'"),
    (pkg(atoms=[{"type": "Op", "op": "L", "param": "lambda_lex", "value": 3.0}]), "outside [0, 1]"),
    (pkg(atoms=[{"type": "Idx", "feature": "idf", "seg": "x", "delta": 5.0}]), "exceeds the budget ceiling"),
    (pkg(atoms=[{"type": "Op", "op": "L", "param": "lamda", "delta": 0.1}]), "has no parameter 'lamda'"),
    (pkg(requires={"mdq-not-installed": "^1"}), "mdq-not-installed ^1, which is not in the index"),
    (pkg(requires={"operator": "^9"}), "needs operator ^9"),
])
def test_refusals_change_nothing_and_leave_one_rejected_event(rt, ledger, p, fragment):
    before = rt.current
    with pytest.raises(Rejected) as e:
        rt.apply(p)
    assert fragment in str(e.value) and e.value.stage == "check"
    assert rt.current is before and kinds(ledger)[-2:] == ["received", "rejected"]


@pytest.mark.parametrize("tests", [["blacklist", "budget"], []])
def test_blacklisted_segment_is_refused_whatever_the_package_lists(rt, ledger, tests):
    # issue #16: the same boost was refused with tests ["blacklist", "budget"] and promoted with tests []
    rt.apply(pkg("bl", atoms=[{"type": "Idx", "feature": "blacklist", "seg": "赌博", "value": 1.0}]))
    with pytest.raises(Rejected, match="blacklisted segments: 赌博"):
        rt.apply(pkg(atoms=[{"type": "Idx", "feature": "idf", "seg": "赌博", "delta": 0.5}], tests=tests))
    rejected = [e for e in ledger.events() if e.kind == "rejected"][-1]
    assert rejected.payload["gates"]["blacklist"]["ok"] is False and rejected.payload["gates"]["blacklist"]["mandatory"]


def _with_evaluator(core_registry, fn, lower=()):  # the only evaluator: what it says decides
    class Ev:
        @mdqcore.hookimpl
        def register_evaluators(self, register):
            register("kpi", fn, lower_is_better=lower)
    return load_isolated(Ev(), "ev", registry=core_registry)


def test_shadow_regression_rolls_back_with_the_reason(core_registry, ledger):
    reg = _with_evaluator(core_registry, lambda s, inputs: {"coverage": 1.0 - s.index("idf", "奥司他韦")})
    rt = Runtime(reg, ledger)
    before = rt.current
    with pytest.raises(Rejected, match="kpi.coverage went from 1 to 0.9") as e:
        rt.apply(pkg(), inputs=[{"q": "x"}])
    assert e.value.stage == "shadow" and rt.current == before
    assert kinds(ledger)[-3:] == ["staged", "shadow_failed", "rolled_back"]


def test_tolerance_lets_a_small_regression_through(core_registry, ledger):
    reg = _with_evaluator(core_registry, lambda s, inputs: {"coverage": 1.0 - s.index("idf", "奥司他韦")})
    rt = Runtime(reg, ledger)
    rt.apply(pkg(kpi={"tolerance": {"coverage": 0.05}}, atoms=[{"type": "Idx", "feature": "idf", "seg": "奥司他韦",
                                                                "delta": 0.04}]), inputs=INPUTS)
    assert rt.current.packages() == {"p.a": "1.0.0"}


def test_lower_is_better_kpis(core_registry, ledger):
    reg = _with_evaluator(core_registry, lambda s, inputs: {"errors": 5 - 10 * s.index("idf", "奥司他韦")}, lower=("errors",))
    Runtime(reg, ledger).apply(pkg(), inputs=INPUTS)  # errors fell: promoted


def test_exception_in_an_evaluator_rolls_back(core_registry, ledger):
    def boom(state, inputs):
        raise RuntimeError("evaluator crashed")
    rt = Runtime(_with_evaluator(core_registry, boom), ledger)
    with pytest.raises(Rejected, match="RuntimeError: evaluator crashed"):
        rt.apply(pkg(), inputs=INPUTS)
    assert rt.current.packages() == {} and kinds(ledger)[-1] == "rolled_back"


def test_canary_routes_a_stable_fraction_and_watches_kpis(core_registry, ledger):
    seen = {}

    def kpi(state, inputs):
        seen.setdefault("sizes", []).append(len(inputs))
        return {"ok": 1.0}
    rt = Runtime(_with_evaluator(core_registry, kpi), ledger)
    inputs = [{"key": f"user-{i}"} for i in range(2000)]
    rt.apply(pkg(), inputs=inputs, canary=0.1)
    shadow_n, canary_n = seen["sizes"][0], seen["sizes"][2]
    assert shadow_n == 2000 and 140 < canary_n < 260  # ~10%, stable by hash


def test_snapshot_routes_requests_during_a_canary(rt):
    from mdqcore.runtime.hotplug import Slot
    staged, _ = rt.current.apply(pkg().atoms)
    rt._swap("default", Slot(rt.current, staged, 0.5, "salt"))
    got = [rt.snapshot("default", f"k{i}") is staged for i in range(400)]
    assert 150 < sum(got) < 250 and got == [rt.snapshot("default", f"k{i}") is staged for i in range(400)]


def test_no_silent_downgrade_but_explicit_rollback_with_a_reason(rt, ledger):
    rt.apply(pkg(version="1.4.2"))
    with pytest.raises(Rejected, match="versions only move forward"):
        rt.apply(pkg(version="1.0.0"))
    with pytest.raises(Rejected, match="already active"):
        rt.apply(pkg(version="1.4.2"))
    with pytest.raises(Rejected, match="needs a reason"):
        rt.apply(pkg(version="1.0.0"), allow_downgrade=True)
    rt.apply(pkg(version="1.0.0", atoms=[{"type": "Idx", "feature": "idf", "seg": "奥司他韦", "delta": 0.05}]),
             allow_downgrade=True, reason="1.4.2 lowered recall")
    assert rt.current.packages() == {"p.a": "1.0.0"} and rt.current.index("idf", "奥司他韦") == pytest.approx(0.05)
    received = [e for e in ledger.events() if e.kind == "received"][-1]
    assert received.payload["downgrade"] is True and received.reason == "1.4.2 lowered recall"


def test_a_rolled_back_or_older_version_needs_rollback_in_every_cohort(rt):
    # issue #16: after `mdq pkg rollback p` removed p@2.0.0, the old p@1.0.0 applied without --rollback
    rt.apply(pkg(version="1.0.0"))
    rt.apply(pkg(version="2.0.0"))
    rt.rollback("p.a")
    for v in ("1.0.0", "2.0.0"):
        with pytest.raises(Rejected, match="--rollback"):
            rt.apply(pkg(version=v))
    rt.apply(pkg(version="2.1.0"))  # forward is fine
    rt.apply(pkg(version="1.0.0"), cohort="canary")  # another cohort has its own history
    with pytest.raises(Rejected, match="expired"):
        rt.apply(pkg(version="3.0.0", expires="2020-01-01T00:00:00Z"))


def test_upgrade_replaces_the_old_version(rt):
    rt.apply(pkg(version="1.0.0"))
    rt.apply(pkg(version="2.0.0", atoms=[{"type": "Idx", "feature": "idf", "seg": "奥司他韦", "delta": 0.3}]))
    assert rt.current.index("idf", "奥司他韦") == pytest.approx(0.3)


def test_rollback_restores_and_composes_with_later_packages(rt, ledger):
    rt.apply(pkg("a", atoms=[{"type": "Op", "op": "L", "param": "lambda_lex", "delta": 0.2}]))
    rt.apply(pkg("b", atoms=[{"type": "Op", "op": "L", "param": "lambda_lex", "delta": 0.1}]))
    rt.rollback("a")
    assert rt.current.param("Op", "L", "lambda_lex") == pytest.approx(0.4)  # b's step stays
    rt.rollback("b")
    assert rt.current.param("Op", "L", "lambda_lex") == pytest.approx(0.3)
    with pytest.raises(Rejected, match="no active package 'a'"):
        rt.rollback("a")
    assert replay(ledger.events())["default"] == rt.current and verify(ledger).ok


def test_explicit_inverse_atoms_must_undo_exactly_what_the_package_did(rt):
    # issue #16: an inverse of 2 over a recorded 1.0 used to win; inverse atoms ran unchecked
    rt.apply(pkg("v", atoms=[{"type": "Op", "op": "L", "param": "tau", "value": 0.8}],
                 rollback={"inverse": [{"type": "Op", "op": "L", "param": "tau", "value": 0.75}]}))
    rt.rollback("v")
    assert rt.current.param("Op", "L", "tau") == 0.75
    with pytest.raises(Rejected, match="leaves param/Op/L/tau at 0.5, but the package found it at 0.75"):
        rt.apply(pkg("w", atoms=[{"type": "Op", "op": "L", "param": "tau", "value": 0.8}],
                     rollback={"inverse": [{"type": "Op", "op": "L", "param": "tau", "value": 0.5}]}))
    with pytest.raises(Rejected, match="touches index/idf/zzz, which the package does not change"):
        rt.apply(pkg("w", atoms=[{"type": "Op", "op": "L", "param": "tau", "value": 0.8}],
                     rollback={"inverse": [{"type": "Op", "op": "L", "param": "tau", "value": 0.75},
                                           {"type": "Idx", "feature": "idf", "seg": "zzz", "value": 5.0}]}))
    with pytest.raises(Rejected, match="unknown index feature 'nosuch'"):
        rt.apply(pkg("w", atoms=[{"type": "Op", "op": "L", "param": "tau", "value": 0.8}],
                     rollback={"inverse": [{"type": "Op", "op": "L", "param": "tau", "value": 0.75},
                                           {"type": "Idx", "feature": "nosuch", "seg": "q", "value": 1.0}]}))
    assert rt.current.packages() == {}


def test_two_packages_adding_to_one_new_entry_roll_back_exactly(rt):
    # issue #16: rolling back the first deleted the entry while the second was active
    rt.apply(pkg("a", atoms=[{"type": "Idx", "feature": "idf", "seg": "new", "delta": 0.1}]))
    rt.apply(pkg("b", atoms=[{"type": "Idx", "feature": "idf", "seg": "new", "delta": 0.2}]))
    rt.rollback("a")
    assert rt.current.index("idf", "new") == pytest.approx(0.2)
    rt.rollback("b")
    assert ("index", "idf", "new") not in rt.current.data


def test_cohorts_are_separate_gray_groups(rt, ledger):
    rt.apply(pkg(version="1.0.0"))
    rt.apply(pkg(version="2.0.0", atoms=[{"type": "Idx", "feature": "idf", "seg": "奥司他韦", "delta": 0.5}]), cohort="canary")
    assert rt.snapshot("default").packages() == {"p.a": "1.0.0"}
    assert rt.snapshot("canary").packages() == {"p.a": "2.0.0"}
    fresh = Runtime(rt.registry, ledger)
    assert fresh.snapshot("canary") == rt.snapshot("canary") and fresh.current == rt.current


def test_signatures_under_a_trust_policy(core_registry, ledger, tmp_path):
    key_path, pub = generate(tmp_path / "keys")
    policy = TrustPolicy.load_default(tmp_path / "trust.json")
    policy.trust(pub)
    rt = _RT(load_isolated(Neutral(), "neutral", registry=core_registry), ledger,
             trust=TrustPolicy.load(tmp_path / "trust.json"))
    with pytest.raises(Rejected, match="unsigned"):
        rt.apply(pkg())
    signed = sign(pkg(), load_private(key_path))
    with pytest.raises(Rejected, match="does not match the content"):
        rt.apply(attrs.evolve(signed, semver="9.9.9"))
    other, _ = generate(tmp_path / "other")
    with pytest.raises(Rejected, match="does not list"):
        rt.apply(sign(pkg(), load_private(other)))
    rt.apply(signed)
    assert rt.current.packages() == {"p.a": "1.0.0"}
    # issue #16: any trusted key could publish any name; a second key upgraded another signer's p to 9.0.0
    policy.trust(open(tmp_path / "other" / next(p.name for p in (tmp_path / "other").iterdir()
                                                 if p.suffix == ".pub")).read())
    rt.trust = TrustPolicy.load(tmp_path / "trust.json")
    with pytest.raises(Rejected, match="has been signed by key"):
        rt.apply(sign(pkg(version="9.0.0"), load_private(other)))


def test_four_readers_never_see_a_mixture_while_1000_packages_come_and_go(reg, tmp_path):
    rt = _RT(reg, SQLiteLedger(tmp_path / "c.sqlite"))
    stop, bad, reads = threading.Event(), [], [0]

    def reader(i: int) -> None:
        while not stop.is_set():
            s = rt.snapshot("default", f"r{i}-{reads[0]}")  # taken once, used to the end
            a, b = s.index("alias", "a", -1.0), s.index("alias", "b", -1.0)
            if a != b or (a >= 0) != ("k" in s.packages()):
                bad.append((a, b))
            reads[0] += 1
            time.sleep(0)  # a request handler yields (I/O); a pure spin would starve the writer of the GIL

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    try:
        for k in range(1000):
            v = (k % 10) * 0.01  # small sets: the mandatory budget gate runs on every package
            rt.apply(pkg("k", f"1.{k}.0", atoms=[{"type": "Idx", "feature": "alias", "seg": "a", "value": v},
                                                  {"type": "Idx", "feature": "alias", "seg": "b", "value": v}]))
            rt.rollback("k")
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert bad == [] and reads[0] > 1000


ATOM = st.sampled_from([
    {"type": "Idx", "feature": "idf", "seg": "x", "delta": 0.1}, {"type": "Idx", "feature": "alias", "seg": "y", "value": 0.5},
    {"type": "Op", "op": "L", "param": "lambda_lex", "delta": 0.25}, {"type": "Op", "op": "L", "param": "tau", "value": 0.9},
    {"type": "Len", "param": "Lp_max", "delta": 1}, {"type": "Idx", "feature": "idf", "seg": "z", "delta": -0.2}])


class LiveEqualsReplay(RuleBasedStateMachine):
    """Random apply / rollback / cohort sequences: the live state always equals replay(ledger)."""

    def __init__(self):
        super().__init__()
        import tempfile
        from pathlib import Path

        self.dir = tempfile.mkdtemp()
        self.ledger = SQLiteLedger(Path(self.dir) / "l.sqlite")
        self.rt = _RT(_REGISTRY[0], self.ledger)
        self.version = 0

    @rule(name=st.sampled_from(["a", "b", "c"]), cohort=st.sampled_from(["default", "canary", "group-a"]),
          atoms=st.lists(ATOM, min_size=1, max_size=3))
    def apply(self, name, cohort, atoms):
        self.version += 1
        try:
            self.rt.apply(pkg(name, f"1.0.{self.version}", atoms=atoms), cohort=cohort)
        except Rejected:
            pass

    @rule(name=st.sampled_from(["a", "b", "c"]), cohort=st.sampled_from(["default", "canary", "group-a"]))
    def rollback(self, name, cohort):
        try:
            self.rt.rollback(name, cohort=cohort)
        except Rejected:
            pass

    @invariant()
    def live_equals_replay(self):
        states = replay(self.ledger.events())
        for c in self.rt.cohorts():
            assert self.rt.snapshot(c) == states.get(c, states["default"]), c

    def teardown(self):
        self.ledger.close()


_REGISTRY: list = []


def test_stateful_live_equals_replay(reg):
    _REGISTRY[:] = [reg]
    from hypothesis.stateful import run_state_machine_as_test
    run_state_machine_as_test(LiveEqualsReplay, settings=settings(max_examples=25, stateful_step_count=15, deadline=None))
