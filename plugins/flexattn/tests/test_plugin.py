"""mdq-flexattn as an mdq plugin: its capabilities, a live package changing the reward, the CLI (issue #5)."""

import json
from importlib.resources import files

import pytest
from click.testing import CliRunner

from mdq_flexattn import plugin
from mdq_flexattn.reward import Scorer
from mdqcore import builtin, load_package
from mdqcore.cli import main
from mdqcore.ledger.sqlite import SQLiteLedger
from mdqcore.runtime.hotplug import Rejected, Runtime
from mdqcore.testing import load_isolated

SCENARIO = json.loads((files("mdq_flexattn") / "data" / "scenario.json").read_text(encoding="utf-8"))


@pytest.fixture
def reg():
    return load_isolated(plugin, "flexattn", registry=load_isolated(builtin, "core"))


def test_registers_every_capability(reg):
    assert reg.names("operator") == ["flexattn"]
    assert reg.names("length_policy") == ["table"]
    assert "term" in reg.names("index_feature") and reg.get("index_feature", "term").meta["semiring"] == "max"
    assert {"topic", "jaccard", "bm25"} <= set(reg.names("gate"))
    assert reg.names("evaluator") == ["lexical_reward", "term_coverage", "word_compliance"]
    assert reg.names("command") == ["flexattn"]
    assert reg.names("pipeline") == ["reward"] and reg.get("pipeline", "reward").meta["kpis"]["general_share"] == "lower"


def test_a_promoted_package_changes_the_reward_live(reg, tmp_path):
    rt = Runtime(reg, SQLiteLedger(str(tmp_path / "l.sqlite")))
    q, t = SCENARIO["question"], SCENARIO["target"]
    before = Scorer(rt.snapshot()).score(q, t)
    assert rt.snapshot().param("Op", "flexattn", "lambda_lex") == 0.3  # the plugin's defaults are in the state
    pkg = load_package({"name": "lex", "semver": "1.0.0", "tests": ["legal", "bm25"],
                        "atoms": [{"type": "Op", "op": "flexattn", "param": "lambda_lex", "value": 0.45},
                                  {"type": "Gate", "gate": "topic", "param": "tau", "value": 0.6}]})
    rt.apply(pkg, inputs=SCENARIO["inputs"])
    after = Scorer(rt.snapshot()).score(q, t)
    assert after[0].delta == pytest.approx(before[0].delta * 1.5 * 0.4 / 0.25)
    rt.rollback("lex")
    assert Scorer(rt.snapshot()).score(q, t) == before
    bad = load_package({"name": "bad", "semver": "1.0.0", "tests": ["bm25"],
                        "atoms": [{"type": "Idx", "feature": "idf", "seg": "股票期货", "delta": 0.1}]})
    with pytest.raises(Rejected, match="unrelated to the domain catalog"):
        rt.apply(bad)
    rt.close()


def test_demo_twice_picks_up_the_ledger(tmp_path, mdq_cli_plugins):
    mdq_cli_plugins("core,flexattn")
    runner = CliRunner()
    led, log = str(tmp_path / "d.sqlite"), str(tmp_path / "steps.jsonl")
    first = runner.invoke(main, ["flexattn", "scenario", "--ledger", led, "--log", log])
    assert first.exit_code == 0, first.output
    assert "promoted" in first.output and "step 13 神经氨酸酶" in first.output
    second = runner.invoke(main, ["flexattn", "scenario", "--ledger", led, "--log", log])
    assert second.exit_code == 0, second.output
    assert "already active" in second.output and second.output.count("canary_started") == 1
    ok = runner.invoke(main, ["flexattn", "replay", log, "--ledger", led])
    assert ok.exit_code == 0 and "every reward matches" in ok.output
    runner.invoke(main, ["pkg", "rollback", "mdq.idx.ifu.idf-boost", "--ledger", led])
    now = runner.invoke(main, ["flexattn", "replay", log, "--ledger", led, "--now"])
    assert now.exit_code == 1 and "idf logged" in now.output
    again = runner.invoke(main, ["flexattn", "replay", log, "--ledger", led])  # as of the log's ledger seq
    assert again.exit_code == 0, again.output


def test_score_command_and_bad_log(tmp_path, mdq_cli_plugins):
    mdq_cli_plugins("core,flexattn")
    runner = CliRunner()
    led = str(tmp_path / "d.sqlite")
    r = runner.invoke(main, ["flexattn", "score", "--ledger", led, "--question", "阿司匹林有什么作用？", "--json",
                             "阿司匹林是一种环氧合酶抑制剂。"])
    assert r.exit_code == 0
    doc = json.loads(r.output)  # --json prints one JSON document and nothing else
    assert doc["steps"][0]["seg"] == "阿司匹林" and doc["hits"][0]["term"] == "阿司匹林" and doc["nearmisses"] == []
    r = runner.invoke(main, ["flexattn", "score", "--ledger", led, "--question", "什么是二甲双胍？", "二甲双呱能降糖。"])
    assert r.exit_code == 0 and "hits" in r.output and "二甲双呱 (step 1, did you mean 二甲双胍?)" in r.output
    for args, expect in ((["--question", "q", ""], "empty"), (["--question", "q", "--gate", "cosine", "x"], "cosine")):
        r = runner.invoke(main, ["flexattn", "score", "--ledger", led, *args])
        assert r.exit_code == 2 and expect in r.output and "Traceback" not in r.output
    (tmp_path / "bad.jsonl").write_text("nope\n", encoding="utf-8")
    r = runner.invoke(main, ["flexattn", "replay", str(tmp_path / "bad.jsonl"), "--ledger", led])
    assert r.exit_code == 2 and "line 1" in r.output
    assert "Example" in runner.invoke(main, ["flexattn", "scenario", "--help"]).output
