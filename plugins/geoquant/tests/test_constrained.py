"""MD-constrained quantization over a registered backend, thresholds from the control state."""

import pytest
import torch

from mdq_geoquant.classify import Outliers
from mdq_geoquant.constrained import MDConstrained, param
from mdq_geoquant.md import md_rows
from mdq_quantkit.backends import RTN, quantize_model
from mdq_quantkit.config import QuantConfig
from mdq_quantkit.models import tiny_llama
from mdqcore.model.state import ControlState

LAYER = "model.layers.1.mlp.up_proj"


def _run(state=None, **kw):
    ref, m = tiny_llama(), tiny_llama()
    out = Outliers(functional={LAYER: torch.tensor([0, 1, 2])}, sensitive={LAYER: torch.tensor([10, 11, 12, 13])})
    wrapper = MDConstrained(RTN(), m, out, state, block_size=64, k=8, **kw)
    stats = quantize_model(m, QuantConfig(2, 32), wrapper)
    w = ref.get_submodule(LAYER).weight.detach()
    wq = m.get_submodule(LAYER).dequantized()
    md = md_rows(w, wq, block_size=64, k=8).md
    return wrapper, stats["layers"]["1.mlp.up_proj"], md, ref, m


def test_functional_rows_are_held_and_sensitive_rows_pushed():
    wrapper, s, md, ref, m = _run()
    assert (wrapper.tau_func, wrapper.tau_priv) == (0.4, 0.6)
    assert s["functional_rows"] == 3 and s["sensitive_rows"] == 4
    assert bool((md[[0, 1, 2]] <= 0.4).all())
    pushed = md[[10, 11, 12, 13]]
    assert s["sensitive_pushed"] + s["sensitive_unreached"] <= s["sensitive_rows"]
    assert int((pushed >= 0.6).sum()) == 4 - s["sensitive_unreached"]
    # every other layer is exactly what plain RTN gives
    plain = tiny_llama()
    quantize_model(plain, QuantConfig(2, 32), RTN())
    name = "model.layers.0.self_attn.q_proj"
    assert torch.equal(plain.get_submodule(name).dequantized(), m.get_submodule(name).dequantized())


def test_thresholds_come_from_the_control_state():
    state = ControlState({("param", "Op", "geoquant", "tau_priv"): 2.0, ("param", "Op", "geoquant", "tau_func"): 10.0})
    assert param(state, "tau_priv") == 2.0 and param(None, "tau_priv") == 0.6
    wrapper, s, md, _ref, _m = _run(state)
    assert (wrapper.tau_func, wrapper.tau_priv) == (10.0, 2.0)
    assert s["functional_kept"] == 0  # nothing exceeds MD 10 at 2 bits
    assert s["sensitive_pushed"] == 4 and bool((md[[10, 11, 12, 13]] >= 2.0).all())


def test_outliers_in_an_unknown_layer_are_refused():
    m = tiny_llama()
    with pytest.raises(ValueError, match="does not have"):
        MDConstrained(RTN(), m, Outliers(functional={"model.layers.9.mlp.up_proj": torch.tensor([0])}))


def test_over_gptq_outputs_are_reused_only_where_no_row_was_constrained():
    from mdq_gptq.gptq import GPTQ
    from mdq_quantkit.layerwise import blocks_of, capture

    samples = [torch.randint(0, 256, (1, 32), generator=torch.Generator().manual_seed(i)) for i in range(4)]
    m1, m, plain = tiny_llama(), tiny_llama(), tiny_llama()
    wrapper = MDConstrained(GPTQ(), m1, Outliers(sensitive={LAYER: torch.tensor([10, 11])}), block_size=64, k=8)
    _, blocks = blocks_of(m1)
    inputs, kw = capture(m1, samples[:2])
    _stats, outputs = wrapper.quantize_block_forward(blocks[0], inputs, kw, QuantConfig(4, 32))
    assert outputs is not None and len(outputs) == 2  # block 0 has no outlier rows: GPTQ's own outputs
    assert wrapper.quantize_block_forward(blocks[1], outputs, kw, QuantConfig(4, 32))[1] is None  # constrained
    quantize_model(m, QuantConfig(4, 32), MDConstrained(GPTQ(), m, Outliers()), samples)
    quantize_model(plain, QuantConfig(4, 32), GPTQ(), samples)
    name = "model.layers.1.mlp.down_proj"  # no outliers at all: the same as plain GPTQ
    assert torch.equal(plain.get_submodule(name).dequantized(), m.get_submodule(name).dequantized())
