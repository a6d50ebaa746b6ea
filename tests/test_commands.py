"""`mdq resolve` and `mdq compat` from the command line (issue #3)."""

from __future__ import annotations

import json

import pytest

from .test_cli import run  # noqa: F401  (fixture)

INDEX = {"packages": {
    "a": {"1.0.0": {}, "2.0.0": {"requires": {"b": "^3"}}, "2.1.0": {"requires": {"b": "^3"}}},
    "b": {"2.0.0": {}, "2.5.0": {}, "3.0.0": {}},
    "c": {"1.4.0": {"requires": {"b": "^2"}}}}}

RULES = """
import mdqcore
from mdqcore.versions.compat import RangeRule

@mdqcore.hookimpl
def register_compat_rules(register):
    register("op2-index3", RangeRule({"operator": ">=2.0.0", "index": "<3.0.0"}, "reject", "needs index 3"))
    register("gate14", RangeRule({"gate": "~1.4"}, "warn", "gate 1.4 deprecated"))

@mdqcore.hookimpl
def register_operators(register):
    register("L", object(), version="2.1.0", params={"lambda_lex": (0, 1)})
"""


@pytest.fixture
def index(tmp_path):
    p = tmp_path / "index.json"
    p.write_text(json.dumps(INDEX))
    return str(p)


def test_resolve_ok_json_and_cohorts(run, index):
    r = run("resolve", "--index", index, "--require", "a@*", "--require", "canary:a@^1", "--json")
    assert r.exit_code == 0
    assert json.loads(r.output)["cohorts"] == {"canary": {"a": "1.0.0"}, "default": {"a": "2.1.0", "b": "3.0.0"}}


def test_resolve_conflict_exits_1_with_explanation(run, index):
    r = run("resolve", "--index", index, "--require", "a@^2", "--require", "c@1.4.0")
    assert r.exit_code == 1
    assert "c and a ^2 are incompatible" in r.output and "version solving failed" in r.output


def test_resolve_malformed_index_exits_2_with_path(run, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"packages": {"a": {"1.0.0": {"requires": {"b": "~>1"}}}}}')
    r = run("resolve", "--index", str(bad), "--require", "a")
    assert r.exit_code == 2 and "@ $.packages['a']['1.0.0'].requires['b']" in r.output


@pytest.mark.parametrize("req", ["a@^^1", "a@>=1.2.3.4", "@1"])
def test_resolve_malformed_requirement_exits_2(run, index, req):
    assert run("resolve", "--index", index, "--require", req).exit_code == 2


def test_lock_written_and_rechecked(run, index, tmp_path):
    lock = tmp_path / "mdq.lock"
    assert run("resolve", "--index", index, "--require", "a@*", "--lock", str(lock)).exit_code == 0
    assert json.loads(lock.read_text())["cohorts"]["default"] == {"a": "2.1.0", "b": "3.0.0"}
    assert run("resolve", "--index", index, "--check-lock", str(lock)).exit_code == 0
    data = json.loads(lock.read_text())
    data["cohorts"]["default"]["b"] = "2.0.0"
    lock.write_text(json.dumps(data))
    r = run("resolve", "--index", index, "--check-lock", str(lock))
    assert r.exit_code == 1 and "a 2.1.0 depends on b ^3, locked at 2.0.0" in r.output


def test_resolve_installed(run):
    r = run("resolve", "--installed", "--json")
    assert r.exit_code == 0
    assert all(row["ok"] for row in json.loads(r.output))


def test_compat_check_exit_codes(run, make_dist):
    make_dist("rules", RULES)
    env = {"MDQ_PLUGINS": "rules"}
    assert run("compat", "--check", "operator=2.1.0", "index=3.0.0", "gate=1.3.0", env=env).exit_code == 0
    warn = run("compat", "--check", "operator=2.1.0", "index=3.0.0", "gate=1.4.0", env=env)
    assert warn.exit_code == 3 and "gate14" in warn.output
    rej = run("compat", "--check", "operator=2.1.0", "index=2.0.0", "gate=1.4.0", env=env)
    assert rej.exit_code == 1 and "op2-index3" in rej.output and "needs index 3" in rej.output
    assert run("compat", "--check", "operator=2.1", env=env).exit_code == 2


def test_compat_matrix_table_and_json(run, make_dist):
    make_dist("rules", RULES)
    env = {"MDQ_PLUGINS": "rules,-core"}  # only the rules plugin's axes: core would add its gate versions
    r = run("compat", "--axis", "index=2.0.0,3.0.0", "--json", env=env)
    cells = json.loads(r.output)
    assert [(c["versions"], c["verdict"]) for c in cells] == [
        ({"operator": "2.1.0", "index": "2.0.0"}, "reject"), ({"operator": "2.1.0", "index": "3.0.0"}, "ok")]
    table = run("compat", "--axis", "index=2.0.0,3.0.0", env=env).output
    assert "reject" in table and "needs index 3" in table
