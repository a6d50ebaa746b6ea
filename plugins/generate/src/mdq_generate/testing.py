"""A tiny random Llama with a byte-level tokenizer and a chat template: the pipeline end to end without a real model.

For tests (this plugin's and a caller's): nothing is downloaded, it builds in a second.
"""

from __future__ import annotations

from typing import Any

CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>{% endif %}")


def byte_tokenizer(chat: bool = True) -> Any:
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


def tiny_model(tok: Any, seed: int = 0) -> Any:
    """mdq_quantkit's tiny random Llama sized to `tok`, ending sequences at its end-of-sequence token."""
    from mdq_quantkit.models import tiny_llama

    model = tiny_llama(seed, vocab_size=len(tok), eos_token_id=tok.eos_token_id, pad_token_id=tok.eos_token_id)
    model.generation_config.eos_token_id = tok.eos_token_id
    return model
