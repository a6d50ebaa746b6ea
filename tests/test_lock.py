"""Lock files are written and re-checked (issue #3)."""

from __future__ import annotations

from mdqcore.versions.index import Index
from mdqcore.cli.lock import check_lock, make_lock
from mdqcore.versions.resolver import Requirement, resolve_cohorts

IDX = Index.of({"a": {"1.0.0": {}, "2.0.0": {"b": "^3"}}, "b": {"3.0.0": {}, "3.1.0": {}}})


def _lock():
    reqs = [Requirement.parse(r) for r in ["a@*", "canary:a@^1"]]
    return make_lock(IDX, reqs, resolve_cohorts(IDX, reqs))


def test_lock_holds_against_its_index():
    lock = _lock()
    assert lock["cohorts"] == {"canary": {"a": "1.0.0"}, "default": {"a": "2.0.0", "b": "3.1.0"}}
    assert check_lock(lock, IDX) == []


def test_lock_breaks_when_the_index_changes():
    changed = Index.of({"a": {"1.0.0": {}, "2.0.0": {"b": "^4"}}, "b": {"3.0.0": {}}})
    problems = check_lock(_lock(), changed)
    assert "[default] a 2.0.0 depends on b ^4, locked at 3.1.0" in problems
    assert "[default] b 3.1.0 is locked but not in the index" in problems


def test_lock_breaks_when_a_pin_misses_a_requirement():
    lock = _lock()
    lock["cohorts"]["canary"]["a"] = "2.0.0"
    assert any("requirement a@^1 is not met" in p for p in check_lock(lock, IDX))
    assert check_lock({"lock_version": 99}, IDX)[0].startswith("lock_version 99")
