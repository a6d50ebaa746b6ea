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
