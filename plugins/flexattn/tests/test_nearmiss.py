from mdq_flexattn.kpis import nearmisses
from mdq_flexattn.nearmiss import NearMissIndex, within_one_edit


def test_edit_distance_one():
    assert within_one_edit("神经酸酶", "神经氨酸酶") and within_one_edit("二甲双呱", "二甲双胍")
    assert within_one_edit("阿司匹林", "阿司匹林林") and not within_one_edit("神经酶", "神经氨酸酶")


def test_index_finds_missing_extra_and_wrong_characters():
    idx = NearMissIndex(["神经氨酸酶", "阿司匹林"])
    assert idx.near("神经酸酶") == "神经氨酸酶"
    assert idx.near("阿斯匹林") == "阿司匹林"
    assert idx.near("阿司匹林") is None and idx.near("流感病毒") is None


def test_real_terms_are_not_flagged():
    good = "磷酸奥司他韦是一种作用于神经氨酸酶的特异性抑制剂，可以抑制成熟的流感病毒脱离宿主细胞。"
    assert nearmisses(None, good) == []
    assert [m[1] for m in nearmisses(None, "奥司他韦作用于神经酸酶，二甲双呱降糖。")] == ["神经酸酶", "二甲双呱"]
