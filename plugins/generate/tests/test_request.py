"""OpenAI bodies are checked before anything is generated: every problem at its `$.path`, nothing served half-right."""

import pytest

from mdq_generate.request import MAX_N, parse
from mdqcore.errors import RequestError

C, CHAT = "/v1/completions", "/v1/chat/completions"


def problems(route, body):
    with pytest.raises(RequestError) as e:
        parse(route, body)
    return e.value.status, {p.path: p.message for p in e.value.problems}


def test_completion_defaults_follow_openai():
    r = parse(C, {"model": "m", "prompt": "Hello"})
    assert (r.prompts, r.max_tokens, r.temperature, r.top_p, r.n, r.seed, r.stop) == (("Hello",), 16, 1.0, 1.0, 1, None, ())
    assert not r.chat and r.messages == ()
    r = parse(C, {"model": "m", "prompt": ["a", "b"], "max_tokens": 5, "temperature": 0, "n": 3, "seed": -7,
                  "stop": "\n", "top_p": 0.5, "user": "u1", "key": "k1", "stream": False, "presence_penalty": 0, "logprobs": None})
    assert (r.prompts, r.max_tokens, r.temperature, r.n, r.seed, r.stop, r.top_p) == (("a", "b"), 5, 0.0, 3, -7, ("\n",), 0.5)


def test_chat_messages_text_parts_and_roles():
    r = parse(CHAT, {"model": "m", "messages": [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "什么是"}, {"type": "text", "text": "阿司匹林？"}]},
        {"role": "assistant", "content": "一种药。", "name": "bot"},
        {"role": "user", "content": "它治什么？"}], "max_completion_tokens": 7})
    assert r.chat and r.max_tokens == 7 and r.prompts == ()
    assert [m["role"] for m in r.messages] == ["system", "user", "assistant", "user"]
    assert r.messages[1]["content"] == "什么是阿司匹林？" and r.question == "它治什么？"
    assert parse(CHAT, {"model": "m", "messages": [{"role": "system", "content": "x"}]}).question == ""
    assert parse(CHAT, {"model": "m", "messages": [{"role": "user", "content": "x"}]}).max_tokens == 128


def test_streaming_is_a_clear_400():
    status, where = problems(CHAT, {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True})
    assert status == 400 and "not supported yet" in where["$.stream"]
    with pytest.raises(RequestError, match="streaming is not supported yet"):
        parse(C, {"model": "m", "prompt": "x", "stream": True})
    assert problems(C, {"model": "m", "prompt": "x", "stream": "yes"})[1] == {"$.stream": "expected true or false"}


def test_every_problem_is_reported_at_its_path():
    status, where = problems(C, {"model": 3, "prompt": ["ok", "", [1, 2], 7], "n": 0, "temperature": 2.5,
                                 "top_p": 0, "max_tokens": True, "seed": 1.5, "stop": ["", 5], "user": 9, "key": 1,
                                 "frobnicate": 1, "best_of": 3, "presence_penalty": 0.5, "echo": 0})
    assert status == 422
    assert set(where) == {"$.model", "$.prompt[1]", "$.prompt[2]", "$.prompt[3]", "$.n", "$.temperature", "$.top_p",
                          "$.max_tokens", "$.seed", "$.stop[0]", "$.stop[1]", "$.user", "$.key", "$.frobnicate", "$.best_of",
                          "$.presence_penalty", "$.echo"}
    assert "control state" in where["$.best_of"] and "unknown field" in where["$.frobnicate"]
    assert "token-id prompts" in where["$.prompt[2]"] and "empty prompt" in where["$.prompt[1]"]
    assert where["$.n"] == f"0 is outside [1, {MAX_N}]" and "not supported" in where["$.presence_penalty"]
    # false is the neutral `echo`, the number 0 is not a boolean
    assert "$.echo" not in problems(C, {"model": 3, "prompt": "x", "echo": False})[1]


def test_chat_problems():
    _, where = problems(CHAT, {"model": "m", "prompt": "x"})
    assert set(where) == {"$.messages", "$.prompt"}
    _, where = problems(CHAT, {"model": "m", "max_tokens": 5, "max_completion_tokens": 6, "messages": [
        "hi", {"role": "tool", "content": "x"},
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {}}]},
        {"role": "assistant", "content": None, "tool_calls": []}]})
    assert set(where) == {"$.max_completion_tokens", "$.messages[0]", "$.messages[1].role", "$.messages[2].content[1]",
                          "$.messages[3].content", "$.messages[3].tool_calls"}


def test_not_an_object_and_not_a_route():
    assert problems(C, ["x"]) == (422, {"$": "expected an object"})
    assert problems("/v1/embeddings", {})[0] == 404
