"""The tiered knowledge buffer (issue #4)."""

from __future__ import annotations

import json

import pytest

from mdqcore import DocumentError
from mdq_flexattn.ekb import EKB


@pytest.fixture
def cold(tmp_path):
    f = tmp_path / "cold.jsonl"
    f.write_text("\n".join(json.dumps({"feature": "idf", "seg": s, "weight": w}, ensure_ascii=False)
                           for s, w in [("奥司他韦", 0.9), ("流感病毒", 0.88), ("是一种", 0.55)]) + "\n", encoding="utf-8")
    return f


def test_cold_to_warm_to_hot(cold):
    t = [0.0]
    e = EKB(cold, hot_size=2, ttl=10, promote_hits=2, clock=lambda: t[0])
    assert e.lookup("idf", "奥司他韦") == 0.9 and ("idf", "奥司他韦") in e.warm and not e.hot
    e.lookup("idf", "奥司他韦")
    assert ("idf", "奥司他韦") in e.hot
    e.lookup("idf", "奥司他韦")
    assert e.stats.hot_hits == 1 and e.stats.cold_hits == 1 and e.stats.warm_hits == 1
    assert e.lookup("idf", "missing") is None and e.stats.misses == 1


def test_lease_expiry_and_eviction_by_hits(cold):
    t = [0.0]
    e = EKB(cold, hot_size=2, ttl=10, promote_hits=1, clock=lambda: t[0])
    for _ in range(3):
        e.lookup("idf", "奥司他韦")
    e.lookup("idf", "流感病毒")
    e.lookup("idf", "是一种")  # hot is full: the entry with fewest hits goes
    assert set(e.hot) == {("idf", "奥司他韦"), ("idf", "是一种")}
    t[0] = 100.0  # every lease expired
    e.lookup("idf", "奥司他韦")
    assert e.stats.evictions >= 2


def test_promoted_idx_change_is_visible_at_once(cold):
    e = EKB(cold, promote_hits=1)
    e.lookup("idf", "奥司他韦")
    e.update_from_diff([(("index", "idf", "奥司他韦"), 0.9, 0.97), (("param", "Op", "L", "x"), 0, 1)])
    assert e.lookup("idf", "奥司他韦") == 0.97
    e.update([("idf", "奥司他韦", None)])
    assert e.lookup("idf", "奥司他韦") is None


def test_corrupt_cold_file_names_the_line(tmp_path):
    f = tmp_path / "bad.jsonl"
    f.write_text('{"feature": "idf", "seg": "a", "weight": 1}\n{"feature": "idf"}\n')
    with pytest.raises(DocumentError, match="line 2"):
        EKB(f).lookup("idf", "a")


@pytest.mark.parametrize("kw, fragment", [({"hot_size": 0}, "hot_size"), ({"ttl": 0}, "ttl")])
def test_bad_configuration(kw, fragment):
    with pytest.raises(ValueError, match=fragment):
        EKB(None, **kw)


def test_attached_ekb_sees_promotions_and_rollbacks(cold, core_registry, ledger):
    import mdqcore
    from mdqcore.runtime.hotplug import Runtime

    rt = Runtime(core_registry, ledger)
    rt.set_policy({"allow_skip_shadow": True}, None, "the core registry loads no KPI evaluator")
    e = EKB(cold, promote_hits=1)
    e.attach(rt)
    assert e.lookup("idf", "奥司他韦") == 0.9 and ("idf", "奥司他韦") in e.hot
    rt.apply(mdqcore.load_package({"name": "boost", "semver": "1.0.0", "atoms": [
        {"type": "Idx", "feature": "idf", "seg": "奥司他韦", "value": 0.97}]}))
    assert e.lookup("idf", "奥司他韦") == 0.97  # visible to the very next look-up
    rt.apply(mdqcore.load_package({"name": "other", "semver": "1.0.0", "atoms": [
        {"type": "Idx", "feature": "idf", "seg": "流感病毒", "value": 0.5}]}), cohort="canary")
    assert e.lookup("idf", "流感病毒") == 0.88  # another cohort's change does not leak in
    rt.rollback("boost")
    assert e.lookup("idf", "奥司他韦") is None  # the entry was absent before the package
