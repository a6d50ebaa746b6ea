"""Live canary analysis (mdq_serve.rollout): the statistics, and the decisions they lead to."""

from __future__ import annotations

import math
import random

import pytest
from mdq_serve.rollout import ARMS, Recorder, analyse, merge

SPEC = {"min_requests": 10, "margin": 0.05, "z": 1.645, "interval_s": 1.0, "intervals": 2, "timeout_s": 10.0}
DIRS = {"lexical": "higher", "general_share": "lower"}


def _record(active: list[float], canary: list[float], pairs: list[tuple[float, float]] | None = None) -> dict:
    rec = Recorder()
    for v in active:
        rec.observe(1, "active", [{"lexical": v, "general_share": 0.0}])
    for v in canary:
        rec.observe(1, "canary", [{"lexical": v, "general_share": 0.0}])
    for c, a in pairs or []:
        rec.pair(1, [{"lexical": c, "general_share": 0.0}], [{"lexical": a, "general_share": 0.0}])
    return merge([{"arms": rec.drain()[1]}])


def test_a_neutral_change_passes_when_paired():
    rng = random.Random(0)
    values = [rng.uniform(0.1, 0.9) for _ in range(40)]  # requests differ a lot from one another ...
    arms = _record(values, values[:20], [(v, v) for v in values[:20]])  # ... but each is the same under both states
    out = analyse(arms, DIRS, SPEC, {})
    assert out["verdict"] == "pass" and out["kpis"]["lexical"]["by"] == "paired"


def test_the_same_spread_unpaired_is_inconclusive_not_a_pass():
    rng = random.Random(0)
    arms = _record([rng.uniform(0.1, 0.9) for _ in range(40)], [rng.uniform(0.1, 0.9) for _ in range(40)])
    out = analyse(arms, DIRS, SPEC, {})
    assert out["kpis"]["lexical"]["by"] == "arms" and out["verdict"] in ("inconclusive", "fail")


def test_a_clear_regression_fails_with_its_figures():
    arms = _record([0.5] * 20, [0.3] * 20, [(0.3, 0.5)] * 20)
    out = analyse(arms, DIRS, SPEC, {})
    assert out["verdict"] == "fail" and "lexical 0.5 -> 0.3" in out["reasons"][0]


def test_lower_is_better_is_respected():
    rec = Recorder()
    for _ in range(20):
        rec.observe(1, "active", [{"general_share": 0.0}])
        rec.observe(1, "canary", [{"general_share": 0.3}])
        rec.pair(1, [{"general_share": 0.3}], [{"general_share": 0.0}])
    out = analyse(merge([{"arms": rec.drain()[1]}]), DIRS, SPEC, {})
    assert out["verdict"] == "fail" and out["kpis"]["general_share"]["diff"] == pytest.approx(-0.3)


def test_the_package_tolerance_widens_what_is_allowed():
    arms = _record([0.5] * 20, [0.45] * 20, [(0.45, 0.5)] * 20)
    assert analyse(arms, DIRS, SPEC, {})["verdict"] == "fail"
    assert analyse(arms, DIRS, SPEC, {"lexical": 0.04})["verdict"] == "pass"  # 0.04 + 5% of 0.5 >= 0.05


def test_too_few_requests_is_insufficient_never_a_pass():
    out = analyse(_record([0.5] * 9, [0.5] * 9, [(0.5, 0.5)] * 9), DIRS, SPEC, {})
    assert out["verdict"] == "insufficient" and "fewer than 10 per arm" in out["reasons"][0]
    assert analyse(merge([]), DIRS, SPEC, {})["verdict"] == "insufficient"  # no traffic at all


@pytest.mark.parametrize("bad", [math.nan, math.inf, "x", None])
def test_a_non_finite_observation_fails_the_kpi(bad):
    rec = Recorder()
    for i in range(20):
        rec.observe(1, "active", [{"lexical": 0.5}])
        rec.observe(1, "canary", [{"lexical": bad if i == 3 else 0.5}])
    out = analyse(merge([{"arms": rec.drain()[1]}]), {"lexical": "higher"}, SPEC, {})
    assert out["verdict"] == "fail"


def test_replicas_merge_into_one_interval():
    a, b = Recorder(), Recorder()
    for i in range(6):
        a.observe(7, "canary", [{"lexical": 1.0}])
        b.observe(7, "canary", [{"lexical": 3.0}])
    total = merge([{"arms": a.drain()[7]}, {"arms": b.drain()[7]}])
    s, _s2, n, _ = total["canary"]["kpis"]["lexical"]
    assert n == 12 and s / n == 2.0 and set(total) == {*ARMS, "pairs"}


def test_the_worked_example_of_the_module_docstring():
    rng = random.Random(5)

    def draw(mean: float) -> list[float]:  # 50 values with exactly this mean and sd 0.1
        xs = [rng.gauss(0, 1) for _ in range(50)]
        m = sum(xs) / 50
        sd = math.sqrt(sum((x - m) ** 2 for x in xs) / 49)
        return [mean + 0.1 * (x - m) / sd for x in xs]
    out = analyse(_record(draw(0.40), draw(0.38)), {"lexical": "higher"}, {**SPEC, "min_requests": 10}, {})
    k = out["kpis"]["lexical"]
    assert k["diff"] == pytest.approx(-0.02) and k["se"] == pytest.approx(0.02) and out["verdict"] == "inconclusive"
