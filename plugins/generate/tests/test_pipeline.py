"""The generate pipeline under one snapshot: OpenAI's response schema, best-of-n by the reward, the window
switch, seeds, errors, and one KPI observation per choice."""

import math

import pytest

from mdq_generate.model import Candidate, Generation
from mdq_generate.params import KPIS
from mdq_generate.pipeline import GeneratePipeline
from mdqcore.errors import RequestError
from mdqcore.model.state import ControlState

C, CHAT = "/v1/completions", "/v1/chat/completions"


def state(seq=1, **params):
    return ControlState({("param", "Op", "generate", k): float(v) for k, v in params.items()}, seq=seq)


def test_a_completion_in_openai_s_schema(pipeline):
    r, obs = pipeline.handle(C, {"model": "tiny", "prompt": ["Hello", "什么是阿司匹林？"], "n": 2, "max_tokens": 5,
                                 "seed": 11}, state(seq=4))
    assert r["object"] == "text_completion" and r["id"].startswith("cmpl-") and r["model"] == "tiny"
    assert isinstance(r["created"], int) and r["system_fingerprint"] == "mdq-state-4"
    assert [c["index"] for c in r["choices"]] == [0, 1, 2, 3]
    for c in r["choices"]:
        assert set(c) == {"index", "text", "logprobs", "finish_reason"} and c["finish_reason"] in ("stop", "length")
    u = r["usage"]
    assert u["prompt_tokens"] == 5 + len("什么是阿司匹林？".encode()) and u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]
    assert 0 < u["completion_tokens"] <= 4 * 5
    assert r["mdq"]["state"] == 4 and r["mdq"]["seed"] == 11 and r["mdq"]["candidates"] == 2 and not r["mdq"]["window"]
    assert len(obs) == 4 and all(set(o) == set(KPIS) and all(math.isfinite(v) for v in o.values()) for o in obs)
    assert [o["gen_reward"] for o in obs] == r["mdq"]["rewards"]


def test_a_chat_completion(pipeline):
    r, obs = pipeline.handle(CHAT, {"model": "TINY", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4},
                             state())
    assert r["object"] == "chat.completion" and r["id"].startswith("chatcmpl-")
    (c,) = r["choices"]
    assert c["message"]["role"] == "assistant" and isinstance(c["message"]["content"], str)
    assert r["usage"]["prompt_tokens"] == 5 and len(obs) == 1  # <|user|> h i <|end|> <|assistant|>


def test_best_of_returns_the_candidates_with_the_highest_reward(pipeline):
    body = {"model": "tiny", "prompt": "阿司匹林", "max_tokens": 12, "seed": 5}
    # best_of 1 with n 4 and best_of 4 with n 1 sample the same four candidates (same seed, same batch)
    every, _ = pipeline.handle(C, {**body, "n": 4}, state(best_of=1))
    texts, rewards = [c["text"] for c in every["choices"]], every["mdq"]["rewards"]
    assert every["mdq"]["candidates"] == 4 and len(set(texts)) > 1
    best, obs = pipeline.handle(C, body, state(best_of=4))
    top = max(range(4), key=lambda j: (rewards[j], -j))
    assert best["choices"][0]["text"] == texts[top] and best["mdq"]["rewards"] == [rewards[top]]
    assert best["usage"]["completion_tokens"] == every["usage"]["completion_tokens"]  # the discarded ones are paid for
    assert obs[0]["gen_tokens_spent"] == every["usage"]["completion_tokens"]
    two, _ = pipeline.handle(C, {**body, "n": 2}, state(best_of=4))
    assert two["mdq"]["rewards"] == sorted(rewards, reverse=True)[:2]


class Scripted:
    """A stand-in LM whose candidates are given texts (the ranking alone under test)."""

    name, aliases = "scripted", {"scripted"}

    def __init__(self, texts):
        self.texts = texts

    def accepts(self, name):
        return name == "scripted"

    def encode(self, prompt=None, messages=()):
        return [1, 2, 3]

    def generate(self, ids, k, **kw):
        cands = tuple(Candidate(t, len(t), "stop") for t in self.texts[:k])
        return Generation(cands, len(ids), sum(c.tokens for c in cands), 0.01, None)


def test_rank_by_total_or_by_lexical_reward():
    english = "Aspirin is a medicine used to reduce pain, fever and inflammation; it is taken by mouth with water."
    chinese = "阿司匹林是一种解热镇痛药，可以抑制血小板聚集。"
    p = GeneratePipeline(lm=Scripted([english, chinese]))
    body = {"model": "scripted", "messages": [{"role": "user", "content": "阿司匹林有什么作用？"}]}
    by_total, _ = p.handle(CHAT, body, state(best_of=2))
    # with no reference every character earns eta1, so the long English answer has the higher total
    assert by_total["choices"][0]["message"]["content"] == english and by_total["mdq"]["ranked_by"] == "reward"
    by_lex, obs = p.handle(CHAT, body, state(best_of=2, rank_lexical=1))
    assert by_lex["choices"][0]["message"]["content"] == chinese and obs[0]["gen_lexical"] > 0
    assert by_lex["mdq"]["ranked_by"] == "lexical"


def test_temperature_zero_generates_one_candidate_and_repeats_it(pipeline):
    r, obs = pipeline.handle(C, {"model": "tiny", "prompt": "Hi", "n": 3, "temperature": 0, "max_tokens": 6},
                             state(best_of=4))
    assert r["mdq"]["candidates"] == 1 and len({c["text"] for c in r["choices"]}) == 1 and len(r["choices"]) == 3
    assert r["usage"]["completion_tokens"] <= 6 and obs[0]["gen_tokens_spent"] == r["usage"]["completion_tokens"] / 3


def test_the_seed_reproduces_a_response(pipeline):
    body = {"model": "tiny", "prompt": "Hello", "max_tokens": 8}
    first, _ = pipeline.handle(C, body, state())
    again, _ = pipeline.handle(C, {**body, "seed": first["mdq"]["seed"]}, state())
    assert again["choices"][0]["text"] == first["choices"][0]["text"]


def test_the_window_switch_changes_how_the_model_attends(pipeline):
    body = {"model": "tiny", "prompt": "The patient took ibuprofen because of a headache and", "max_tokens": 24,
            "seed": 2}
    off, _ = pipeline.handle(C, body, state())
    on, _ = pipeline.handle(C, body, state(window=1, window_scale=1))
    assert off["mdq"]["window_backend"] is None and on["mdq"]["window_backend"] == "dense"
    assert on["mdq"]["window"] and on["mdq"]["window_scale"] == 1
    assert on["choices"][0]["text"] != off["choices"][0]["text"]
    wide, _ = pipeline.handle(C, body, state(window=1, window_scale=1024))
    assert wide["choices"][0]["text"] == off["choices"][0]["text"]  # a window wider than the text changes nothing


def test_unknown_model_is_a_404_and_loads_nothing():
    p = GeneratePipeline("smollm2-135m")
    with pytest.raises(RequestError) as e:
        p.handle(C, {"model": "gpt-4o", "prompt": "x"}, state())
    assert e.value.status == 404 and "serves 'smollm2-135m'" in e.value.message and e.value.problems[0].path == "$.model"
    assert p.lm._model is None


def test_bad_requests_reach_the_client_with_paths(pipeline):
    with pytest.raises(RequestError) as e:
        pipeline.handle(C, {"model": "tiny", "prompt": "x", "max_tokens": 0, "logit_bias": {"1": 5}}, state())
    assert e.value.status == 422 and {p.path for p in e.value.problems} == {"$.max_tokens", "$.logit_bias"}
    with pytest.raises(RequestError) as e:
        pipeline.handle(CHAT, {"model": "tiny", "messages": [{"role": "user", "content": "x"}], "stream": True}, state())
    assert e.value.status == 400


def test_snapshots_share_their_scorer_but_never_across_states(pipeline):
    a, b = state(seq=1), state(seq=1)
    assert pipeline._snapshot(a)[0] is pipeline._snapshot(a)[0]
    assert pipeline._snapshot(b)[0] is not pipeline._snapshot(a)[0]


def test_paired_observation_is_optional_and_reuses_the_seed(pipeline, tiny):
    assert not hasattr(pipeline, "observe")  # the server pairs only pipelines that have it
    from mdq_generate.model import LM

    paired = GeneratePipeline(lm=LM.of(*tiny, "tiny"), paired=True)
    body = {"model": "tiny", "prompt": "Hello", "max_tokens": 6}
    _, obs = paired.handle(C, body, state())
    shadow = paired.observe(C, body, state())
    assert [o["gen_reward"] for o in shadow] == [o["gen_reward"] for o in obs]
    assert [o["gen_tokens_spent"] for o in shadow] == [o["gen_tokens_spent"] for o in obs]


def test_the_window_backend_comes_from_the_environment_and_is_checked(tiny, monkeypatch):
    from mdq_generate.model import LM

    monkeypatch.setenv("MDQ_GENERATE_WINDOW_BACKEND", "flex")
    p = GeneratePipeline(lm=LM.of(*tiny, "tiny"))
    r, _ = p.handle(C, {"model": "tiny", "prompt": "Hello", "max_tokens": 3, "seed": 0}, state(window=1, window_scale=1))
    assert r["mdq"]["window_backend"] == "flex"
    monkeypatch.setenv("MDQ_GENERATE_WINDOW_BACKEND", "sparse")
    with pytest.raises(ValueError, match="MDQ_GENERATE_WINDOW_BACKEND"):
        GeneratePipeline(lm=LM.of(*tiny, "tiny"))


def test_best_of_and_the_window_together(pipeline):
    # the candidates are one batch: the window is tracked per row
    r, obs = pipeline.handle(CHAT, {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "n": 2,
                                    "max_tokens": 6, "seed": 9}, state(best_of=3, window=1, window_scale=2))
    assert r["mdq"]["candidates"] == 3 and r["mdq"]["window_backend"] == "dense" and len(r["choices"]) == 2
    assert r["mdq"]["rewards"] == sorted(r["mdq"]["rewards"], reverse=True) and len(obs) == 2
