"""compressed-tensors export / import through the library (issue #19), checked with the library's own decompressor."""

import json

import pytest
import torch
from compressed_tensors.compressors.pack_quantized import PackedQuantizationCompressor
from compressed_tensors.quantization import QuantizationConfig
from safetensors.torch import load_file, save_file

from mdq_quantkit.backends import RTN, quantize_model
from mdq_quantkit.config import QuantConfig
from mdq_quantkit.ctensors import load_ct, save_ct
from mdq_quantkit.io import check_save
from mdq_quantkit.models import load, tiny_llama

X = torch.randint(0, 256, (1, 24), generator=torch.Generator().manual_seed(0))


def _quantized(bits, group, sym=False):
    m = tiny_llama()
    quantize_model(m, QuantConfig(bits, group, sym), RTN())
    return m


@pytest.mark.parametrize("bits,group,sym", [(4, 32, False), (4, 32, True), (8, 32, False), (3, 32, False),
                                            (4, -1, False)])
def test_export_is_what_the_library_reads_and_import_keeps_the_codes(tmp_path, bits, group, sym):
    m = _quantized(bits, group, sym)
    out = save_ct(m, tmp_path / "ct")
    qc = json.loads((out / "config.json").read_text())["quantization_config"]
    assert qc["quant_method"] == "compressed-tensors" and qc["format"] == "pack-quantized"
    conf = QuantizationConfig.model_validate({k: v for k, v in qc.items() if k != "quant_method"})
    scheme = conf.config_groups["group_0"]
    assert scheme.weights.num_bits == bits and scheme.weights.symmetric is sym and conf.ignore == ["lm_head"]
    t = load_file(out / "model.safetensors")
    for name in m.mdq_quant["modules"]:
        q = m.get_submodule(name)
        assert t[f"{name}.weight_packed"].dtype == torch.int32 and f"{name}.weight" not in t
        assert (f"{name}.weight_zero_point" in t) is (not sym)
        local = {k[len(name) + 1:]: v for k, v in t.items() if k.startswith(name + ".")}
        theirs = PackedQuantizationCompressor.decompress(local, scheme)["weight"]  # the library's dequantization
        assert torch.equal(theirs, q.dequantized().to(theirs.dtype))  # exactly ours, in the scale's dtype
    back = load_ct(out)
    for name in m.mdq_quant["modules"]:
        assert torch.equal(back.get_submodule(name).codes(), m.get_submodule(name).codes())
        assert torch.equal(back.get_submodule(name).dequantized(), m.get_submodule(name).dequantized())
    assert load(out)[0].mdq_quant["modules"] == back.mdq_quant["modules"]


def test_groups_that_do_not_divide_a_layer_are_refused_before_any_work():
    m = tiny_llama()  # 64 -> 160 and 160 -> 64: groups of 64 do not divide 160
    with pytest.raises(ValueError, match="down_proj has 160 inputs and group_size is 64"):
        check_save("compressed-tensors", QuantConfig(4, 64), m)
    check_save("compressed-tensors", QuantConfig(4, 32), m)
    check_save("gptq", QuantConfig(4, 64), m)  # the GPTQ layout takes a short last group


@pytest.mark.parametrize("change,message", [({"format": "float-quantized"}, "format 'float-quantized'"),
                                            ({"num_bits": 5}, "5-bit weights"),
                                            ({"input_activations": {"num_bits": 8, "type": "int"}}, "quantized activations")])
def test_unsupported_configs_are_refused(tmp_path, change, message):
    out = save_ct(_quantized(4, 32), tmp_path / "ct")
    conf = json.loads((out / "config.json").read_text())
    g = conf["quantization_config"]["config_groups"]["group_0"]
    if "format" in change:
        conf["quantization_config"].update(change)
    elif "num_bits" in change:
        g["weights"].update(change)
    else:
        g.update(change)
    (out / "config.json").write_text(json.dumps(conf))
    with pytest.raises(ValueError, match=message) as e:
        load_ct(out)
    assert "config.json" in str(e.value)


def test_mismatched_shapes_are_named(tmp_path):
    out = save_ct(_quantized(4, 32), tmp_path / "ct")
    t = load_file(out / "model.safetensors")
    name = "model.layers.0.self_attn.o_proj"
    t[f"{name}.weight_scale"] = t[f"{name}.weight_scale"][:-1].contiguous()
    save_file(t, out / "model.safetensors")
    with pytest.raises(ValueError, match=rf"model.safetensors: {name}.weight_scale has shape \[63, 2\]"):
        load_ct(out)


def test_act_order_g_idx_is_read(tmp_path):
    from compressed_tensors.compressors.pack_quantized import pack_to_int32

    m = _quantized(4, 32)
    out = save_ct(m, tmp_path / "ct")
    t = load_file(out / "model.safetensors")
    name = "model.layers.0.mlp.gate_proj"
    q = m.get_submodule(name)
    perm = torch.randperm(q.in_features, generator=torch.Generator().manual_seed(2))  # stored column j = feature perm[j]
    feat = torch.empty_like(q.codes())
    feat[:, perm] = q.codes()
    gidx = torch.empty(q.in_features, dtype=torch.int32)
    gidx[perm] = (torch.arange(q.in_features) // 32).int()
    t[f"{name}.weight_packed"] = pack_to_int32((feat - 8).to(torch.int8), 4)
    t[f"{name}.weight_g_idx"] = gidx
    save_file(t, out / "model.safetensors")
    want = q.dequantized()[:, torch.argsort(perm)]  # the same codes, read through the permutation
    assert torch.equal(load_ct(out).get_submodule(name).dequantized(), want)
