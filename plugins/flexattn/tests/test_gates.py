import pytest

from mdq_flexattn.engine import default_engine
from mdq_flexattn.gates import SemanticGate, bm25_lite, char_ngrams, check_tau, content, jaccard
from mdqcore import Idx, MdqPackage
from mdqcore.model.state import ControlState

Q = '请问什么是"奥司他韦"？'


def test_content_drops_function_words_and_punctuation():
    assert content(Q).split() == ["奥司他韦"]
    assert char_ngrams("奥司他韦，抑制") == ["奥司", "司他", "他韦", "抑制"]


def test_jaccard_by_hand():
    # question content bigrams {奥司, 司他, 他韦}; context bigrams {磷酸, 酸奥, 奥司, 司他, 他韦}
    assert jaccard(Q, "磷酸奥司他韦") == pytest.approx(3 / 5)
    assert jaccard(Q, "流感病毒") == 0.0


def test_bm25_lite_is_coverage_weighted_by_idf():
    idf = {"奥司": 1.0, "司他": 1.0, "他韦": 2.0}.get
    assert bm25_lite(Q, "奥司他韦", lambda g: idf(g, 0.0)) == pytest.approx(1.0)
    assert bm25_lite(Q, "奥司", lambda g: idf(g, 0.0)) == pytest.approx(1 / 4)
    assert bm25_lite(Q, "流感病毒", lambda g: idf(g, 0.0)) == 0.0


def test_tau_from_state_and_bad_tau():
    g = SemanticGate("jaccard", default_engine)
    assert g.tau(None) == 0.75
    s = ControlState({("param", "Gate", "jaccard", "tau"): 0.5})
    assert g.passes(Q, "磷酸奥司他韦", s) and not g.passes(Q, "磷酸奥司他韦")
    for bad in (-0.1, 1.5, float("nan"), True):
        with pytest.raises(ValueError, match="tau"):
            check_tau(bad)


def test_as_package_test_refuses_off_domain_segments():
    g = SemanticGate("bm25", default_engine)
    ok = MdqPackage(name="p", semver="1.0.0", atoms=[Idx(feature="idf", seg="神经氨酸酶", delta=0.1),
                                                     Idx(feature="idf", seg="流感病毒株", delta=0.1)])
    assert not g(ok, None).ok  # 流感病毒株 scores 0.72 against 流感病毒: below the default tau
    assert g(ok, ControlState({("param", "Gate", "bm25", "tau"): 0.6})).ok
    bad = MdqPackage(name="p", semver="1.0.0", atoms=[Idx(feature="idf", seg="股票期货", delta=0.1)])
    r = g(bad, None)
    assert not r.ok and "$.atoms[0].seg" in r.reason


def test_topic_context_carries_from_an_on_topic_sentence_without_terms():
    from mdq_flexattn.reward import Scorer

    # the last sentence names the question's subject but holds no catalog term; the one before
    # it goes on in the domain, so it is carried (one sentence: carry), the first is two away
    q = "为什么做完手术要早点下床活动？"
    t = "卧床会使下肢静脉血流缓慢。容易形成深静脉血栓。所以要早点下床走走。"
    ctx = Scorer().context(q, t)
    assert ctx.ctx[:3] == [pytest.approx(0.85 * 0.85), pytest.approx(0.85), 1.0]


def test_topic_sim_falls_for_an_off_topic_sentence_after_an_on_topic_one():
    from mdq_flexattn.reward import Scorer

    q = "什么是奥司他韦？"
    t = "奥司他韦是神经氨酸酶抑制剂。阿莫西林是青霉素类抗生素。"
    sims = {h.seg: h.sim for h in Scorer().summary(q, t).hits}
    assert sims["神经氨酸酶"] == 1.0 and sims["阿莫西林"] == 0.0  # another drug: a rival subject


def test_a_question_outside_the_domain_earns_nothing_for_domain_words_in_its_answer():
    from mdq_flexattn.reward import Scorer

    # issue #17: a non-medical answer that names its own subject (泡菜) and uses domain words
    # (乳酸菌, 细菌) was on topic by that mention; no catalog term is built from 泡菜, so the
    # question is off the domain and every hit has sim 0
    s = Scorer()
    q = "为什么泡菜能放很久？"
    a = "泡菜里盐分高，乳酸菌发酵产生大量乳酸，酸性环境抑制了腐败细菌和霉菌的生长。"
    assert not s.profile(q).in_domain
    summ = s.summary(q, a)
    assert summ.hits and all(h.sim == 0.0 for h in summ.hits) and summ.totals["ler_total"] == 0.0
    # a lay question without a catalog term is in the domain through a word terms are built from
    q2 = "喝酒以后为什么不能吃头孢？"
    assert s.profile(q2).in_domain and "头孢" in s.profile(q2).words
    a2 = "头孢类抗生素抑制乙醛脱氢酶，乙醛蓄积，引起双硫仑样反应，出现心悸和血压下降。"
    assert s.summary(q2, a2).totals["ler_total"] > 0
    # a frequent term with a domain tag (手术: a procedure, too common to earn) still names the domain
    assert s.profile("手术前为什么不能吃东西？").in_domain and not s.profile("手术前为什么不能吃东西？").terms


def test_unknown_latin_words_stay_whole_in_the_anchors():
    from mdq_flexattn.reward import Scorer

    words = Scorer().profile("如何学好Python编程？").words
    assert "Python" in words and "th" not in words


def test_the_topic_sims_of_all_hits_equal_sim_hit_by_hit():
    from mdq_flexattn.reward import Scorer

    s = Scorer()
    q = "为什么奥司他韦能治疗流感？"
    t = "奥司他韦抑制流感病毒的神经氨酸酶。它使新病毒无法从宿主细胞释放。高血压患者应低盐饮食。"
    hits = s._scan(t)
    ctx = s.context(q, t, hits)
    assert ctx.sims(hits) == [ctx.sim(a, a + len(f), term) for a, f, term in hits]
    assert any(x == 0.0 for x in ctx.sims(hits)) and any(x == 1.0 for x in ctx.sims(hits))
