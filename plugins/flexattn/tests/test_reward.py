import pytest

from mdq_flexattn.reward import PARAMS, Params, Scorer, totals
from mdqcore.model.state import ControlState

Q = '请问什么是"奥司他韦"？'
T = ("磷酸奥司他韦是一种作用于神经氨酸酶的特异性抑制剂，其抑制神经氨酸酶的活性，"
     "可以抑制成熟的流感病毒脱离宿主细胞，从而抑制流感病毒在人体内的传播。")


@pytest.fixture(scope="module")
def steps():
    return Scorer().score(Q, T)


def test_reference_scenario_hits(steps):
    hits = [s.seg for s in steps if s.len]
    for term in ("磷酸奥司他韦", "神经氨酸酶", "特异性", "抑制剂", "流感病毒", "宿主细胞"):
        assert term in hits
    assert "奥司他韦" not in hits  # inside the longer hit at step 1: no second hit from within it
    first = steps[0]
    assert (first.Lh, first.Lp, first.a, first.seg, first.len) == (2, 6, "磷", "磷酸奥司他韦", 6)


def test_formula_by_hand(steps):
    p = Params.of(None)
    for s in steps:
        want_cost = p.lambda_h * (s.Lh / 6) ** p.alpha_h + p.lambda_p * (s.Lp / 8) ** p.alpha_p
        assert s.len_cost == pytest.approx(want_cost)
        want_delta = 0.0 if not s.len or s.dup else p.lambda_lex * max(0.0, s.sim - p.tau) * s.idf
        assert s.delta == pytest.approx(want_delta)
        assert s.R == pytest.approx(p.base + p.eta1 * s.chi + p.eta2 * s.delta - s.len_cost + p.rho * s.P)
    # the seed's worked len_cost example: lambda_p * 6/8 for L_p = 6
    assert steps[0].len_cost == pytest.approx(0.08 * 2 / 6 + 0.10 * 6 / 8)


def test_punctuation_never_hits_and_repeats_are_deduplicated(steps):
    assert all(s.len == 0 for s in steps if s.a in "，。")
    repeated = [s for s in steps if s.seg == "神经氨酸酶"]
    assert len(repeated) == 2 and repeated[0].delta > 0 and repeated[1].dup and repeated[1].delta == 0
    assert sum(s.P for s in steps) == 4


def test_every_parameter_comes_from_the_state(steps):
    s = ControlState({("param", "Op", "flexattn", "lambda_lex"): 0.6, ("param", "Op", "flexattn", "repeat"): 0.5,
                      ("param", "Gate", "bm25", "tau"): 0.5, ("index", "idf", "神经氨酸酶"): 0.05})
    new = Scorer(s).score(Q, T)
    i = next(k for k, x in enumerate(steps) if x.seg == "磷酸奥司他韦")
    assert new[i].delta == pytest.approx(steps[i].delta * (0.6 / 0.3) * (1.0 - 0.5) / (1.0 - 0.75))
    dup = [x for x in new if x.seg == "神经氨酸酶"][1]
    assert dup.delta > 0 and dup.idf == pytest.approx(0.95, abs=1e-3)
    assert {a.name for a in Params.__attrs_attrs__} == set(PARAMS) | {"tau"}


def test_other_questions_work_too():
    q, t = "什么是阿司匹林？", "阿司匹林是一种环氧合酶抑制剂，可以抑制血小板聚集。"
    st = Scorer().score(q, t)
    assert [s.seg for s in st if s.len][:3] == ["阿司匹林", "是一种", "环氧合酶"]
    assert totals(st)["ler_total"] > 0
    # a question about 作用 that the answer never mentions stays below tau: the gate, not the catalog, decides
    assert totals(Scorer().score("阿司匹林有什么作用？", t))["ler_total"] == 0


def test_off_topic_stuffing_earns_no_lexical_reward():
    st = Scorer().score(Q, "神经氨酸酶流感病毒宿主细胞特异性抑制剂")  # never mentions the question's topic
    assert all(s.delta == 0 for s in st) and any(s.len for s in st)


def test_jaccard_gate_and_bad_input():
    st = Scorer(gate="jaccard").score(Q, T)
    assert all(0.0 <= s.sim <= 1.0 for s in st)
    with pytest.raises(ValueError, match="gate"):
        Scorer(gate="cosine")
    with pytest.raises(ValueError, match="non-empty"):
        Scorer().score(Q, "")
    with pytest.raises(ValueError, match="tau"):
        Params.of(ControlState({("param", "Gate", "bm25", "tau"): 1.5}))
