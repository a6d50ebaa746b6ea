import ahocorasick
import pytest

from mdq_flexattn.catalog import Catalog, Entry
from mdq_flexattn.matcher import Matcher, MatcherCache
from mdqcore.model.state import ControlState

TEXT = "磷酸奥司他韦是一种作用于神经氨酸酶的特异性抑制剂"


@pytest.fixture(scope="module")
def m():
    return Matcher(Catalog([Entry(t) for t in ("磷酸奥司他韦", "奥司他韦", "磷酸", "神经氨酸酶", "特异性", "抑制剂", "抑制")]))


def test_longest_hit_with_cap(m):
    assert m.longest_suffix_hit_with_cap(TEXT, 0, cap=6).form == "磷酸奥司他韦"
    assert m.longest_suffix_hit_with_cap(TEXT, 0, cap=5).form == "磷酸"  # the 6-long term is over the cap
    assert m.longest_suffix_hit_with_cap(TEXT, 0, U=(2, 3), cap=8).form == "磷酸"  # 6 not in U
    assert m.longest_suffix_hit_with_cap(TEXT, 2, cap=6).form == "奥司他韦"
    assert m.longest_suffix_hit_with_cap(TEXT, 1, cap=6) is None
    assert m.longest_suffix_hit_with_cap("抑制剂", 0, cap=3).form == "抑制剂"


def test_single_characters_and_punctuation_never_hit(m):
    assert m.longest_suffix_hit_with_cap("，抑制剂", 0) is None
    with pytest.raises(ValueError, match="cap"):
        m.longest_suffix_hit_with_cap(TEXT, 0, cap=1)
    with pytest.raises(ValueError, match=">= 2"):
        m.longest_suffix_hit_with_cap(TEXT, 0, U=(1, 2))
    with pytest.raises(IndexError):
        m.longest_suffix_hit_with_cap(TEXT, len(TEXT))


def test_scan_is_leftmost_longest_like_pyahocorasick(m):
    hits = m.scan(TEXT)
    assert [t for _s, t in hits] == ["磷酸奥司他韦", "神经氨酸酶", "特异性", "抑制剂"]
    assert all(TEXT[s:s + len(t)] == t for s, t in hits)
    raw = ahocorasick.Automaton()
    for t in m.catalog.surface:
        raw.add_word(t, t)
    raw.make_automaton()
    assert [v for _e, v in raw.iter_long(TEXT)] == [t for _s, t in hits]


def test_promoted_term_atoms_extend_the_matcher_weights_do_not_rebuild():
    cache = MatcherCache(Catalog([Entry("流感病毒")]))
    base = cache.for_state(ControlState({("index", "idf", "流感病毒"): 0.1}))
    assert base is cache._base  # a weight change needs no rebuild
    s = ControlState({("index", "term", "宿主细胞"): 1.0})
    m2 = cache.for_state(s)
    assert m2.lookup("宿主细胞") == "宿主细胞" and base.lookup("宿主细胞") is None
    assert cache.for_state(ControlState(dict(s.data))) is m2  # same term set: the same automaton


def test_reach_shares_the_full_automaton_when_every_length_is_reachable(m):
    # one automaton in the CPU cache, not two copies of the same forms (issue #17, scoring speed)
    assert m.reach((2, 3, 4, 5, 6, 7, 8)) is m._auto
    short = m.reach((2, 3))
    assert short is not m._auto and [v for _e, (_n, v) in short.iter_long(TEXT)] == ["磷酸", "特异性", "抑制剂"]
