from mdq_flexattn.kpis import nearmisses
from mdq_flexattn.nearmiss import NearMissIndex, edit_position, variant_pairs, within_one_edit


def test_edit_distance_one():
    assert within_one_edit("神经酸酶", "神经氨酸酶") and within_one_edit("二甲双呱", "二甲双胍")
    assert within_one_edit("阿司匹林", "阿司匹林林") and not within_one_edit("神经酶", "神经氨酸酶")
    assert edit_position("神经酸酶", "神经氨酸酶") == 2 and edit_position("二甲双呱", "二甲双胍") == 3


def test_index_finds_missing_extra_and_wrong_characters():
    idx = NearMissIndex(["神经氨酸酶", "阿司匹林", "胰岛素", "头孢哌酮钠"])
    assert idx.near("神经酸酶") == "神经氨酸酶"
    assert idx.near("阿斯匹林") == "阿司匹林"
    assert idx.near("胰导素") == "胰岛素"  # 3-character terms: one substitution, unambiguous
    assert idx.near("阿司匹林") is None and idx.near("流感病毒") is None
    assert idx.near("头孢哌酮") is None  # a character dropped at an end is a shorter word, not a typo


def test_three_character_near_misses_only_where_unambiguous():
    idx = NearMissIndex(["胰岛素", "胰捣素"])  # 胰导素 is one sound-alike substitution from both
    assert idx.near("胰导素") is None
    assert NearMissIndex(["胰岛素", "胰高素"]).near("胰导素") == "胰岛素"  # 导 sounds like 岛, not like 高
    # 活动后 is 活动 + 后, not a typo of 活动桥: a half that is a word makes it ordinary text
    words = NearMissIndex(["活动桥"], count=lambda s: 100 if s == "活动" else 0)
    assert words.near("活动后") is None


def test_a_word_is_spelled_right_and_the_rarer_spelling_is_the_typo():
    counts = {"阿斯匹林": 28, "阿司匹林": 47, "综合征": 435, "综合症": 78, "瑞": 50, "氏": 50, "易激": 5, "肠": 900}
    count = lambda s: counts.get(s, 0)  # noqa: E731
    segment = lambda s: [w for w in ("瑞", "氏", "肠", "易激", "综合征", "综合症") if w in s]  # noqa: E731
    idx = NearMissIndex(["阿司匹林", "瑞氏综合症", "肠易激综合征"], count=count, segment=segment)
    assert idx.near("阿斯匹林") is None  # a dictionary word, however rare: a variant, not a typo (issue #17)
    assert idx.near("瑞氏综合征") is None  # the catalog holds the rarer spelling: the text's is the common one
    assert idx.near("肠易激综合症") == "肠易激综合征"  # the rarer spelling of the word is the typo


def test_a_slip_sounds_alike_and_changes_chinese_characters_only():
    idx = NearMissIndex(["解热止痛", "血栓素B2", "内出血", "胆固醇片"])
    assert idx.near("解痉止痛") is None  # 痉 (jing) does not sound like 热 (re): another word, not a slip
    assert idx.near("血栓素A2") is None  # a letter names another thing
    assert idx.near("胆固纯片") == "胆固醇片"  # 纯 and 醇 are both chun
    assert idx.near("内的出血") is None and idx.near("内被血") is None  # a function character is grammar


def test_the_lexicon_spelling_a_slot_both_ways_makes_a_variant():
    forms = ["紧张性头痛", "迟发性过敏", "迟发型过敏", "先天性心病", "先天型心病", "急进性肾炎", "急进型肾炎"]
    assert ("型", "性") in variant_pairs(forms)
    assert NearMissIndex(forms).near("紧张型头痛") is None
    assert NearMissIndex(forms[:1]).near("紧张型头痛") == "紧张性头痛"


def test_a_near_miss_may_hold_a_whole_hit_but_then_only_a_substitution():
    idx = NearMissIndex(["促甲状腺激素", "肾动脉硬化", "甲状腺", "动脉硬化"])
    text = "复查促甲状腺激数，肾小动脉硬化。"
    covered = [(4, 7), (11, 15)]  # the hits 甲状腺 and 动脉硬化
    assert idx.find(text, covered) == [(2, "促甲状腺激数", "促甲状腺激素")]


def test_real_terms_are_not_flagged():
    good = "磷酸奥司他韦是一种作用于神经氨酸酶的特异性抑制剂，可以抑制成熟的流感病毒脱离宿主细胞。"
    assert nearmisses(None, good) == []
    # 7- and 8-character catalog terms are matched whatever U is, so they are never flagged
    assert nearmisses(None, "计算机断层扫描和慢性阻塞性肺疾病") == []
    found = nearmisses(None, "奥司他韦作用于神经酸酶，二甲双呱降糖，胰导素注射。")
    assert [(m[1], m[2]) for m in found] == [("神经酸酶", "神经氨酸酶"), ("二甲双呱", "二甲双胍"), ("胰导素注射", "胰岛素注射")]
