import pytest

from mdq_flexattn.reward import PARAMS, Params, Scorer, totals
from mdqcore.model.state import ControlState

Q = '请问什么是"奥司他韦"？'
T = ("磷酸奥司他韦是一种作用于神经氨酸酶的特异性抑制剂，其抑制神经氨酸酶的活性，"
     "可以抑制成熟的流感病毒脱离宿主细胞，从而抑制流感病毒在人体内的传播。")


def op(**kw: float) -> ControlState:
    return ControlState({("param", "Op", "flexattn", k): v for k, v in kw.items()})


@pytest.fixture(scope="module")
def steps():
    return Scorer().score(Q, T)


def test_reference_scenario_hits(steps):
    hits = [s.seg for s in steps if s.len]
    for term in ("磷酸奥司他韦", "神经氨酸酶", "特异性", "抑制剂", "流感病毒", "宿主细胞"):
        assert term in hits
        assert next(s for s in steps if s.seg == term).delta > 0
    assert "奥司他韦" not in hits  # inside the longer hit at step 1: no second hit from within it
    first = steps[0]
    assert (first.Lh, first.a, first.seg, first.len) == (2, "磷", "磷酸奥司他韦", 6)


def test_formula_by_hand(steps):
    p = Params.of(None)
    sc = Scorer()
    for s in steps:
        want_cost = p.lambda_h * (s.Lh / 6) ** p.alpha_h + p.lambda_p * (s.Lp / 8) ** p.alpha_p
        assert s.len_cost == pytest.approx(want_cost)
        g = p.general_weight if s.len and sc.general(sc.matcher.lookup(s.seg)) else 1.0
        want_delta = 0.0 if not s.len or s.dup else p.lambda_lex * max(0.0, s.sim - p.tau) * s.idf * g
        assert s.delta == pytest.approx(want_delta)
        assert s.R == pytest.approx(p.base + p.eta1 * s.chi + p.eta2 * s.delta - s.len_cost + p.rho * s.P)


def test_the_original_lengths_are_one_package_away():
    # U without 7 and L_p up to 6: the worked len_cost example lambda_p * 6/8 for L_p = 6 comes back
    seed = ControlState({("param", "Op", "flexattn", "U7"): 0.0, ("param", "Len", "table", "Lp_max"): 6})
    sc = Scorer(seed)
    assert sc.U == (2, 3, 4, 5, 6, 8) and sc.reach == (2, 3, 4, 5, 6)
    first = sc.score(Q, T)[0]
    assert first.Lp == 6 and first.len_cost == pytest.approx(0.08 * 2 / 6 + 0.10 * 6 / 8)
    assert sc.unreachable[7] > 0 and sc.unreachable[8] > 0  # reported with counts, never silent
    assert Scorer().unreachable == {}  # the defaults reach every catalog term


def test_a_7_character_term_hits_by_default_and_not_without_U7():
    q, t = "做计算机断层扫描前要准备什么？", "计算机断层扫描前需去除金属物品。"
    assert Scorer().score(q, t)[0].seg == "计算机断层扫描"
    assert Scorer(op(U7=0.0)).score(q, t)[0].seg != "计算机断层扫描"
    with pytest.raises(ValueError, match="U"):
        Scorer(op(**{f"U{n}": 0.0 for n in range(2, 9)}))


def test_general_words_earn_nothing_unless_a_package_says_so(steps):
    general = [s for s in steps if s.seg in ("是一种", "可以", "从而")]
    assert general and all(s.delta == 0 for s in general)
    weighted = Scorer(op(general_weight=0.5)).score(Q, T)
    assert next(s for s in weighted if s.seg == "是一种").delta > 0


def test_punctuation_never_hits_and_repeats_are_deduplicated(steps):
    assert all(s.len == 0 for s in steps if s.a in "，。")
    repeated = [s for s in steps if s.seg == "神经氨酸酶"]
    assert len(repeated) == 2 and repeated[0].delta > 0 and repeated[1].dup and repeated[1].delta == 0
    assert sum(s.P for s in steps) == 4


def test_every_parameter_comes_from_the_state(steps):
    s = ControlState({("param", "Op", "flexattn", "lambda_lex"): 0.6, ("param", "Op", "flexattn", "repeat"): 0.5,
                      ("param", "Gate", "topic", "tau"): 0.5, ("index", "idf", "神经氨酸酶"): 0.05})
    new = Scorer(s).score(Q, T)
    i = next(k for k, x in enumerate(steps) if x.seg == "磷酸奥司他韦")
    assert steps[i].sim == new[i].sim == 1.0
    assert new[i].delta == pytest.approx(steps[i].delta * (0.6 / 0.3) * (1.0 - 0.5) / (1.0 - 0.75))
    dup = [x for x in new if x.seg == "神经氨酸酶"][1]
    assert dup.delta > 0 and dup.idf == pytest.approx(steps[12].idf + 0.05, abs=1e-3)
    assert {a.name for a in Params.__attrs_attrs__} == set(PARAMS) | {"tau"}


def test_summary_agrees_with_the_steps():
    sc = Scorer()
    for q, t in ((Q, T), ("拉肚子吃什么药？", "腹泻时可口服蒙脱石散，ＯＲＳ补液盐预防脱水。高血压患者应低盐饮食。")):
        st = sc.score(q, t)
        summ = sc.summary(q, t)
        for k, v in totals(st).items():
            assert summ.totals[k] == pytest.approx(v, abs=1e-9), k
        assert [(h.step, h.seg, h.sim, h.delta) for h in summ.hits] == \
            [(h.step, h.seg, h.sim, h.delta) for h in sc.hit_scores(st)]


def test_off_topic_after_an_on_topic_prefix_earns_nothing():
    q = "为什么奥司他韦能治疗流感？"
    t = "奥司他韦抑制流感病毒的神经氨酸酶，使新生病毒无法从宿主细胞释放。高血压患者应长期服用降压药并低盐饮食。"
    st = Scorer().score(q, t)
    tail = [s for s in st if s.len and s.step > t.index("。") + 1]
    assert tail and all(s.sim < 0.1 and s.delta == 0 for s in tail)
    assert any(s.delta > 0 for s in st if s.step <= t.index("。"))


def test_off_topic_stuffing_earns_no_lexical_reward():
    st = Scorer().score(Q, "股票期货的行情走势。高血压糖尿病冠心病")  # never mentions the question's topic
    assert all(s.delta == 0 for s in st) and any(s.len for s in st)


def test_other_gates_and_bad_input():
    for gate in ("bm25", "jaccard"):
        st = Scorer(gate=gate).score(Q, T)
        assert all(0.0 <= s.sim <= 1.0 for s in st)
        assert st[0].sim == 1.0 and st[0].delta > 0  # the hit holds the question's topic
    with pytest.raises(ValueError, match="gate"):
        Scorer(gate="cosine")
    with pytest.raises(ValueError, match="non-empty"):
        Scorer().score(Q, "")
    with pytest.raises(ValueError, match="tau"):
        Params.of(ControlState({("param", "Gate", "topic", "tau"): 1.5}), "topic")
    # an empty question is documented to make every hit irrelevant: zero lexical reward, no error
    assert totals(Scorer().score("", T))["ler_total"] == 0.0


def test_the_fast_steps_equal_the_reference_loop():
    # the table policy's column-built steps against the per-character loop, field by field and
    # float for float (the step log's replay compares them): several states, with and without a reference
    texts = [(Q, T, None), (Q, T, T[:40] + "错" + T[41:60]),
             ("拉肚子吃什么药？", "腹泻时可口服蒙脱石散，ＯＲＳ补液盐预防脱水。。高血压患者应低盐饮食。", None),
             ("", "，，奥司他韦。", "，奥")]
    states = [None, op(general_weight=0.5, repeat=0.3, base=0.01, rho=0.2),
              ControlState({("param", "Op", "flexattn", "U7"): 0.0, ("param", "Len", "table", "Lp_max"): 6,
                            ("index", "idf", "神经氨酸酶"): 0.05})]
    for state in states:
        sc = Scorer(state)
        for q, t, ref in texts:
            assert list(sc.steps(q, t, ref)) == list(sc.reference_steps(q, t, ref))


def test_a_history_policy_scores_through_the_reference_loop():
    # a policy other than the table (a learned one decides from the history) takes the
    # per-character loop; summary then sums its steps
    class Wide:
        lh_set, lp_max = (2, 3, 4, 6), 8

        def decide(self, history: str, a: str) -> tuple[int, int]:
            return (6 if history.endswith("酸") else 2), 8

    sc = Scorer(policy=Wide())
    st = sc.score(Q, T)
    assert st == list(sc.reference_steps(Q, T)) and {s.Lh for s in st} == {2, 6}
    assert sc.summary(Q, T).totals == totals(st)
