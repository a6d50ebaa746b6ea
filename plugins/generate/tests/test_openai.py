"""The official `openai` client against a real in-process `mdq serve` replica (tiny model from a checkpoint
directory), and packages promoted through the runtime changing the very next request."""

import json
from importlib.resources import files

import openai
import pytest

from mdq_flexattn import plugin as flexattn
from mdq_generate import plugin as generate
from mdq_serve.commands import Background
from mdq_serve.server import Pipelines, Server
from mdqcore import builtin, load_package
from mdqcore.ledger.sqlite import SQLiteLedger
from mdqcore.runtime.hotplug import Runtime
from mdqcore.testing import load_isolated

SCENARIO = json.loads((files("mdq_flexattn") / "data" / "scenario.json").read_text(encoding="utf-8"))


def registry():
    core = load_isolated(builtin, "core")
    return load_isolated(generate, "generate", registry=load_isolated(flexattn, "flexattn", registry=core))


def package(name, **params):
    return load_package({"name": name, "semver": "1.0.0", "tests": ["legal"],
                         "atoms": [{"type": "Op", "op": "generate", "param": k, "value": v} for k, v in params.items()]})


# the core budget gate counts raw units (best_of 1 -> 3 is 2, window_scale 32 -> 1 is 31): raising it is its own step
BUDGET = load_package({"name": "ops.budget", "semver": "1.0.0", "tests": ["legal"],
                       "atoms": [{"type": "Gate", "gate": "budget", "param": "ceiling", "value": 64}]})


@pytest.fixture
def served(tiny_dir, tmp_path, monkeypatch):
    """(runtime, openai client) of a replica serving the tiny checkpoint named by MDQ_GENERATE_MODEL."""
    monkeypatch.setenv("MDQ_GENERATE_MODEL", str(tiny_dir))
    rt = Runtime(registry(), SQLiteLedger(str(tmp_path / "ledger.sqlite")), actor="tester")
    bg = Background(Server(rt, Pipelines(rt.registry, ("generate",)), tick=0.05))
    yield rt, openai.OpenAI(base_url=bg.url + "/v1", api_key="not-checked", max_retries=0, timeout=120)
    bg.stop()
    rt.close()


def test_the_openai_client_works_against_both_endpoints(served):
    rt, client = served
    c = client.completions.create(model="tiny-llama", prompt="Hello", max_tokens=5, seed=1)
    assert c.object == "text_completion" and c.model == "tiny-llama" and len(c.choices) == 1
    assert c.choices[0].finish_reason in ("stop", "length") and isinstance(c.choices[0].text, str)
    assert c.usage.prompt_tokens == 5 and 0 < c.usage.completion_tokens <= 5
    chat = client.chat.completions.create(model="tiny-llama", messages=[{"role": "user", "content": "什么是阿司匹林？"}],
                                          max_tokens=4, n=2, seed=3, temperature=0.7)
    assert chat.object == "chat.completion" and [ch.index for ch in chat.choices] == [0, 1]
    assert all(ch.message.role == "assistant" for ch in chat.choices)
    assert chat.model_extra["mdq"]["state"] == rt.snapshot().seq
    again = client.chat.completions.create(model="tiny-llama", messages=[{"role": "user", "content": "什么是阿司匹林？"}],
                                           max_tokens=4, n=2, seed=3, temperature=0.7)
    assert [ch.message.content for ch in again.choices] == [ch.message.content for ch in chat.choices]


def test_errors_reach_the_openai_client(served):
    _, client = served
    with pytest.raises(openai.BadRequestError, match="streaming is not supported yet"):
        client.chat.completions.create(model="tiny-llama", messages=[{"role": "user", "content": "hi"}], stream=True)
    with pytest.raises(openai.NotFoundError, match="not served here"):
        client.completions.create(model="gpt-4o", prompt="hi")
    with pytest.raises(openai.UnprocessableEntityError) as e:
        client.completions.create(model="tiny-llama", prompt="hi", presence_penalty=0.5, max_tokens=0)
    assert {p["path"] for p in e.value.body["problems"]} == {"$.presence_penalty", "$.max_tokens"}


def test_a_promoted_package_changes_the_very_next_request(served):
    rt, client = served
    body = dict(model="tiny-llama", prompt="The patient took ibuprofen because", max_tokens=12, seed=4)
    before = client.completions.with_raw_response.create(**body)
    first = before.parse()
    assert first.model_extra["mdq"]["candidates"] == 1 and not first.model_extra["mdq"]["window"]

    rt.apply(BUDGET, inputs=SCENARIO["inputs"])
    res = rt.apply(package("gen.best-of", best_of=3), inputs=SCENARIO["inputs"])
    after = client.completions.with_raw_response.create(**body)
    assert int(after.headers["x-mdq-state"]) == res.seq > int(before.headers["x-mdq-state"])
    mdq = after.parse().model_extra["mdq"]
    assert (mdq["best_of"], mdq["candidates"], mdq["state"]) == (3, 3, res.seq)
    assert after.parse().usage.completion_tokens > first.usage.completion_tokens

    res = rt.apply(package("gen.window", window=True, window_scale=1), inputs=SCENARIO["inputs"])
    windowed = client.completions.create(**body).model_extra["mdq"]
    assert windowed["window"] and windowed["window_backend"] == "dense" and windowed["state"] == res.seq

    rt.rollback("gen.window")
    rt.rollback("gen.best-of")
    back = client.completions.create(**body)
    assert not back.model_extra["mdq"]["window"] and back.model_extra["mdq"]["candidates"] == 1
    assert back.choices[0].text == first.choices[0].text  # the same state and seed give the same answer
