"""Two `mdq serve` processes on one PostgreSQL ledger (issue #14): promotions reach both, a canary is
counted across both, and killing the leader mid-rollout lets the other finish it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

import mdqcore

from .conftest import ANSWERS, FAST, INPUTS


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _up(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not come up")


@pytest.fixture
def replicas(pg_server, tmp_path):
    from mdqcore.runtime import Runtime

    url = pg_server()
    reg = mdqcore.load_plugins(only=["core", "flexattn", "ledger_postgres"])
    from mdq_ledger_postgres import PostgresLedger

    op = Runtime(reg, PostgresLedger(url), actor="operator")
    op.set_policy(FAST, None, "tests: fast rollouts")
    env = {**os.environ, "MDQ_LEDGER": url, "MDQ_PLUGINS": "flexattn,serve,ledger_postgres",
           "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    procs, urls = [], []
    for _ in range(2):
        port = _port()
        procs.append(subprocess.Popen([sys.executable, "-m", "mdqcore.cli", "serve", "--port", str(port),
                                       "--tick", "0.05"], env=env, stderr=subprocess.PIPE, text=True))
        urls.append(f"http://127.0.0.1:{port}")
    for u in urls:
        _up(u)
    yield op, procs, urls
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
    op.ledger.close()


def _drive(urls, seconds, stop_when=None):
    """Alternate requests between replicas (bounded); return the arm counts per replica."""
    counts = {u: {"active": 0, "canary": 0} for u in urls}
    end, i = time.monotonic() + seconds, 0
    with httpx.Client(timeout=10) as c:
        while time.monotonic() < end and not (stop_when and stop_when()):
            u = urls[i % len(urls)]
            q, a = ANSWERS[i % len(ANSWERS)]
            i += 1
            try:
                r = c.post(u + "/v1/reward", json={"items": [{"question": q, "answer": a}]},
                           headers={"X-MDQ-Key": f"k{i}"})
            except httpx.HTTPError:
                continue  # a replica that was just killed
            assert r.status_code == 200, r.text
            counts[u][r.headers["x-mdq-arm"]] += 1
    return counts


def _closed(op, rollout):
    for ev in op.ledger.events(rollout):
        if ev.kind in ("promoted", "rolled_back") and ev.payload.get("rollout") == rollout:
            return ev
    return None


def test_a_promotion_through_either_is_served_by_both(replicas):
    op, _procs, urls = replicas
    ev = op.apply(mdqcore.load_package({"name": "boost", "semver": "1.0.0", "atoms": [
        {"type": "Idx", "feature": "idf", "seg": "环氧合酶", "delta": 0.02}]}), inputs=INPUTS)
    t0 = time.monotonic()
    for u in urls:
        while httpx.get(u + "/v1/state").json()["ledger"]["head"] < ev.seq:
            assert time.monotonic() - t0 < 5, f"{u} did not follow the promotion"
            time.sleep(0.01)
    assert all(httpx.get(u + "/v1/state").json()["cohorts"]["default"]["packages"] == {"boost": "1.0.0"}
               for u in urls)


def test_a_canary_is_counted_across_replicas_and_survives_its_leader(replicas):
    op, procs, urls = replicas
    _drive(urls, 1)  # warm up: the first request of each replica loads the scorer
    seq = op.begin_rollout(mdqcore.load_package({"name": "boost", "semver": "1.0.0", "atoms": [
        {"type": "Idx", "feature": "idf", "seg": "环氧合酶", "delta": 0.02}]}), inputs=INPUTS)
    # traffic until the first analysis, then kill the leader
    first = []

    def analysed():  # an interval that counted both replicas' observations
        first[:] = [e for e in op.ledger.events(seq) if e.kind == "analysis" and e.payload["rollout"] == seq
                    and len(e.payload["replicas"]) == 2]
        return bool(first)
    counts = _drive(urls, 30, analysed)
    assert first, "no analysis happened"
    assert all(c["canary"] > 0 for c in counts.values()), counts  # both replicas route to the canary
    leader_port = first[0].payload["leader"].split(":")[1]
    victim = next(i for i, u in enumerate(urls) if u.endswith(":" + leader_port))
    procs[victim].send_signal(signal.SIGKILL)
    procs[victim].wait(10)
    survivor = urls[1 - victim]
    _drive([survivor], 40, lambda: _closed(op, seq) is not None)
    end = _closed(op, seq)
    assert end is not None and end.kind == "promoted", end
    leaders = {e.payload["leader"] for e in op.ledger.events(seq) if e.kind == "analysis"}
    assert len(leaders) == 2  # the second replica took over the decision
    observed = {e.payload["replica"] for e in op.ledger.events(seq) if e.kind == "observed"}
    assert len(observed) == 2  # observations came from both replicas


def test_an_unreachable_ledger_keeps_requests_served_and_the_server_catches_up(tmp_path):
    # the ledger going away must not take the service down: state endpoints say 503, requests go on
    from mdq_ledger_postgres import LocalCluster, PostgresLedger
    from mdq_serve.commands import Background
    from mdq_serve.server import Pipelines, Server

    from mdqcore.errors import LedgerError
    from mdqcore.runtime import Runtime

    try:
        cluster = LocalCluster()
    except LedgerError as exc:
        pytest.skip(f"PostgreSQL tests skipped: {exc}")
    try:
        url = cluster.fresh_url()
        reg = mdqcore.load_plugins(only=["core", "flexattn", "ledger_postgres"])
        op = Runtime(reg, PostgresLedger(url))
        op.set_policy(FAST, None, "tests")
        bg = Background(Server(Runtime(reg, PostgresLedger(url)), Pipelines(reg), tick=0.1))
        body = {"items": [{"question": ANSWERS[0][0], "answer": ANSWERS[0][1]}]}
        assert httpx.post(bg.url + "/v1/reward", json=body, timeout=30).status_code == 200
        op.ledger.close()
        cluster.pause()
        deadline = time.monotonic() + 10
        while httpx.get(bg.url + "/v1/state").status_code != 503:
            assert time.monotonic() < deadline, "the state endpoint never noticed"
            time.sleep(0.1)
        r = httpx.get(bg.url + "/v1/state")
        assert "unreachable" in r.text and "last known state" in r.text
        assert httpx.post(bg.url + "/v1/reward", json=body).status_code == 200  # still served
        assert httpx.get(bg.url + "/healthz").json()["ledger"] != "ok"
        cluster.resume()
        op = Runtime(reg, PostgresLedger(url))
        ev = op.apply(mdqcore.load_package({"name": "after", "semver": "1.0.0", "atoms": [
            {"type": "Idx", "feature": "idf", "seg": "抑制剂", "delta": 0.01}]}), inputs=INPUTS)
        deadline = time.monotonic() + 20
        while True:
            r = httpx.get(bg.url + "/v1/state")
            if r.status_code == 200 and r.json()["ledger"]["head"] >= ev.seq:
                break
            assert time.monotonic() < deadline, "the server did not catch up after the ledger came back"
            time.sleep(0.1)
        assert r.json()["cohorts"]["default"]["packages"] == {"after": "1.0.0"}
        bg.stop()
        op.ledger.close()
    finally:
        cluster.stop()
