"""Fixtures: the tiny random Llama of mdq_generate.testing, in memory and as a checkpoint directory."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny():
    """(model, tokenizer) of the tiny random Llama."""
    from mdq_generate.testing import byte_tokenizer, tiny_model

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
