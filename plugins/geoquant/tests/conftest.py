"""Shared fixtures of the geoquant tests: a character tokenizer for the tiny models (256-token vocab)."""

import pytest


class CharTok:
    """One token per character (code point mod 256), enough for tiny_llama's vocabulary."""

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
        return {"input_ids": [ord(c) % 256 for c in text]}

    def decode(self, ids) -> str:
        return "".join(chr(int(i)) for i in ids)


@pytest.fixture
def char_tok() -> CharTok:
    return CharTok()
