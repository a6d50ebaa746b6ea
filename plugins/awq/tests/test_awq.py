import pytest
import torch

from mdq_awq import plugin
from mdq_awq.awq import AWQ, parent_of, scale_groups, search_clip, search_scale
from mdq_quantkit.backends import RTN, quantize_model
from mdq_quantkit.config import QuantConfig
from mdq_quantkit.models import tiny_gpt2, tiny_llama
from mdq_quantkit.quant import dequantize, rtn


def test_scale_search_protects_salient_channels():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(512, 64, generator=g)
    X[:, :4] *= 30  # a few salient input channels, as AWQ observed in LLMs
    W = torch.randn(32, 64, generator=g)
    cfg = QuantConfig(3, 32)
    held = {"w": W}
    s, alpha, loss = search_scale(lambda: X @ held["w"].t(), {"w": W}, lambda n, w: held.__setitem__(n, w),
                                  X.abs().mean(0), X @ W.t(), cfg)
    rtn_loss = float(((X @ W.t() - X @ dequantize(*rtn(W, cfg), cfg).t()) ** 2).mean())
    assert alpha > 0 and loss < rtn_loss and float(s[:4].mean()) > float(s[4:].mean())
    assert held["w"] is W  # the module's weight is restored after the search


def test_scales_are_judged_on_the_module_they_act_on():
    # issue #19: the paper's objective is the output of the attention / MLP block, not of each linear
    assert parent_of(["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"]) == "self_attn"
    assert parent_of(["mlp.gate_proj", "mlp.up_proj"]) == "mlp"
    assert parent_of(["mlp.down_proj"]) == "mlp.down_proj"
    from mdq_quantkit.layerwise import capture

    m = tiny_llama()
    inputs, kwargs = capture(m, [torch.randint(0, 256, (1, 16)) for _ in range(3)])
    block = m.model.layers[0]
    calls = []
    orig = block.self_attn.forward
    block.self_attn.forward = lambda *a, **k: calls.append(1) or orig(*a, **k)
    AWQ(n_grid=5, grid_windows=2).quantize_block(block, inputs, kwargs, QuantConfig(4, 32))
    assert len(calls) == 3 + 2 * 6  # one observation pass per input, then on 2 windows the float target and 5 grid points


def test_clip_search_never_hurts():
    g = torch.Generator().manual_seed(1)
    X, W = torch.randn(256, 64, generator=g), torch.randn(16, 64, generator=g)
    W[0, 0] = 12.0  # an outlier weight widens its group's range
    cfg = QuantConfig(3, 32)
    clip = search_clip(X, W, cfg)
    err = lambda c: float(((X @ (dequantize(*rtn(W, cfg, c), cfg) - W).t()) ** 2).mean())  # noqa: E731
    assert err(clip) <= err(None) + 1e-9 and float(clip[0, 0]) < 12.0


def test_scales_fold_where_the_architecture_allows():
    llama = tiny_llama()
    groups = dict(scale_groups(llama.model.layers[0]))
    assert "input_layernorm" in groups and "mlp.up_proj" in groups
    assert "self_attn.v_proj" not in groups  # grouped-query heads: v's outputs do not match o's inputs
    assert scale_groups(tiny_gpt2().transformer.h[0]) == []  # GPT-2: clipping only


@pytest.mark.parametrize("make", [tiny_llama, tiny_gpt2])
def test_model_level_awq_is_closer_to_fp_than_rtn(make):
    x = torch.randint(0, 256, (1, 64), generator=torch.Generator().manual_seed(1))
    samples = [torch.randint(0, 256, (1, 64), generator=torch.Generator().manual_seed(i + 2)) for i in range(16)]
    errs = {}
    for b in (RTN(), AWQ()):
        m = make()
        ref = m(x).logits.detach()
        quantize_model(m, QuantConfig(3, 32), b, samples)
        errs[b.name] = float(((m(x).logits.detach() - ref) ** 2).mean())
    assert errs["awq"] < errs["rtn"]


def test_registered(mdq_load_plugin):
    reg = mdq_load_plugin(plugin)
    assert isinstance(reg.get("quantizer", "awq").obj(n_grid=10), AWQ)
    with pytest.raises(ValueError):
        AWQ(n_grid=1)
