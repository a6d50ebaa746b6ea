"""Crash consistency: SIGKILL a process applying packages at random moments (issue #4).

After every kill the ledger verifies, and the state rebuilt from it equals exactly the state
after the m-th promotion (m = promoted events on disk): the state before or after the package
in flight, never a mixture; the next writer closes the killed apply with an `aborted` event.
20 kills by default, 200 in the slow suite.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import mdqcore
from mdqcore.ledger import replay, verify
from mdqcore.ledger.sqlite import SQLiteLedger
from mdqcore.runtime.hotplug import Runtime

WORKER = textwrap.dedent("""
    import sys, mdqcore
    from mdqcore import builtin
    from mdqcore.ledger.sqlite import SQLiteLedger
    from mdqcore.runtime.hotplug import Runtime
    from mdqcore.testing import load_isolated
    rt = Runtime(load_isolated(builtin, "core"), SQLiteLedger(sys.argv[1]), actor="worker")
    if rt.base.get(("policy",)) is None:  # core loads no evaluator: the policy lets shadow be skipped
        rt.set_policy({"allow_skip_shadow": True}, None, "crash test")
    k = int(rt.current.packages().get("seq", "1.0.0").split(".")[2])
    print("ready", flush=True)
    while True:
        k += 1
        rt.apply(mdqcore.load_package({"name": "seq", "semver": f"1.0.{k}", "atoms": [
            {"type": "Idx", "feature": "alias", "seg": "a", "value": (k % 10) / 100},
            {"type": "Idx", "feature": "alias", "seg": "b", "value": (k % 10) / 100},
            {"type": "Idx", "feature": "idf", "seg": f"t{k}", "delta": 0.01}]}))
""")


def _package(k: int) -> mdqcore.MdqPackage:
    return mdqcore.load_package({"name": "seq", "semver": f"1.0.{k}", "atoms": [
        {"type": "Idx", "feature": "alias", "seg": "a", "value": (k % 10) / 100},
        {"type": "Idx", "feature": "alias", "seg": "b", "value": (k % 10) / 100},
        {"type": "Idx", "feature": "idf", "seg": f"t{k}", "delta": 0.01}]})


def _kill_and_check(tmp_path, kills: int) -> dict:
    from mdqcore import builtin
    from mdqcore.testing import load_isolated

    reg = load_isolated(builtin, "core")
    path = tmp_path / "crash.sqlite"
    reference = Runtime(reg, SQLiteLedger(tmp_path / "reference.sqlite"))
    reference.set_policy({"allow_skip_shadow": True}, None, "crash test")
    ref_k = 0
    rng = random.Random(1234)
    divergences, promoted_seen = 0, []
    for _ in range(kills):
        proc = subprocess.Popen([sys.executable, "-c", WORKER, str(path)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 0.25))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        led = SQLiteLedger(path)
        rep = verify(led)
        assert rep.ok, rep.problem
        events = list(led.events())
        m = sum(e.kind == "promoted" for e in events)
        while ref_k < m:
            ref_k += 1
            reference.apply(_package(ref_k))
        restarted = Runtime(reg, led)  # a writer: it closes the killed apply with an `aborted` event
        assert led.open_applies() == [], "a crashed apply was left open"
        state = replay(events)["default"]
        if not (restarted.current == state == reference.current):
            divergences += 1
        assert restarted.current.index("alias", "a") == restarted.current.index("alias", "b")
        promoted_seen.append(m)
        led.close()
    return {"kills": kills, "divergences": divergences, "promotions": promoted_seen[-1]}


def test_sigkill_20_times(tmp_path):
    result = _kill_and_check(tmp_path, 20)
    print(f"\ncrash test: {result}")
    assert result["divergences"] == 0 and result["promotions"] > 0


@pytest.mark.slow
def test_sigkill_200_times(tmp_path):
    result = _kill_and_check(tmp_path, 200)
    print(f"\ncrash test: {result}")
    assert result["divergences"] == 0
