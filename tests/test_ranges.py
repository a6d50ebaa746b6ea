"""SemVer ranges: npm's grammar and prerelease rule, checked against a brute-force oracle (issue #3)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings, strategies as st

from mdqcore.versions.ranges import Range, RangeError, max_satisfying, satisfies, version_key

# (range, version, expected) — cases from npm node-semver's own fixtures
CASES = [
    ("1.0.0 - 2.0.0", "1.2.3", True), ("1.0.0 - 2.0.0", "2.0.1", False), ("1.2.3 - 2.3", "2.3.9", True),
    ("1.2.3 - 2", "2.9.9", True), ("1.2 - 2.3.4", "1.2.0", True), ("1.2.3 - 2.3.4", "2.3.5", False),
    ("^1.2.3", "1.8.1", True), ("^1.2.3", "2.0.0", False), ("^1.2.3", "1.2.2", False),
    ("^0.2.3", "0.2.9", True), ("^0.2.3", "0.3.0", False), ("^0.0.3", "0.0.3", True), ("^0.0.3", "0.0.4", False),
    ("^0.0", "0.0.9", True), ("^0.0", "0.1.0", False), ("^0.x", "0.9.0", True), ("^1.x", "1.9.9", True),
    ("~1.2", "1.2.9", True), ("~1.2", "1.3.0", False), ("~1", "1.9.0", True), ("~1.2.3", "1.2.4", True),
    ("~1.2.3", "1.3.0", False), ("~0.2", "0.2.5", True),
    ("1.x", "1.9.9", True), ("1.x", "2.0.0", False), ("1.2.*", "1.2.7", True), ("1.2.*", "1.3.0", False),
    ("*", "9.9.9", True), ("", "0.0.1", True), ("1", "1.5.0", True), ("1.2", "1.2.5", True), ("1.2", "1.3.0", False),
    (">=1.2.0 <2.0.0", "1.9.9", True), (">=1.2.0 <2.0.0", "2.0.0", False), (">=1.2.0, <2.0.0", "1.2.0", True),
    (">1", "2.0.0", True), (">1", "1.9.9", False), (">1.2", "1.3.0", True), (">1.2", "1.2.9", False),
    ("<=1.2", "1.2.9", True), ("<=1.2", "1.3.0", False), ("<1.2", "1.1.9", True), ("<1.2", "1.2.0", False),
    ("=1.2.3", "1.2.3", True), ("1.2.3", "1.2.4", False), (">= 1.2.3", "1.2.3", True),
    ("^1.2 || ~0.5.1", "0.5.9", True), ("^1.2 || ~0.5.1", "0.6.0", False), ("<1 || >=3", "3.1.0", True),
    # prereleases: admitted only if the set names the same MAJOR.MINOR.PATCH with a tag
    ("^1.2.3", "1.3.0-beta", False), ("^1.2.3-alpha", "1.2.3-beta", True), ("^1.2.3-alpha", "1.2.4-beta", False),
    (">=1.3.0-beta.1 <2", "1.3.0-beta.2", True), (">=1.3.0-beta.1 <2", "1.3.0-alpha", False),
    ("~1.2.3-0", "1.2.3-alpha", True), ("*", "1.0.0-rc.1", False), ("<2.0.0", "2.0.0-rc.1", False),
    ("^1.2.3", "2.0.0-0", False), ("1.2.3-beta.2 - 1.2.3", "1.2.3-beta.10", True),
]


@pytest.mark.parametrize("rng, version, expected", CASES)
def test_npm_cases(rng, version, expected):
    assert satisfies(version, rng) is expected


@pytest.mark.parametrize("bad", ["^^1", ">=1.2.3.4", "~>1", "1.2.3 -", ">=", "a.b", "1.2.3-beta - ", "1.x-beta",
                                 "=>1.0.0", "^1.2.3 ^", "01.2.3"])
def test_malformed_ranges_say_what(bad):
    with pytest.raises(RangeError) as e:
        Range.parse(bad)
    assert repr(bad) in str(e.value) and "expected" in str(e.value) or "operators are" in str(e.value)


def test_range_error_is_a_value_error():
    assert issubclass(RangeError, ValueError)


def test_max_satisfying_and_normalized():
    assert max_satisfying(["1.0.0", "1.4.0", "2.0.0", "1.5.0-rc.1"], "^1") == "1.4.0"
    assert max_satisfying(["0.1.0"], "^1") is None
    assert Range.parse("^0.2.3").normalized() == ">=0.2.3 <0.3.0-0"


def test_version_key_orders_by_precedence():
    order = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11",
             "1.0.0-rc.1", "1.0.0", "1.0.1", "1.1.0", "2.0.0"]  # the SemVer 2.0 spec's own example
    assert sorted(order[::-1], key=version_key) == order


# ---- property tests against an oracle that never desugars: it compares tuples directly ----
_v = st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 3))


def _oracle(kind: str, base: tuple, parts: int, v: tuple) -> bool:
    b = base[:parts]
    if kind == "caret":
        if v < base[:parts] + (0,) * (3 - parts):
            return False
        # the left-most non-zero part among those given (or the last given) may not change
        fixed = next((i for i, x in enumerate(b) if x != 0), parts - 1)
        fixed = min(fixed, parts - 1) if parts < 3 or any(b) else 2
        return v[:fixed + 1] == b[:fixed + 1]
    if kind == "tilde":
        lo = base[:parts] + (0,) * (3 - parts)
        return v >= lo and v[: min(parts, 2)] == b[: min(parts, 2)]
    if kind == "x":
        return v[:parts] == b
    raise AssertionError(kind)


def _text(kind: str, base: tuple, parts: int) -> str:
    core = ".".join(map(str, base[:parts]))
    return {"caret": f"^{core}", "tilde": f"~{core}", "x": core + ".x" * (3 - parts) if parts < 3 else core}[kind]


@settings(max_examples=400, deadline=None)
@given(kind=st.sampled_from(["caret", "tilde", "x"]), base=_v, parts=st.integers(1, 3), v=_v)
def test_sugar_matches_oracle(kind, base, parts, v):
    if kind == "caret" and parts == 3 and base == (0, 0, 0):
        return  # ^0.0.0 is a degenerate npm special case (only 0.0.0) covered by the oracle below
    assert satisfies("%d.%d.%d" % v, _text(kind, base, parts)) is _oracle(kind, base, parts, v)


@settings(max_examples=300, deadline=None)
@given(lo=_v, hi=_v, v=_v, ops=st.tuples(st.sampled_from([">", ">="]), st.sampled_from(["<", "<="])))
def test_comparators_and_hyphen_match_oracle(lo, hi, v, ops):
    s = lambda t: "%d.%d.%d" % t  # noqa: E731
    low_ok = v > lo if ops[0] == ">" else v >= lo
    high_ok = v < hi if ops[1] == "<" else v <= hi
    assert satisfies(s(v), f"{ops[0]}{s(lo)} {ops[1]}{s(hi)}") is (low_ok and high_ok)
    assert satisfies(s(v), f"{ops[0]}{s(lo)}, {ops[1]}{s(hi)}") is (low_ok and high_ok)
    assert satisfies(s(v), f"{s(lo)} - {s(hi)}") is (lo <= v <= hi)
    assert satisfies(s(v), f"{s(lo)} || {s(hi)}") is (v in (lo, hi))


def test_caret_zero_zero_zero():
    assert [satisfies(v, "^0.0.0") for v in ("0.0.0", "0.0.1")] == [True, False]


def test_every_small_version_orders_consistently():
    vs = ["%d.%d.%d" % t for t in itertools.product(range(3), repeat=3)]
    for a, b in itertools.combinations(vs, 2):
        assert (version_key(a) < version_key(b)) is (tuple(map(int, a.split("."))) < tuple(map(int, b.split("."))))
