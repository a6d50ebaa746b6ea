"""Live progressive delivery: servers route, measure, and promote or roll back on their own (issue #14)."""

from __future__ import annotations

import time

import pytest
from click.testing import CliRunner

import mdqcore
from mdqcore.errors import Rejected

from .conftest import INPUTS

GOOD = {"name": "boost.cox", "semver": "1.0.0", "atoms": [{"type": "Idx", "feature": "idf", "seg": "环氧合酶",
                                                            "delta": 0.02}]}
BAD = {"name": "general.words", "semver": "1.0.0", "atoms": [{"type": "Op", "op": "flexattn",
                                                             "param": "general_weight", "value": 1.0}]}


def _outcome(op, rollout, timeout=20.0):
    """Follow the ledger until the rollout ends; return the closing event."""
    deadline, seen = time.monotonic() + timeout, rollout
    while time.monotonic() < deadline:
        for ev in op.ledger.events(seen):
            seen = ev.seq
            if ev.kind == "canary_started" and ev.payload.get("rollout") == rollout:
                rollout = ev.seq  # re-planned
            if ev.kind in ("promoted", "rolled_back", "aborted") and ev.payload.get("rollout") == rollout:
                return ev
        time.sleep(0.05)
    raise AssertionError("the rollout did not end")


def _analyses(op, rollout):
    return [e for e in op.ledger.events(rollout) if e.kind == "analysis" and e.payload["rollout"] == rollout]


def test_a_good_package_is_promoted_after_its_passing_intervals(served, traffic):
    op, url, server = served
    t = traffic(url)
    seq = op.begin_rollout(mdqcore.load_package(GOOD), inputs=INPUTS)
    end = _outcome(op, seq)
    assert end.kind == "promoted" and end.actor == "mdq-serve" and "passed 2 intervals in a row" in end.reason
    analyses = _analyses(op, seq)
    assert [a.payload["verdict"] for a in analyses][-2:] == ["pass", "pass"]
    assert all(a.payload["n"]["canary"] >= 10 for a in analyses[-2:])
    observed = [e for e in op.ledger.events(seq) if e.kind == "observed"]
    assert observed and all(e.payload["rollout"] == seq for e in observed)
    assert t.arms["canary"] > 0 and t.failed == []
    op.refresh()
    assert op.current.packages() == {"boost.cox": "1.0.0"}


def test_a_bad_package_is_rolled_back_with_the_measured_reason(served, traffic):
    op, url, server = served
    t = traffic(url)
    before = op.current
    seq = op.begin_rollout(mdqcore.load_package(BAD), inputs=INPUTS)
    end = _outcome(op, seq)
    assert end.kind == "rolled_back" and "general_share" in end.reason and "lower is better" in end.reason
    op.refresh()
    assert op.current == before and t.failed == []
    time.sleep(0.3)
    assert server.rt.rollouts == {} and server.rt.route("default", "k")[1] == "active"  # nobody routes to it now


def test_a_canary_without_traffic_never_promotes(served):
    op, url, server = served
    seq = op.begin_rollout(mdqcore.load_package(GOOD), inputs=INPUTS)
    end = _outcome(op, seq, timeout=30)
    assert end.kind == "rolled_back" and "no decision after" in end.reason
    assert all(a.payload["verdict"] == "insufficient" for a in _analyses(op, seq))


def test_one_live_rollout_per_cohort(served):
    op, _url, _server = served
    op.begin_rollout(mdqcore.load_package(GOOD), inputs=INPUTS)
    with pytest.raises(Rejected, match="has a live rollout of boost.cox@1.0.0"):
        op.apply(mdqcore.load_package({**GOOD, "name": "other"}), inputs=INPUTS)


def test_manual_promote_and_abort_are_recorded_with_actor_and_reason(served, tmp_path, mdq_cli_plugins):
    from mdqcore.cli import main

    op, _url, _server = served
    mdq_cli_plugins("core", "flexattn", "serve")
    env = {"MDQ_LEDGER": str(op.ledger.path), "USER": "dr-lee", "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    op.begin_rollout(mdqcore.load_package(GOOD), inputs=INPUTS)
    r = CliRunner().invoke(main, ["rollout", "status", "--json"], env=env)
    assert r.exit_code == 0 and '"package": "boost.cox@1.0.0"' in r.output
    r = CliRunner().invoke(main, ["rollout", "abort", "boost.cox", "--reason", "complaints"], env=env)
    assert r.exit_code == 0, r.output
    ev = [e for e in op.ledger.events() if e.kind == "rolled_back"][-1]
    assert ev.actor == "dr-lee" and "complaints" in ev.reason and ev.payload["manual"] is True
    op.refresh()
    op.begin_rollout(mdqcore.load_package({**GOOD, "semver": "1.0.1"}), inputs=INPUTS)
    r = CliRunner().invoke(main, ["rollout", "promote", "boost.cox", "--reason", "signed off"], env=env)
    assert r.exit_code == 0, r.output
    op.refresh()
    assert op.current.packages() == {"boost.cox": "1.0.1"}
    r = CliRunner().invoke(main, ["rollout", "abort", "boost.cox", "--reason", "x"], env=env)
    assert r.exit_code == 1 and "no live rollout" in r.output


def test_a_conflicting_promotion_replans_the_canary(served, traffic):
    op, url, server = served
    traffic(url)
    seq = op.begin_rollout(mdqcore.load_package(GOOD), inputs=INPUTS)
    from mdqcore.ledger.sqlite import SQLiteLedger
    from mdqcore.runtime import Runtime

    other = Runtime(op.registry, SQLiteLedger(op.ledger.path), actor="other")
    # a package promoted offline into the same cohort while the canary runs: the canary's plan is stale
    other.rollouts.clear()  # the other writer knowingly bypasses the one-rollout rule, as a racing writer would
    other.apply(mdqcore.load_package({"name": "racer", "semver": "1.0.0", "atoms": [
        {"type": "Idx", "feature": "idf", "seg": "抑制剂", "delta": 0.01}]}), inputs=INPUTS)
    end = _outcome(op, seq, timeout=30)
    assert end.kind == "promoted"
    restarted = [e for e in op.ledger.events(seq) if e.kind == "canary_started" and e.package == "boost.cox"]
    assert restarted and "re-planned" in restarted[0].reason
    op.refresh()
    assert op.current.packages() == {"boost.cox": "1.0.0", "racer": "1.0.0"}
