import pytest
import torch

from mdq_quantkit.data import calibration_samples, corpus_text, perplexity, split_tokens
from mdq_quantkit.models import tiny_llama


def test_calibration_and_evaluation_never_overlap():
    ids = torch.arange(10_000)
    pool, ev = split_tokens(ids)
    samples = calibration_samples(pool, 16, 128, seed=3)
    assert all(int(s.max()) < int(ev.min()) for s in samples)
    assert [s.tolist() for s in samples] == [s.tolist() for s in calibration_samples(pool, 16, 128, seed=3)]


def test_text_sources(tmp_path):
    assert len(corpus_text()) > 400_000
    with pytest.raises(FileNotFoundError):
        corpus_text(tmp_path / "none.txt")
    with pytest.raises(ValueError, match="shorter than one sequence"):
        calibration_samples(torch.arange(100), 4, 512)


def test_perplexity_of_a_uniform_model_is_the_vocabulary():
    class Uniform(torch.nn.Module):
        def forward(self, x, use_cache=False):
            return type("O", (), {"logits": torch.zeros(*x.shape, 50)})()

    res = perplexity(Uniform(), torch.randint(0, 50, (1000,)), seqlen=100, tokens=1000)
    assert res["ppl"] == pytest.approx(50.0) and res["windows"] == 10
    assert perplexity(tiny_llama(), torch.randint(0, 256, (256,)), seqlen=64, tokens=256)["ppl"] > 1
    with pytest.raises(ValueError, match="fewer than one window"):
        perplexity(Uniform(), torch.arange(10), seqlen=64)
