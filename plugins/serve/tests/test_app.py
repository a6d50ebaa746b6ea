"""The served app: endpoints, errors that never carry a traceback, one snapshot per request, hot-plug."""

from __future__ import annotations

import time

import httpx
import pytest

import mdqcore

from .conftest import ANSWERS, INPUTS

REWARD = {"items": [{"question": "什么是阿司匹林？", "answer": "阿司匹林是一种环氧合酶抑制剂。", "key": "u1"}]}


def test_reward_endpoint_and_openrlhf_and_state(served):
    _op, url, _server = served
    r = httpx.post(url + "/v1/reward", json=REWARD)
    assert r.status_code == 200 and r.headers["x-mdq-arm"] == "active"
    body = r.json()
    assert len(body["rewards"]) == 1 and body["items"][0]["reward"] > 0 == body["rewards"][0] - body["items"][0]["reward"]
    assert {h["term"] for h in body["items"][0]["hits"]} >= {"阿司匹林", "环氧合酶", "抑制剂"}
    steps = httpx.post(url + "/v1/reward", json={**REWARD, "details": True}).json()["items"][0]["steps"]
    assert len(steps) == len(REWARD["items"][0]["answer"])
    r = httpx.post(url + "/get_reward", json={"query": ["问：什么是阿司匹林？答：阿司匹林是一种抑制剂。"],
                                              "prompts": ["问：什么是阿司匹林？答："]})
    assert r.status_code == 200 and len(r.json()["rewards"]) == 1
    state = httpx.get(url + "/v1/state").json()
    assert state["cohorts"]["default"]["packages"] == {} and state["pipelines"] == ["reward"]
    assert httpx.get(url + "/healthz").json()["ok"] is True
    metrics = httpx.get(url + "/metrics").text
    assert 'mdq_requests_total{arm="active",cohort="default",pipeline="reward"' in metrics
    assert "mdq_ledger_head" in metrics and 'mdq_kpi_count{arm="active",cohort="default",kpi="lexical"}' in metrics


@pytest.mark.parametrize("body, status, fragment", [
    (b"{bad", 400, "invalid JSON"),
    (b'{"items": [{"question": 5, "answer": "x"}]}', 422, "$.items[0].question"),
    (b'{"items": [{"question": "q"}]}', 422, "required field missing"),
    (b'{"items": []}', 422, "$.items"),
    (b'{"items": [{"answer": "x", "colour": 1}]}', 422, "$.items[0].colour"),
    (b'{"items": "x", "items": []}', 422, "duplicate key"),
    (b'[1, 2]', 422, "expected an object"),
    (b'{"query": 5}', 422, "$.query"),
])
def test_malformed_bodies_name_the_path(served, body, status, fragment):
    _op, url, _server = served
    route = "/get_reward" if b"query" in body else "/v1/reward"
    r = httpx.post(url + route, content=body)
    assert r.status_code == status and fragment in r.text and "Traceback" not in r.text


def test_oversized_unknown_and_wrong_method(served):
    _op, url, _server = served
    r = httpx.post(url + "/v1/reward", content=b"x" * (9 << 20))
    assert r.status_code == 413 and "over the limit" in r.text
    r = httpx.post(url + "/v1/nope", json={})
    assert r.status_code == 404 and "/v1/reward" in r.text
    assert httpx.get(url + "/v1/reward").status_code == 405
    r = httpx.post(url + "/v1/reward", json=REWARD, headers={"X-MDQ-Cohort": "nosuch"})
    assert r.status_code == 404 and "unknown cohort" in r.text


def test_a_promotion_made_elsewhere_changes_the_very_next_request(served):
    op, url, server = served
    before = httpx.post(url + "/v1/reward", json=REWARD).json()["items"][0]["reward"]
    pkg = mdqcore.load_package({"name": "boost", "semver": "1.0.0", "atoms": [
        {"type": "Idx", "feature": "idf", "seg": "环氧合酶", "delta": 0.05}]})
    ev = op.apply(pkg, inputs=INPUTS)
    deadline = time.monotonic() + 5
    while server.rt.head < ev.seq and time.monotonic() < deadline:
        time.sleep(0.01)
    r = httpx.post(url + "/v1/reward", json=REWARD)
    assert int(r.headers["x-mdq-state"]) >= ev.seq and r.json()["items"][0]["reward"] > before


class Probe:
    """A pipeline that reads its snapshot twice, a while apart, and says what it saw."""

    def handle(self, route, body, state):
        first = state.index("alias", "flip", -1.0)
        time.sleep(0.002)  # promotions land meanwhile
        return {"seq": state.seq, "first": first, "second": state.index("alias", "flip", -1.0)}, [{"flip": first}]


class ProbePlugin:
    @mdqcore.hookimpl
    def register_pipelines(self, register):
        register("probe", lambda: Probe(), routes=("/v1/probe",), kpis={"flip": "higher"})


def test_a_request_sees_exactly_one_snapshot(tmp_path):
    # while packages come and go, every answer comes from one state: the one its ledger entry says
    import threading

    from mdq_serve.commands import Background
    from mdq_serve.server import Pipelines, Server

    from mdqcore.ledger import replay_ledger
    from mdqcore.ledger.sqlite import SQLiteLedger
    from mdqcore.runtime import Runtime
    from mdqcore.testing import load_isolated

    reg = load_isolated(ProbePlugin(), "probe", registry=mdqcore.load_plugins(only=["core"]))
    op = Runtime(reg, SQLiteLedger(tmp_path / "l.sqlite"))
    op.set_policy({"allow_skip_shadow": True, "mandatory_gates": {"*": []}}, None, "a probe has no KPI evaluator")
    bg = Background(Server(Runtime(reg, SQLiteLedger(tmp_path / "l.sqlite")), Pipelines(reg), tick=0.02))
    seen, stop = [], threading.Event()

    def client():
        with httpx.Client(timeout=10) as c:
            while not stop.is_set():
                seen.append(c.post(bg.url + "/v1/probe", json={}).json())
    threads = [threading.Thread(target=client) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for k in range(40):
            op.apply(mdqcore.load_package({"name": "flip", "semver": f"1.{k}.0", "atoms": [
                {"type": "Idx", "feature": "alias", "seg": "flip", "value": float(k % 2)}]}))
    finally:
        stop.set()
        for t in threads:
            t.join()
        bg.stop()
    assert len(seen) > 40 and all(r["first"] == r["second"] for r in seen)
    from mdqcore.ledger import replay

    states = {}
    for r in seen[:: max(1, len(seen) // 50)]:  # the value each answer saw is the ledger's value at its entry
        if r["seq"] not in states:
            states[r["seq"]] = replay(e for e in op.ledger.events() if e.seq <= r["seq"])["default"]
        assert states[r["seq"]].index("alias", "flip", -1.0) == r["first"]
    assert replay_ledger(op.ledger)["default"] == op.current


def test_the_serving_guide_python_runs(tmp_path):
    from pathlib import Path

    from mdqcore.testing import run_readme_python

    doc = Path(__file__).resolve().parents[3] / "docs" / "serving.md"
    n, out = run_readme_python(doc, tmp_path)
    assert n == 1 and out.strip().startswith("[") and float(out.strip()[1:-1]) != 0.0


def test_trl_reward_function_in_process_and_against_the_server(served):
    # TRL calls reward_func(prompts, completions, **kwargs); the same function works against a server
    from mdq_flexattn.pipeline import reward_func

    _op, url, _server = served
    prompts = ["阿司匹林有什么作用？", "什么是区块链？"]
    completions = [[{"role": "assistant", "content": "阿司匹林是一种环氧合酶抑制剂。"}],
                   [{"role": "assistant", "content": "区块链是一种分布式账本技术。"}]]
    local = reward_func(prompts, completions, trainer_state=None)
    remote = reward_func(prompts, completions, url=url)
    assert len(local) == len(remote) == 2 and local == pytest.approx(remote)
    assert remote[0] > remote[1]  # the medical answer earns lexical reward, the off-domain one does not


class Where:
    def handle(self, route, body, state):
        import threading

        return {"thread": threading.current_thread().name,
                "value": float("nan") if body.get("nan") else body.get("value", 0.0)}, []


class WherePlugin:
    @mdqcore.hookimpl
    def register_pipelines(self, register):
        register("inline", lambda: Where(), routes=("/v1/inline",), inline=True)
        register("threaded", lambda: Where(), routes=("/v1/threaded",))


def test_inline_pipelines_run_on_the_event_loop_and_others_on_worker_threads(tmp_path):
    from mdq_serve.commands import Background
    from mdq_serve.server import Pipelines, Server

    from mdqcore.ledger.sqlite import SQLiteLedger
    from mdqcore.runtime import Runtime
    from mdqcore.testing import load_isolated

    reg = load_isolated(WherePlugin(), "where", registry=mdqcore.load_plugins(only=["core"]))
    bg = Background(Server(Runtime(reg, SQLiteLedger(tmp_path / "l.sqlite")), Pipelines(reg), tick=0.05))
    try:
        inline = httpx.post(bg.url + "/v1/inline", json={}).json()["thread"]
        threaded = httpx.post(bg.url + "/v1/threaded", json={}).json()["thread"]
        # a large batch goes to a worker thread even for an inline pipeline: the event loop stays free
        big = httpx.post(bg.url + "/v1/inline", json={"pad": "x" * (65 << 10)}).json()["thread"]
        # a NaN in an answer is an error, never a silent null
        nan = httpx.post(bg.url + "/v1/inline", json={"nan": True})
        null = httpx.post(bg.url + "/v1/inline", json={"value": None})
    finally:
        bg.stop()
    assert "AnyIO worker thread" in threaded and "AnyIO worker thread" not in inline
    assert "AnyIO worker thread" in big
    assert nan.status_code == 500 and "internal error" in nan.json()["error"]["message"]
    assert null.status_code == 200 and null.json()["value"] is None
    assert mdqcore.load_plugins(only=["core", "flexattn"]).get("pipeline", "reward").meta["inline"] is True


class Broken:
    def __init__(self):
        raise ValueError("MDQ_EXAMPLE must be 'a' or 'b', got 'c'")


class BrokenPlugin:
    @mdqcore.hookimpl
    def register_pipelines(self, register):
        register("broken", lambda: Broken(), routes=("/v1/broken",))


def test_a_pipeline_that_cannot_be_built_stops_serve_at_start(tmp_path, monkeypatch, capsys):
    # misconfiguration is an error when the server starts, not a 500 on every request
    from mdq_serve.commands import build

    from mdqcore.cli import console
    from mdqcore.testing import load_isolated

    reg = load_isolated(BrokenPlugin(), "broken", registry=mdqcore.load_plugins(only=["core"]))
    monkeypatch.setattr(console, "registry", lambda: reg)
    with pytest.raises(SystemExit) as exc:
        build(str(tmp_path / "l.sqlite"), None, ())
    assert exc.value.code == 2 and not (tmp_path / "l.sqlite").exists()
    assert "pipeline 'broken' cannot start" in capsys.readouterr().err
