import pytest
import torch

from mdq_quantkit.backends import RTN, quantize_model
from mdq_quantkit.config import QuantConfig
from mdq_quantkit.io import load_quantized, save_quantized
from mdq_quantkit.layerwise import check_model
from mdq_quantkit.models import tiny_gpt2, tiny_llama
from mdq_quantkit.qlinear import QuantLinear

X = torch.randint(0, 256, (1, 24), generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("make", [tiny_llama, tiny_gpt2])
def test_rtn_quantizes_every_block_linear_and_round_trips_through_safetensors(make, tmp_path):
    m = make()
    ref = m(X).logits.detach()
    stats = quantize_model(m, QuantConfig(4, 32), RTN())
    n = sum(isinstance(x, QuantLinear) for x in m.modules())
    assert n == len(stats["layers"]) == len(m.mdq_quant["modules"]) and n > 0
    q = m(X).logits.detach()
    assert 0 < float((q - ref).abs().max()) < 0.5
    out = save_quantized(m, tmp_path / "q")
    assert not list(out.glob("*.bin")) and not list(out.glob("*.pt"))  # no pickle anywhere
    back = load_quantized(out)
    assert torch.allclose(back(X).logits, q, atol=5e-3)  # only the float16 storage of non-quantized tensors differs
    for name in m.mdq_quant["modules"]:
        assert torch.equal(back.get_submodule(name).qweight, m.get_submodule(name).qweight)


def test_bad_inputs_fail_before_any_work(tmp_path):
    m = tiny_llama()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    with pytest.raises(ValueError, match="larger than the layer"):
        quantize_model(m, QuantConfig(4, 1024), RTN())
    with torch.no_grad():
        m.model.layers[1].mlp.up_proj.weight[3, 5] = float("inf")
    with pytest.raises(ValueError, match=r"block 1 mlp.up_proj has a non-finite weight"):
        quantize_model(m, QuantConfig(4, 32), RTN())
    assert not any(isinstance(x, QuantLinear) for x in m.modules())  # nothing was replaced
    assert all(torch.equal(v, before[k]) for k, v in m.state_dict().items() if k != "model.layers.1.mlp.up_proj.weight")
    with pytest.raises(ValueError, match="no transformer blocks"):
        check_model(torch.nn.Sequential(torch.nn.Linear(4, 4)))
    with pytest.raises(ValueError, match="not quantized by mdq"):
        save_quantized(tiny_llama(), tmp_path / "x")


def test_kept_rows_survive_save_and_load(tmp_path):
    m = tiny_llama()
    quantize_model(m, QuantConfig(4, 32), RTN())
    name = m.mdq_quant["modules"][0]
    layer = m.get_submodule(name)
    rows = torch.tensor([0, 5])
    layer.keep(rows, torch.full((2, layer.in_features), 0.25))
    back = load_quantized(save_quantized(m, tmp_path / "q"))
    assert torch.equal(back.get_submodule(name).keep_idx, rows)
    assert torch.equal(back.get_submodule(name).dequantized(), layer.dequantized())
