"""The PubGrub resolver: solutions, explanations, cohorts, cycles and depth (issue #3)."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given, settings, strategies as st

from mdqcore.versions.index import Index
from mdqcore.versions.ranges import Range
from mdqcore.versions.resolver import Requirement, ResolutionImpossible, resolve, resolve_cohorts

IDX = Index.of({
    "a": {"1.0.0": {}, "2.0.0": {"b": "^3"}, "2.1.0": {"b": "^3"}},
    "b": {"2.0.0": {}, "2.5.0": {}, "3.0.0": {}},
    "c": {"1.4.0": {"b": "^2"}},
})


def test_newest_admissible_first():
    assert resolve(IDX, ["a@*"]) == {"a": "2.1.0", "b": "3.0.0"}


def test_backtracks_to_an_older_version_when_needed():
    assert resolve(IDX, ["a@*", "c@1.4.0"]) == {"a": "1.0.0", "b": "2.5.0", "c": "1.4.0"}


def test_conflict_explanation_names_the_chain():
    with pytest.raises(ResolutionImpossible) as e:
        resolve(IDX, ["a@^2", "c@1.4.0"])
    text = str(e.value)
    assert "every version of c depends on b ^2 and a ^2 depends on b ^3, c and a ^2 are incompatible" in text
    assert "root requires a ^2" in text and "root requires c 1.4.0" in text
    assert text.rstrip().endswith("version solving failed.")


def test_runs_of_versions_are_described_as_families():
    idx = Index.of({"a": {"1.0.0": {}, "2.0.0": {"b": "^3"}, "2.1.0": {"b": "^3"}}, "b": {"3.0.0": {"c": "^9"}},
                    "c": {"1.0.0": {}}})
    with pytest.raises(ResolutionImpossible) as e:
        resolve(idx, ["a@>=2.0.0"])
    assert "no version of c matches ^9" in str(e.value)


@pytest.mark.parametrize("reqs, fragment", [
    (["zz@^1"], "root requires zz ^1, which is not in the index"),
    (["a@^9"], "no version of a matches ^9"),
    (["a@2.0.5"], "no version of a matches 2.0.5"),
])
def test_unknown_names_and_missing_versions(reqs, fragment):
    with pytest.raises(ResolutionImpossible, match=re.escape(fragment)):
        resolve(IDX, reqs)


def test_dependency_on_a_missing_package_is_explained():
    idx = Index.of({"a": {"1.0.0": {"ghost": "^1"}}})
    with pytest.raises(ResolutionImpossible, match="every version of a depends on ghost \\^1, which is not in the index"):
        resolve(idx, ["a@^1"])


def test_empty_index():
    with pytest.raises(ResolutionImpossible, match="not in the index"):
        resolve(Index.of({}), ["a@*"])
    assert resolve(Index.of({}), []) == {}


def test_cycle_of_50_resolves_when_satisfiable():
    n = 50
    idx = Index.of({f"p{i}": {"1.0.0": {f"p{(i + 1) % n}": "^1"}} for i in range(n)})
    assert len(resolve(idx, ["p0@^1"])) == n


def test_cycle_of_50_is_named_when_not():
    n = 50
    idx = Index.of({f"p{i}": {"1.0.0": {f"p{(i + 1) % n}": "^1" if i < n - 1 else "^2"}} for i in range(n)})
    with pytest.raises(ResolutionImpossible) as e:
        resolve(idx, ["p0@^1"])
    text = str(e.value)
    assert all(f"every version of p{i} depends on p{i + 1} ^1" in text for i in range(n - 1))
    assert "every version of p49 depends on p0 ^2" in text


def test_chain_of_10000_has_no_recursion_error():
    n = 10_000
    deps = {f"c{i}": {"1.0.0": {f"c{i + 1}": "^1"} if i < n - 1 else {"missing": "^1"}} for i in range(n)}
    with pytest.raises(ResolutionImpossible) as e:
        resolve(Index.of(deps), ["c0@^1"])
    assert "c9999 depends on missing ^1, which is not in the index" in str(e.value)
    deps[f"c{n - 1}"] = {"1.0.0": {}}
    assert len(resolve(Index.of(deps), ["c0@^1"])) == n


def test_two_root_requirements_on_one_name_both_hold():
    assert resolve(IDX, ["b@>=2.0.0", "b@<3.0.0"]) == {"b": "2.5.0"}
    assert resolve(IDX, ["b@^2 || ^3", "b@<2.5.0"]) == {"b": "2.0.0"}  # a union no longer wins over the other
    with pytest.raises(ResolutionImpossible):
        resolve(IDX, ["b@^3", "b@^2"])


def test_cohorts_resolve_separately():
    got = resolve_cohorts(IDX, ["a@*", "canary:a@^1", "group-a:c@1.4.0"])
    assert got == {"canary": {"a": "1.0.0"}, "default": {"a": "2.1.0", "b": "3.0.0"},
                   "group-a": {"a": "1.0.0", "b": "2.5.0", "c": "1.4.0"}}
    assert resolve_cohorts(IDX, ["a@^1"], cohorts=["extra"])["extra"] == {"a": "1.0.0"}


@pytest.mark.parametrize("text, parsed", [
    ("a@^1", Requirement("a", "^1")), ("a", Requirement("a", "*")), ("canary:a@~1.2", Requirement("a", "~1.2", "canary")),
])
def test_requirement_parse(text, parsed):
    assert Requirement.parse(text) == parsed


@pytest.mark.parametrize("bad", ["@^1", "a@^^1", "a@>=1.2.3.4"])
def test_requirement_parse_errors(bad):
    with pytest.raises(ValueError):
        Requirement.parse(bad)


# ---- property: the resolver agrees with exhaustive search on small random indexes ----
_names = ["a", "b", "c", "d"]
_vers = ["1.0.0", "1.1.0", "2.0.0"]
_ranges = ["^1", "^2", "*", "1.1.0", ">=1.1.0", "<1.1.0"]


@st.composite
def _indexes(draw):
    pkgs = {}
    for n in _names[: draw(st.integers(1, 4))]:
        vs = draw(st.lists(st.sampled_from(_vers), min_size=1, max_size=3, unique=True))
        pkgs[n] = {v: draw(st.dictionaries(st.sampled_from(_names), st.sampled_from(_ranges), max_size=2)) for v in vs}
    roots = draw(st.dictionaries(st.sampled_from(_names), st.sampled_from(_ranges), min_size=1, max_size=2))
    return pkgs, roots


def _valid(pkgs, roots, sol):
    def ok(name, rng):
        return name in sol and Range.parse(rng).contains(sol[name])
    if not all(ok(n, r) for n, r in roots.items()):
        return False
    return all(name in pkgs and v in pkgs[name] and all(ok(d, r) for d, r in pkgs[name][v].items())
               for name, v in sol.items())


def _brute(pkgs, roots):
    names = sorted(pkgs)
    for choice in itertools.product(*[[None, *pkgs[n]] for n in names]):
        sol = {n: v for n, v in zip(names, choice) if v is not None}
        if _valid(pkgs, roots, sol):
            return sol
    return None


@settings(max_examples=300, deadline=None)
@given(_indexes())
def test_agrees_with_exhaustive_search(case):
    pkgs, roots = case
    idx = Index.of(pkgs)
    reqs = [f"{n}@{r}" for n, r in roots.items()]
    try:
        sol = resolve(idx, reqs)
    except ResolutionImpossible as e:
        assert _brute(pkgs, roots) is None, f"resolver failed but a solution exists: {e}"
        assert "version solving failed" in str(e)
        return
    assert _valid(pkgs, roots, sol), sol
