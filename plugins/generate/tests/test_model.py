"""The served LM: names, prompts and chat templates, the context limit, finish reasons, loading from a directory."""

import pytest

from mdq_generate.model import LM, cut_at_stop
from mdqcore.errors import RequestError

from mdq_generate.testing import byte_tokenizer, tiny_model


def test_names_are_matched_case_insensitively(tiny):
    lm = LM.of(*tiny, "Tiny-LM")
    assert lm.accepts("tiny-lm") and lm.accepts("TINY-LM") and not lm.accepts("gpt-4o")
    smol = LM("smollm2-135m")  # nothing loads until a request needs the model
    assert smol.name == "smollm2-135m" and smol.accepts("SmolLM2-135M-Instruct") and smol._model is None


def test_prompts_and_chat_templates(tiny):
    lm = LM.of(*tiny, "tiny")
    assert lm.encode("ab") == [64, 65]  # byte-level: one token per byte
    ids = lm.encode(messages=[{"role": "user", "content": "hi"}])
    assert lm.load()[1].decode(ids) == "<|user|>hi<|end|><|assistant|>"
    plain = LM.of(tiny[0], byte_tokenizer(chat=False), "plain")
    with pytest.raises(RequestError, match="no chat template") as e:
        plain.encode(messages=[{"role": "user", "content": "hi"}])
    assert e.value.status == 422 and e.value.problems[0].path == "$.messages"


def test_the_context_limit_is_checked_before_generating(tiny):
    lm = LM.of(*tiny, "tiny")  # max_position_embeddings = 256
    with pytest.raises(RequestError) as e:
        lm.generate(lm.encode("x" * 200), 1, max_tokens=100, temperature=0, top_p=1, seed=0)
    assert e.value.status == 422 and e.value.problems[0].path == "$.max_tokens"
    assert "ask for at most 56" in e.value.problems[0].message


def test_candidates_count_tokens_and_say_why_they_ended(tiny):
    lm = LM.of(*tiny, "tiny")
    gen = lm.generate(lm.encode("Hello"), 3, max_tokens=6, temperature=1.0, top_p=1, seed=3)
    assert len(gen.candidates) == 3 and gen.prompt_tokens == 5 and gen.window_backend is None
    assert gen.generated_tokens == sum(c.tokens for c in gen.candidates) and gen.seconds > 0
    for c in gen.candidates:
        assert c.finish_reason == ("length" if c.tokens == 6 else "stop")
    again = lm.generate(lm.encode("Hello"), 3, max_tokens=6, temperature=1.0, top_p=1, seed=3)
    assert again.candidates == gen.candidates  # a seed reproduces the sampling
    with pytest.raises(ValueError, match="greedy"):
        lm.generate(lm.encode("Hello"), 2, max_tokens=6, temperature=0, top_p=1, seed=3)


def test_end_of_sequence_and_stop_strings(tiny):
    tok = tiny[1]
    eos = tok.eos_token_id
    a, b = tok.convert_tokens_to_ids("a"), tok.convert_tokens_to_ids("b")
    c = LM._candidate([a, b, eos, eos], {eos}, 4, (), tok)
    assert (c.text, c.tokens, c.finish_reason) == ("ab", 2, "stop")
    c = LM._candidate([a, b, a, b], {eos}, 4, (), tok)
    assert (c.text, c.tokens, c.finish_reason) == ("abab", 4, "length")
    c = LM._candidate([a, b, a, b], {eos}, 4, ("ba",), tok)
    assert (c.text, c.tokens, c.finish_reason) == ("a", 4, "stop")
    assert cut_at_stop("one. two. three", [" three", ". "]) == ("one", True)
    assert cut_at_stop("nothing", ["x"]) == ("nothing", False)


def test_loads_a_checkpoint_directory_once(tiny_dir):
    lm = LM(str(tiny_dir))
    assert lm.name == "tiny-llama" and lm.accepts(str(tiny_dir))
    model, tok = lm.load()
    assert lm.load()[0] is model and tok.chat_template
    gen = lm.generate(lm.encode("Hi"), 1, max_tokens=3, temperature=0, top_p=1, seed=0)
    assert gen.candidates[0].tokens <= 3


def test_a_model_that_cannot_load_is_a_503(tmp_path):
    with pytest.raises(RequestError, match="cannot be loaded") as e:
        LM(str(tmp_path / "missing")).load()
    assert e.value.status == 503
    model = tiny_model(byte_tokenizer())
    model.save_pretrained(tmp_path / "no-tok")
    with pytest.raises(RequestError, match="no tokenizer"):
        LM(str(tmp_path / "no-tok")).load()


def test_concurrent_first_requests_load_the_model_once(tiny, monkeypatch):
    import threading
    import time

    import mdq_quantkit.models as models

    calls = []

    def slow_load(spec):
        calls.append(spec)
        time.sleep(0.2)  # long enough for every thread to arrive while the first one loads
        return tiny

    monkeypatch.setattr(models, "load", slow_load)
    lm = LM("some/dir")
    got = []
    threads = [threading.Thread(target=lambda: got.append(lm.load()[0])) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == ["some/dir"] and len(got) == 4 and all(m is tiny[0] for m in got)
