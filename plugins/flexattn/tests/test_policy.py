from mdq_flexattn.policy import TablePolicy, snap
from mdqcore.model.state import ControlState


def test_table_widens_on_terms_and_tightens_on_function_words_and_punctuation():
    p = TablePolicy(None, {"磷": 6, "神": 5, "抑": 3})
    assert p.decide("", "磷") == (2, 6)
    assert p.decide("", "神") == (2, 5)
    assert p.decide("", "抑") == (2, 3)
    assert p.decide("", "的") == (3, 3)
    assert p.decide("", "，") == (4, 3)  # the design's step 7


def test_len_atoms_change_the_table_live():
    s = ControlState({("param", "Len", "table", "Lp_max"): 4, ("param", "Len", "table", "Lh_punct"): 6})
    p = TablePolicy(s, {"磷": 6})
    assert p.decide("", "磷") == (2, 4) and p.decide("", "。") == (6, 3)


def test_snap():
    assert snap(5, (2, 3, 4, 6)) == 6 and snap(9, (3, 4)) == 4 and snap(2.5, (2, 3)) == 3
