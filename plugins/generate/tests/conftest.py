"""A tiny random Llama with a byte-level tokenizer and a chat template: the pipeline end to end, no real model."""

from __future__ import annotations

import pytest

CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>{% endif %}")


def byte_tokenizer(chat: bool = True):
    """A byte-level BPE tokenizer without merges (one token per byte) plus <|end|>, <|user|>, <|assistant|>, <|system|>."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {c: i for i, c in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    tk = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|end|>")
    tok.add_special_tokens({"additional_special_tokens": ["<|user|>", "<|assistant|>", "<|system|>"]})
    if chat:
        tok.chat_template = CHAT_TEMPLATE
    return tok


def tiny_model(tok, seed: int = 0):
    """mdq_quantkit's tiny random Llama sized to `tok`, ending sequences at <|end|>."""
    from mdq_quantkit.models import tiny_llama

    model = tiny_llama(seed, vocab_size=len(tok), eos_token_id=tok.eos_token_id, pad_token_id=tok.eos_token_id)
    model.generation_config.eos_token_id = tok.eos_token_id
    return model


@pytest.fixture(scope="session")
def tiny():
    """(model, tokenizer) of the tiny random Llama."""
    tok = byte_tokenizer()
    return tiny_model(tok), tok


@pytest.fixture(scope="session")
def tiny_dir(tiny, tmp_path_factory):
    """The tiny model saved as a Hugging Face checkpoint directory (what MDQ_GENERATE_MODEL may name)."""
    model, tok = tiny
    d = tmp_path_factory.mktemp("models") / "tiny-llama"
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return d


@pytest.fixture
def pipeline(tiny):
    """A GeneratePipeline serving the tiny model as 'tiny'."""
    from mdq_generate.model import LM
    from mdq_generate.pipeline import GeneratePipeline

    model, tok = tiny
    return GeneratePipeline(lm=LM.of(model, tok, "tiny"))
