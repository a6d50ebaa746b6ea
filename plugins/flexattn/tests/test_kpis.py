import json
from importlib.resources import files

import pytest

from mdq_flexattn import kpis
from mdqcore.model.state import ControlState

SCENARIO = json.loads((files("mdq_flexattn") / "data" / "scenario.json").read_text(encoding="utf-8"))


def test_kpis_on_recorded_inputs():
    inputs = SCENARIO["inputs"]
    cov = kpis.coverage(None, inputs)["term_recall"]
    assert 0 < cov < 1
    assert kpis.coverage(None, inputs[:1])["term_recall"] == 1.0  # the reference answers itself
    # 神经酸酶 and 二甲双呱; 阿斯匹林 is a dictionary word (a variant transliteration), not a typo (issue #17)
    assert kpis.compliance(None, inputs)["w_nc"] == pytest.approx(2 / 7)
    r = kpis.reward(None, inputs)
    assert r["len_cost_total"] > 0


def test_promoted_term_changes_coverage_and_compliance():
    inputs = [{"question": "q", "reference": "服用二甲双呱", "answer": "服用二甲双呱"}]
    assert kpis.compliance(None, inputs)["w_nc"] == 1.0
    s = ControlState({("index", "term", "二甲双呱"): 1.0})  # a package declares it a term (e.g. a local spelling)
    assert kpis.compliance(s, inputs)["w_nc"] == 0.0


def test_empty_and_bad_inputs():
    assert kpis.coverage(None, []) == {} and kpis.reward(None, []) == {}
    with pytest.raises(ValueError, match=r"inputs\[0\]"):
        kpis.compliance(None, [{"question": "q"}])
