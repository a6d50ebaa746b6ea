"""`mdq geoquant md` on a local checkpoint, and its errors."""

import json

from click.testing import CliRunner

from mdq_quantkit.models import tiny_llama
from mdqcore.cli import main


def _ckpt(tmp_path):
    m = tiny_llama()
    m.save_pretrained(tmp_path / "tiny")
    return str(tmp_path / "tiny")


def test_md_prints_json_per_layer(tmp_path, mdq_cli_plugins):
    mdq_cli_plugins("core,quantkit,geoquant")
    r = CliRunner().invoke(main, ["geoquant", "md", "--model", _ckpt(tmp_path), "--block-size", "32", "--k", "8",
                                  "--bits", "3", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["mode"] == "pre" and doc["params"]["bits"] == 3 and len(doc["layers"]) == 14
    r = CliRunner().invoke(main, ["geoquant", "md", "--model", _ckpt(tmp_path), "--block-size", "64", "--k", "8",
                                  "--layer-type", "mlp", "--refine", "--json"])
    assert r.exit_code == 0, r.output
    refined = json.loads(r.stdout)
    assert refined["params"]["refine"] and set(refined["types"]) == {"mlp"}


def test_md_refuses_a_block_larger_than_the_layers(tmp_path, mdq_cli_plugins):
    mdq_cli_plugins("core,quantkit,geoquant")
    r = CliRunner().invoke(main, ["geoquant", "md", "--model", _ckpt(tmp_path)])
    assert r.exit_code == 2 and "block size 256 is larger than the layer" in r.output
    r = CliRunner().invoke(main, ["geoquant", "md", "--model", str(tmp_path / "nowhere")])
    assert r.exit_code == 2 and "error:" in r.output


def test_help_explains_the_commands(mdq_cli_plugins):
    mdq_cli_plugins("core,quantkit,geoquant")
    r = CliRunner().invoke(main, ["geoquant", "report", "--help"])
    assert r.exit_code == 0 and "loss change" in r.output and "--blocks" in r.output
