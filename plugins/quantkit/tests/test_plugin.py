"""mdq-quantkit as an mdq plugin and its CLI (issue #6)."""

import json

import pytest

from click.testing import CliRunner

from mdq_quantkit import plugin
from mdq_quantkit.backends import RTN
from mdq_quantkit.models import tiny_llama
from mdqcore.cli import main


def test_registers_rtn_and_commands(mdq_load_plugin):
    reg = mdq_load_plugin(plugin)
    assert isinstance(reg.get("quantizer", "rtn").obj(), RTN)
    assert reg.names("command") == ["eval", "quantize"]


def test_quantize_and_eval_a_local_checkpoint(tmp_path, mdq_cli_plugins):
    from transformers import PreTrainedTokenizerFast
    from tokenizers import Tokenizer, models, pre_tokenizers

    mdq_cli_plugins("core,quantkit,gptq,awq")
    src = tmp_path / "tiny"
    tiny_llama().save_pretrained(src)
    tk = Tokenizer(models.WordLevel({f"w{i}": i for i in range(256)} | {"[UNK]": 0}, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="[UNK]").save_pretrained(src)
    text = tmp_path / "t.txt"
    text.write_text(" ".join(f"w{(i * 7) % 256}" for i in range(3000)))
    r = CliRunner()
    for backend in ("rtn", "gptq", "awq"):
        res = r.invoke(main, ["quantize", "--model", str(src), "--backend", backend, "--bits", "4", "--group-size", "32",
                              "--samples", "4", "--seqlen", "64", "--text", str(text), "--out", str(tmp_path / backend)])
        assert res.exit_code == 0, res.output
        assert (tmp_path / backend / "mdq_model.safetensors").is_file()
    ppl = {}
    for fmt in ("mdq", "gptq", "compressed-tensors"):  # issue #19: standard layouts, read back by `mdq eval ppl`
        out = tmp_path / f"gptq-{fmt}"
        res = r.invoke(main, ["quantize", "--model", str(src), "--backend", "gptq", "--group-size", "32", "--samples", "4",
                              "--seqlen", "64", "--text", str(text), "--format", fmt, "--out", str(out)])
        assert res.exit_code == 0, res.output
        res = r.invoke(main, ["eval", "ppl", "--model", str(out), "--tokens", "256", "--seqlen", "64",
                              "--text", str(text), "--json"])
        assert res.exit_code == 0, res.output
        ppl[fmt] = json.loads(res.output.strip().splitlines()[-1])["ppl"]
    assert ppl["mdq"] > 1 and ppl["gptq"] == pytest.approx(ppl["mdq"], rel=1e-2)
    assert ppl["compressed-tensors"] == pytest.approx(ppl["mdq"], rel=1e-2)
    weights = tmp_path / "gptq-gptq" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])
    res = r.invoke(main, ["eval", "ppl", "--model", str(weights.parent), "--text", str(text)])
    assert res.exit_code == 2 and "is truncated: tensor" in res.output and "Traceback" not in res.output


def test_cli_bad_input(tmp_path, mdq_cli_plugins):
    mdq_cli_plugins("core,quantkit")
    r = CliRunner()
    res = r.invoke(main, ["quantize", "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "does not exist" in res.output
    (tmp_path / "empty").mkdir()
    res = r.invoke(main, ["quantize", "--model", str(tmp_path / "empty"), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "not a Hugging Face checkpoint" in res.output
    res = r.invoke(main, ["quantize", "--model", "x", "--bits", "5", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "5" in res.output
    res = r.invoke(main, ["quantize", "--model", "x", "--group-size", "0", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "group_size" in res.output
    res = r.invoke(main, ["quantize", "--model", "x", "--backend", "zzz", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "no quantizer backend 'zzz'" in res.output
    res = r.invoke(main, ["quantize", "--model", "x", "--format", "onnx", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "onnx" in res.output
    res = r.invoke(main, ["quantize", "--model", "x", "--no-act-order", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "gptq backend only" in res.output
    for extra, said in ((["--keep-columns", "1%"], "gptq backend only"),
                        (["--backend", "gptq", "--keep-columns", "70%"], "outside (0, 50%]"),
                        (["--backend", "gptq", "--keep-columns", "x"], "is not a share"),
                        (["--backend", "gptq", "--keep-columns", "1%", "--format", "gptq"], "only mdq's format"),
                        (["--calibration-dtype", "bfloat16"], "gptq backend only"),
                        (["--backend", "gptq", "--calibration-dtype", "float16"], "float16")):
        res = r.invoke(main, ["quantize", "--model", "x", *extra, "--out", str(tmp_path / "o")])
        assert res.exit_code == 2 and said in res.output and not (tmp_path / "o").exists()
    assert "Example" in r.invoke(main, ["quantize", "--help"]).output


def test_optimum_quantizer_interface(tmp_path):
    from optimum.quantization_base import OptimumQuantizer

    from mdq_quantkit.io import load_quantized
    from mdq_quantkit.optimum_api import MdqQuantizer

    src = tmp_path / "tiny"
    tiny_llama().save_pretrained(src)
    q = MdqQuantizer.from_pretrained(src)
    assert isinstance(q, OptimumQuantizer)
    out = q.quantize(tmp_path / "out", bits=3, group_size=32)
    assert load_quantized(out).mdq_quant["config"]["bits"] == 3
