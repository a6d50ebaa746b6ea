"""Streaming quantization: blocks read from disk one at a time give the same model (issue #19)."""

import pytest
import torch
from safetensors.torch import load_file, save_file

from mdq_quantkit.backends import RTN, quantize_model
from mdq_quantkit.config import QuantConfig
from mdq_quantkit.models import load_for_quantization, tiny_llama


def test_streamed_blocks_quantize_to_the_same_codes(tmp_path):
    from mdq_gptq.gptq import GPTQ

    tiny_llama().save_pretrained(tmp_path / "f")
    samples = [torch.randint(0, 256, (1, 32), generator=torch.Generator().manual_seed(i)) for i in range(4)]
    for backend in (RTN(), GPTQ()):
        ref = tiny_llama()
        quantize_model(ref, QuantConfig(4, 32), backend, samples)
        m, _ = load_for_quantization(tmp_path / "f")
        assert m.model.layers[1].mlp.up_proj.weight.is_meta  # nothing of the blocks is loaded yet
        quantize_model(m, QuantConfig(4, 32), backend, samples)
        assert not hasattr(m, "mdq_stream")
        for name in ref.mdq_quant["modules"]:
            assert torch.equal(m.get_submodule(name).codes(), ref.get_submodule(name).codes()), name
        assert not any(p.is_meta for p in m.parameters())


def test_streamed_nan_is_refused_before_any_work(tmp_path):
    tiny_llama().save_pretrained(tmp_path / "f")
    f = tmp_path / "f" / "model.safetensors"
    t = load_file(f)
    t["model.layers.1.self_attn.k_proj.weight"][2, 3] = float("nan")
    save_file(t, f, metadata={"format": "pt"})
    m, _ = load_for_quantization(tmp_path / "f")
    with pytest.raises(ValueError, match=r"block 1 self_attn.k_proj has a non-finite weight at index \[2, 3\]"):
        quantize_model(m, QuantConfig(4, 32), RTN())
    assert m.model.layers[0].mlp.up_proj.weight.is_meta  # no block was loaded, none quantized


def test_quantized_checkpoints_are_not_quantized_again(tmp_path):
    from mdq_quantkit.io import save_quantized

    m = tiny_llama()
    quantize_model(m, QuantConfig(4, 32), RTN())
    out = save_quantized(m, tmp_path / "q")
    with pytest.raises(ValueError, match="already a quantized \\(mdq\\) checkpoint"):
        load_for_quantization(out)


class _Watch:
    """RTN that records whether the embedding is resident while each block is quantized, and can fail."""

    name, needs_calibration = "watch", False

    def __init__(self, fail_at: int | None = None) -> None:
        self.seen, self.fail_at, self.model = [], fail_at, None

    def quantize_block(self, block, inputs, kwargs, cfg):
        self.seen.append(self.model.model.embed_tokens.weight.is_meta)
        if len(self.seen) - 1 == self.fail_at:
            raise RuntimeError("backend failed")
        return RTN().quantize_block(block, inputs, kwargs, cfg)


def test_the_embedding_is_released_while_blocks_are_quantized_and_read_back(tmp_path):
    tiny_llama().save_pretrained(tmp_path / "f")
    for fail_at in (None, 1):
        m, _ = load_for_quantization(tmp_path / "f")
        before = m.model.embed_tokens.weight.clone()
        w = _Watch(fail_at)
        w.model = m
        if fail_at is None:
            quantize_model(m, QuantConfig(4, 32), w)
        else:
            with pytest.raises(RuntimeError, match="backend failed"):
                quantize_model(m, QuantConfig(4, 32), w)
        assert w.seen == [True, True]  # on meta (no memory) during every block
        assert torch.equal(m.model.embed_tokens.weight, before)  # read back, even after a failure
        assert m.lm_head.weight is m.model.embed_tokens.weight  # still tied
