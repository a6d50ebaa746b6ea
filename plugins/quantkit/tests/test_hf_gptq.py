"""The Hugging Face GPTQ layout (issue #19): written and read back, checked against the format's own definition."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from mdq_quantkit.backends import RTN, quantize_model
from mdq_quantkit.config import QuantConfig
from mdq_quantkit.hf_gptq import load_gptq, save_gptq
from mdq_quantkit.models import load, tiny_llama

X = torch.randint(0, 256, (1, 24), generator=torch.Generator().manual_seed(0))


def _reference_unpack(words: torch.Tensor, bits: int) -> torch.Tensor:
    """Unpack int32 words along dim 0 as AutoGPTQ's format defines it (an independent statement of the layout)."""
    w = words.to(torch.int64) & 0xFFFFFFFF
    if bits != 3:  # 32 / bits codes per word, code j at bits [j*bits, (j+1)*bits)
        per = 32 // bits
        vals = [(w >> (bits * j)) & (2 ** bits - 1) for j in range(per)]
        return torch.stack(vals, 1).reshape(-1, *w.shape[1:])
    out = []
    for r in range(0, w.shape[0], 3):  # 32 codes in 3 words; codes 10 and 21 straddle two words
        w0, w1, w2 = w[r], w[r + 1], w[r + 2]
        out += [(w0 >> (3 * j)) & 7 for j in range(10)]
        out.append(((w0 >> 30) & 3) | ((w1 & 1) << 2))
        out += [(w1 >> (3 * j + 1)) & 7 for j in range(10)]
        out.append(((w1 >> 31) & 1) | ((w2 & 3) << 1))
        out += [(w2 >> (3 * j + 2)) & 7 for j in range(10)]
    return torch.stack(out, 0)


def _reference_dequant(t: dict, prefix: str, bits: int, v1: bool) -> torch.Tensor:
    """W (out, in) from a layer's qweight / qzeros / scales / g_idx, per the format's definition."""
    q = _reference_unpack(t[f"{prefix}.qweight"], bits)  # (in, out)
    z = _reference_unpack(t[f"{prefix}.qzeros"].t().contiguous(), bits).t() + (1 if v1 else 0)  # (G, out)
    g = t[f"{prefix}.g_idx"].long()
    return (t[f"{prefix}.scales"].float()[g] * (q - z[g]).float()).t()


def _quantized(bits, group, sym=False, seed=0):
    m = tiny_llama(seed)
    quantize_model(m, QuantConfig(bits, group, sym), RTN())
    return m


@pytest.mark.parametrize("bits,group,sym", [(4, 32, False), (4, 32, True), (3, 32, False), (8, 64, False),
                                            (2, 32, False), (4, -1, False)])
def test_layout_matches_the_format_definition_and_round_trips(tmp_path, bits, group, sym):
    m = _quantized(bits, group, sym)
    out = save_gptq(m, tmp_path / "g")
    conf = json.loads((out / "config.json").read_text())["quantization_config"]
    assert conf["quant_method"] == "gptq" and conf["bits"] == bits and conf["group_size"] == group
    assert conf["sym"] is sym and conf["desc_act"] is False and conf["checkpoint_format"] in ("gptq", "gptq_v2")
    assert json.loads((out / "quantize_config.json").read_text()) == conf
    t = load_file(out / "model.safetensors")
    v1 = conf["checkpoint_format"] == "gptq"
    for name in m.mdq_quant["modules"]:
        q = m.get_submodule(name)
        G = q.cfg.groups(q.in_features)
        assert t[f"{name}.qweight"].dtype == torch.int32
        assert tuple(t[f"{name}.qweight"].shape) == (q.in_features * bits // 32, q.out_features)
        assert tuple(t[f"{name}.qzeros"].shape) == (G, q.out_features * bits // 32)
        assert t[f"{name}.scales"].dtype == torch.float16 and tuple(t[f"{name}.scales"].shape) == (G, q.out_features)
        assert t[f"{name}.g_idx"].dtype == torch.int32
        assert torch.equal(_reference_dequant(t, name, bits, v1), q.dequantized())  # exactly our weights
    assert "lm_head.weight" not in t  # tied to the embedding
    back = load_gptq(out)
    for name in m.mdq_quant["modules"]:
        assert torch.equal(back.get_submodule(name).dequantized(), m.get_submodule(name).dequantized())
    for mod in (m, back):  # the exact path on both sides: only the float16 storage of other tensors differs
        for q in mod.modules():
            if hasattr(q, "kernel_request"):
                q.kernel_request = "torch"
                q.choose_kernel()
    assert torch.allclose(back(X).logits, m(X).logits, atol=5e-3)


def test_zero_convention_v1_for_symmetric_v2_for_asymmetric(tmp_path):
    for sym, fmt in ((True, "gptq"), (False, "gptq_v2")):
        out = save_gptq(_quantized(4, 32, sym), tmp_path / str(sym))
        assert json.loads((out / "config.json").read_text())["quantization_config"]["checkpoint_format"] == fmt
    m = _quantized(4, 32)
    q = m.get_submodule(m.mdq_quant["modules"][0])
    q.zeros[0, 0] = 0  # v1 stores z - 1: a zero of 0 cannot be written
    with pytest.raises(ValueError, match="cannot be stored as gptq; write gptq_v2"):
        save_gptq(m, tmp_path / "v1", checkpoint_format="gptq")
    for name in m.mdq_quant["modules"]:
        m.get_submodule(name).zeros.clamp_(min=1)
    out = save_gptq(m, tmp_path / "v1", checkpoint_format="gptq")  # asymmetric v1 where it can hold the zeros
    assert torch.equal(load_gptq(out).get_submodule(m.mdq_quant["modules"][0]).dequantized(), q.dequantized())


def test_act_order_g_idx_is_written_and_read(tmp_path):
    m = _quantized(4, 32)
    name = m.mdq_quant["modules"][0]
    q = m.get_submodule(name)
    q.in_perm = torch.randperm(q.in_features, generator=torch.Generator().manual_seed(1))
    out = save_gptq(m, tmp_path / "g")
    assert json.loads((out / "config.json").read_text())["quantization_config"]["desc_act"] is True
    t = load_file(out / "model.safetensors")
    assert not torch.equal(t[f"{name}.g_idx"].long(), torch.arange(q.in_features) // 32)
    assert torch.equal(_reference_dequant(t, name, 4, v1=False), q.dequantized())  # asymmetric: v2
    assert torch.equal(load_gptq(out).get_submodule(name).dequantized(), q.dequantized())


def _edit_config(out, **changes):
    conf = json.loads((out / "config.json").read_text())
    conf["quantization_config"].update(changes)
    (out / "config.json").write_text(json.dumps(conf))


@pytest.mark.parametrize("change,message", [({"quant_method": "awq"}, "quant_method 'awq' is not supported"),
                                            ({"bits": 5}, "bits 5 is not supported"),
                                            ({"checkpoint_format": "marlin"}, "checkpoint_format 'marlin'")])
def test_unsupported_configs_are_refused_naming_the_file(tmp_path, change, message):
    out = save_gptq(_quantized(4, 32), tmp_path / "g")
    _edit_config(out, **change)
    with pytest.raises(ValueError, match=message) as e:
        load_gptq(out)
    assert "config.json" in str(e.value)


def test_zero_convention_contradicting_the_data_is_detected(tmp_path):
    out = save_gptq(_quantized(4, 32, sym=True), tmp_path / "s")  # v1: stored zeros are 7
    _edit_config(out, checkpoint_format="gptq_v2")
    with pytest.raises(ValueError, match=r"model.safetensors: model.layers.0.* zero point at 8.*equal 8 under 'gptq'"):
        load_gptq(out)
    m = _quantized(4, 32)
    for name in m.mdq_quant["modules"]:
        m.get_submodule(name).zeros.clamp_(min=1)
    out = save_gptq(m, tmp_path / "a")  # asymmetric: v2
    _edit_config(out, checkpoint_format="gptq")
    with pytest.raises(ValueError, match="contradicts its config"):
        load_gptq(out)


def test_mismatched_shapes_and_truncated_files_are_named(tmp_path):
    out = save_gptq(_quantized(4, 32), tmp_path / "g")
    t = load_file(out / "model.safetensors")
    name = "model.layers.1.mlp.up_proj"
    good = t[f"{name}.scales"]
    t[f"{name}.scales"] = good[:, :-1].contiguous()
    save_file(t, out / "model.safetensors")
    with pytest.raises(ValueError, match=rf"model.safetensors: {name}.scales is torch.float16 \(2, 159\)"):
        load_gptq(out)
    t[f"{name}.scales"] = good
    t[f"{name}.qweight"] = t[f"{name}.qweight"][:-1].contiguous()
    save_file(t, out / "model.safetensors")
    with pytest.raises(ValueError, match=rf"model.safetensors: {name}.qweight has shape \[7, 160\]"):
        load_gptq(out)
    t[f"{name}.qweight"] = load_file(save_gptq(_quantized(4, 32), tmp_path / "h") / "model.safetensors")[f"{name}.qweight"]
    save_file(t, out / "model.safetensors")
    data = (out / "model.safetensors").read_bytes()
    (out / "model.safetensors").write_bytes(data[:-100])
    with pytest.raises(ValueError, match=r"model.safetensors is truncated: tensor '.*'"):
        load_gptq(out)


def test_generic_loader_reads_gptq_directories(tmp_path):
    m = _quantized(4, 32)
    out = save_gptq(m, tmp_path / "g")
    back, tok = load(out)
    assert tok is None and back.mdq_quant["config"]["bits"] == 4
