from mdq_flexattn.kpis import nearmisses
from mdq_flexattn.nearmiss import NearMissIndex, edit_position, within_one_edit


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
    idx = NearMissIndex(["胰岛素", "胰高素"])  # 胰导素 is one substitution from both
    assert idx.near("胰导素") is None
    # 活动后 is 活动 + 后, not a typo of 活动桥: a half that is a word makes it ordinary text
    words = NearMissIndex(["活动桥"], count=lambda s: 100 if s == "活动" else 0)
    assert words.near("活动后") is None


def test_the_rarer_spelling_is_the_typo():
    counts = {"阿斯匹林": 28, "阿司匹林": 47, "反复发作": 500}.get
    idx = NearMissIndex(["阿司匹林", "反复发烧"], count=lambda s: counts(s, 0), freq=lambda s: counts(s, 0))
    assert idx.near("阿斯匹林") == "阿司匹林" and idx.near("反复发作") is None


def test_real_terms_are_not_flagged():
    good = "磷酸奥司他韦是一种作用于神经氨酸酶的特异性抑制剂，可以抑制成熟的流感病毒脱离宿主细胞。"
    assert nearmisses(None, good) == []
    # 7- and 8-character catalog terms are matched whatever U is, so they are never flagged
    assert nearmisses(None, "计算机断层扫描和慢性阻塞性肺疾病") == []
    found = nearmisses(None, "奥司他韦作用于神经酸酶，二甲双呱降糖，胰导素注射。")
    assert [(m[1], m[2]) for m in found] == [("神经酸酶", "神经氨酸酶"), ("二甲双呱", "二甲双胍"), ("胰导素注射", "胰岛素注射")]
