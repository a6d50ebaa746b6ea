"""mdq's own checkpoint format: other tools must fail loudly on it (issue #19), and bad files are named."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from mdq_quantkit.backends import RTN, quantize_model
from mdq_quantkit.config import QuantConfig
from mdq_quantkit.io import load_quantized, save, save_quantized
from mdq_quantkit.models import checkpoint_kind, tiny_llama


def _saved(tmp_path):
    m = tiny_llama()
    quantize_model(m, QuantConfig(4, 32), RTN())
    return m, save_quantized(m, tmp_path / "q")


def test_transformers_cannot_silently_load_our_directory(tmp_path):
    from transformers import AutoModelForCausalLM

    m, out = _saved(tmp_path)
    # before issue #19 this loaded with every linear layer random (210 missing, 1,050 unexpected keys)
    with pytest.raises(OSError, match="model.safetensors"):
        AutoModelForCausalLM.from_pretrained(out)
    qc = json.loads((out / "config.json").read_text())["quantization_config"]
    assert qc["quant_method"] == "mdq" and "--format gptq" in qc["note"]
    assert checkpoint_kind(out) == "mdq"
    assert torch.equal(load_quantized(out).get_submodule(m.mdq_quant["modules"][0]).codes(),
                       m.get_submodule(m.mdq_quant["modules"][0]).codes())


def test_directories_written_before_the_rename_still_load(tmp_path):
    m, out = _saved(tmp_path)
    (out / "mdq_model.safetensors").rename(out / "model.safetensors")
    assert load_quantized(out).mdq_quant["modules"] == m.mdq_quant["modules"]


def test_bad_files_are_named_before_any_work(tmp_path):
    m, out = _saved(tmp_path)
    f = out / "mdq_model.safetensors"
    t = load_file(f)
    name = m.mdq_quant["modules"][2]
    t[f"{name}.scales"] = t[f"{name}.scales"][:1].contiguous()
    save_file(t, f)
    with pytest.raises(ValueError, match=rf"mdq_model.safetensors: {name}.scales has shape"):
        load_quantized(out)
    f.write_bytes(f.read_bytes()[:-64])
    with pytest.raises(ValueError, match="mdq_model.safetensors is truncated: tensor"):
        load_quantized(out)
    with pytest.raises(ValueError, match="format must be one of"):
        save(m, tmp_path / "x", fmt="onnx")


def test_kept_columns_round_trip_and_tampered_codes_are_refused(tmp_path):
    from mdq_gptq.gptq import GPTQ

    m = tiny_llama()
    samples = [torch.randint(0, 256, (1, 32), generator=torch.Generator().manual_seed(i)) for i in range(4)]
    quantize_model(m, QuantConfig(4, 32), GPTQ(keep_columns=0.05), samples)
    out = save_quantized(m, tmp_path / "q")
    name = m.mdq_quant["modules"][1]
    back = load_quantized(out).get_submodule(name)
    assert torch.equal(back.dequantized(), m.get_submodule(name).dequantized())
    assert back.keep_cols.numel() > 0
    f = out / "mdq_model.safetensors"
    t = load_file(f)
    t[f"{name}.keep_cols"] = (t[f"{name}.keep_cols"] + 1) % back.in_features  # columns whose codes are not zero
    save_file(t, f)
    with pytest.raises(ValueError, match=rf"mdq_model.safetensors: {name}: the codes of the kept columns"):
        load_quantized(out)
