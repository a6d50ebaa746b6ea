"""ControlState: atoms, semirings, clipping, priorities, and clear errors (issue #4)."""

from __future__ import annotations

import pytest

from mdqcore import Gate, Idx, Len, Op, PackageError
from mdqcore.model.state import ControlState

BASE = ControlState({
    ("semiring", "idf"): "sum", ("semiring", "alias"): "max", ("fweight", "idf"): 1.0, ("fweight", "alias"): 0.5,
    ("bound", "Op", "L", "lambda_lex"): [0.0, 1.0], ("param", "Op", "L", "lambda_lex"): 0.3,
    ("bound", "Op", "T", "blacklist"): [0.0, 1.0], ("param", "Op", "T", "blacklist"): True,
    ("bound", "Len", "", "Lp_max"): [3.0, 8.0], ("param", "Len", "", "Lp_max"): 6.0,
    ("bound", "Gate", "budget", "ceiling"): [0.0, 10.0], ("param", "Gate", "budget", "ceiling"): 1.0,
})


def test_sum_semiring_adds_and_max_semiring_keeps_the_extremum():
    s, _ = BASE.apply([Idx("idf", "奥司他韦", delta=0.3), Idx("alias", "达菲", delta=0.4)])
    s, _ = s.apply([Idx("idf", "奥司他韦", delta=0.2), Idx("alias", "达菲", delta=0.1)])
    assert s.index("idf", "奥司他韦") == pytest.approx(0.5) and s.index("alias", "达菲") == 0.4


def test_index_functional_weights_features():
    s, _ = BASE.apply([Idx("idf", "x", delta=0.4), Idx("alias", "x", value=1.0)])
    assert s.I("x") == pytest.approx(1.0 * 0.4 + 0.5 * 1.0)


def test_identical_atoms_merge_idempotently():
    _, diff = BASE.apply([Idx("idf", "x", delta=0.1), Idx("idf", "x", delta=0.1)])
    assert diff == [(("index", "idf", "x"), None, 0.1)]


def test_values_outside_admissible_intervals_are_refused_not_clipped():
    # issue #16: an Op value of 5.0 on a parameter bounded to [0, 2] was silently stored as 2.0
    with pytest.raises(PackageError) as exc:
        BASE.apply([Op("L", "lambda_lex", delta=5.0), Len("Lp_max", value=1.0)])
    text = str(exc.value)
    assert "Op/L/lambda_lex would become 5.3, outside its admissible interval [0, 1]" in text and "@ $.atoms[0]" in text
    assert "Len//Lp_max would become 1, outside its admissible interval [3, 8]" in text and "@ $.atoms[1]" in text


def test_overflow_to_infinity_is_refused():
    # issue #16: deltas of 1e308 and 1.7e308 overflowed an index entry to inf, which the ledger stored as null
    with pytest.raises(PackageError, match="idf/x would become inf"):
        BASE.apply([Idx("idf", "x", delta=1e308), Idx("idf", "x", delta=1.7e308)])


def test_priority_order_tests_then_length_then_lexical():
    atoms = [Idx("vector", "x", delta=1.0), Op("L", "lambda_lex", delta=0.1), Len("Lp_max", delta=1), Gate("budget", "ceiling", delta=1)]
    s = ControlState({**BASE.data, ("semiring", "vector"): "max"})
    diff = s.plan(atoms)
    assert [p[1] for p, _, _ in diff] == ["Gate", "Len", "Op", "vector"]


def test_switches_take_values_not_deltas():
    s, _ = BASE.apply([Op("T", "blacklist", value=False)])
    assert s.param("Op", "T", "blacklist") is False
    with pytest.raises(PackageError, match="is a switch"):
        BASE.apply([Op("T", "blacklist", delta=1.0)])


@pytest.mark.parametrize("atoms, message, path", [
    ([Op("L", "lamda_lex", delta=0.1)], "operator 'L' has no parameter 'lamda_lex' (declared: lambda_lex)", "$.atoms[0]"),
    ([Op("Q", "x", delta=0.1)], "unknown operator 'Q'", "$.atoms[0]"),
    ([Idx("idf", "a", delta=0.1), Idx("vec", "a", delta=0.1)], "unknown index feature 'vec' (registered: alias, idf)", "$.atoms[1]"),
    ([Gate("budgett", "ceiling", value=2)], "unknown gate 'budgett'", "$.atoms[0]"),
    ([Len("Lq_max", value=4)], "length policy '(default)' has no parameter 'Lq_max'", "$.atoms[0]"),
    ([Op("L", "lambda_lex", value=0.1), Op("L", "lambda_lex", value=0.2)], "atom 0 sets it to 0.1", "$.atoms[1]"),
])
def test_unknown_or_conflicting_atoms_say_what_and_where(atoms, message, path):
    with pytest.raises(PackageError) as e:
        BASE.plan(atoms)
    assert any(message in p.message and p.path == path for p in e.value.problems), e.value


def test_apply_never_mutates_the_snapshot():
    before = dict(BASE.data)
    BASE.apply([Op("L", "lambda_lex", delta=0.1)])
    with pytest.raises(TypeError):
        BASE.data[("x",)] = 1  # type: ignore[index]
    assert dict(BASE.data) == before


def test_canonical_json_is_nested_and_sorted():
    s = ControlState({("semiring", "idf"): "sum", ("index", "idf", "b"): 0.2, ("index", "idf", "a"): 0.1})
    assert s.canonical() == '{"index":{"idf":{"a":0.1,"b":0.2}},"semiring":{"idf":"sum"}}'


def test_diff_round_trip_deletes_with_none():
    s, diff = BASE.apply([Idx("idf", "x", delta=0.1)])
    back = s.apply_diff([(p, new, old) for p, old, new in diff])
    assert back == BASE
