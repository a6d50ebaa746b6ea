"""The compatibility matrix: rules from plugins decide ok / warn / reject (issue #3)."""

from __future__ import annotations

import pytest

import mdqcore
from mdqcore.testing import load_isolated
from mdqcore.versions.compat import CompatError, RangeRule, check_requires, evaluate, known_versions, matrix


class Rules:
    @mdqcore.hookimpl
    def register_compat_rules(self, register):
        register("op2-needs-index3", RangeRule({"operator": ">=2.0.0", "index": "<3.0.0"}, "reject",
                                              "operator set 2.x reads the index schema 3 fields"))
        register("gate-1.4-deprecated", RangeRule({"gate": "~1.4"}, "warn", "gate policy 1.4 is deprecated"))

    @mdqcore.hookimpl
    def register_operators(self, register):
        register("L", object(), version="1.0.0", params={"lambda_lex": (0, 1)})
        register("T", object(), version="2.1.0", params={"tau": (0, 1)})

    @mdqcore.hookimpl
    def register_index_features(self, register):
        register("idf", object(), version="3.0.0", semiring="max")
        register("alias", object(), version="2.0.0", semiring="max")


@pytest.fixture
def reg():
    return load_isolated(Rules(), "rules")


def test_ok_warn_reject_with_the_deciding_rules(reg):
    assert evaluate(reg, {"operator": "2.1.0", "index": "3.0.0", "gate": "1.3.0"}).verdict == "ok"
    warn = evaluate(reg, {"operator": "2.1.0", "index": "3.0.0", "gate": "1.4.0"})
    assert warn.verdict == "warn" and [f.rule for f in warn.deciding()] == ["gate-1.4-deprecated"]
    rej = evaluate(reg, {"operator": "2.1.0", "index": "2.0.0", "gate": "1.4.0"})
    assert rej.verdict == "reject" and [f.rule for f in rej.deciding()] == ["op2-needs-index3"]
    assert "reads the index schema 3 fields" in rej.explain() and "[plugin 'rules']" in rej.explain()


def test_known_versions_come_from_capabilities(reg):
    assert known_versions(reg) == {"operator": ["1.0.0", "2.1.0"], "index": ["2.0.0", "3.0.0"], "gate": []}


def test_matrix_covers_every_combination(reg):
    cells = matrix(reg, {"operator": ["1.0.0", "2.1.0"], "index": ["2.0.0", "3.0.0"], "gate": []})
    assert [(c.versions["operator"], c.versions["index"], c.verdict) for c in cells] == [
        ("1.0.0", "2.0.0", "ok"), ("1.0.0", "3.0.0", "ok"), ("2.1.0", "2.0.0", "reject"), ("2.1.0", "3.0.0", "ok")]


def test_package_landing_on_a_rejected_cell_is_refused(reg):
    with pytest.raises(CompatError, match="op2-needs-index3"):
        check_requires(reg, {"operator": "^2"}, active={"index": "2.0.0"}, what="mdq.x@1.0.0")
    assert check_requires(reg, {"operator": "^2", "index": "^3"}, active={}).verdict == "ok"
    with pytest.raises(CompatError, match="needs operator \\^9; known versions: 1.0.0, 2.1.0"):
        check_requires(reg, {"operator": "^9"}, active={})


def test_a_rule_that_raises_rejects_rather_than_waves_through():
    class Broken:
        @mdqcore.hookimpl
        def register_compat_rules(self, register):
            register("flaky", lambda versions: versions["missing-axis"])

    d = evaluate(load_isolated(Broken()), {"operator": "1.0.0"})
    assert d.verdict == "reject" and "rule raised KeyError" in d.findings[0].reason


@pytest.mark.parametrize("kwargs, fragment", [
    ({"when": {"operator": "^1"}, "verdict": "maybe", "reason": "r"}, "verdict must be one of"),
    ({"when": {}, "verdict": "ok", "reason": "r"}, "at least one axis"),
    ({"when": {"operator": "^^1"}, "verdict": "ok", "reason": "r"}, "not a valid SemVer range"),
])
def test_range_rule_validation(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        RangeRule(**kwargs)
