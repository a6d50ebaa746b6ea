"""KPI evaluators for shadow and canary comparison: term coverage, word non-compliance, reward totals.

Each takes (state, inputs) where an input is {"question", "reference", "answer"[, "key"]}: a
recorded request with its reference answer and the answer the pipeline gave. Values are means
over inputs so that a canary subset and the full shadow set are comparable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from .catalog import fold_width
from .engine import Engine, default_engine
from .matcher import Matcher
from .nearmiss import NearMissIndex
from .reward import Params, Scorer, totals

Inputs = Sequence[Mapping[str, Any]]


def _usable(inputs: Inputs) -> list[Mapping[str, Any]]:
    out = []
    for i, r in enumerate(inputs):
        if not isinstance(r.get("answer"), str) or not r["answer"]:
            raise ValueError(f"inputs[{i}] has no 'answer' text: every recorded input needs question, reference, answer")
        out.append(r)
    return out


def coverage(state: Any, inputs: Inputs, engine: Engine | None = None) -> dict[str, float]:
    """Return term_recall: the share of the reference's catalog terms the answer contains (mean over inputs)."""
    rows = _usable(inputs)
    if not rows:
        return {}
    m = (engine or default_engine()).matchers.for_state(state)
    recalls = []
    for r in rows:
        want = m.terms_in(r.get("reference", ""))
        if want:
            recalls.append(len(want & m.terms_in(r["answer"])) / len(want))
    return {"term_recall": sum(recalls) / len(recalls)} if recalls else {}


@lru_cache(maxsize=8)
def _nearmiss(matcher: Matcher, engine: Engine, floor: float) -> NearMissIndex:
    # matchers are themselves cached per term set, so one index per matcher (and idf floor) is built once
    f, cat = engine.freqs, matcher.catalog
    general = engine.general(cat, floor)
    return NearMissIndex(cat.surface, count=lambda s: f.counts.get(s, 0), freq=f.freq, segment=f.segment,
                         targets=[form for form, term in cat.surface.items() if not general(term)])


def nearmisses(state: Any, text: str, engine: Engine | None = None) -> list[tuple[int, str, str]]:
    """Return (start, string, term) for every non-term within one edit of a catalog term (see nearmiss.py)."""
    eng = engine or default_engine()
    m = eng.matchers.for_state(state)
    text = fold_width(text)
    index = _nearmiss(m, eng, Params.of(state).idf_floor)
    return index.find(text, [(h.start, h.end) for h in m.hits(text)], is_term=m.lookup)


def compliance(state: Any, inputs: Inputs, engine: Engine | None = None) -> dict[str, float]:
    """Return w_nc: near-miss words per answer (mean; lower is better)."""
    rows = _usable(inputs)
    if not rows:
        return {}
    return {"w_nc": sum(len(nearmisses(state, r["answer"], engine)) for r in rows) / len(rows)}


def reward(state: Any, inputs: Inputs, engine: Engine | None = None) -> dict[str, float]:
    """Return mean reward and length-cost totals of the answers (scored against their references)."""
    rows = _usable(inputs)
    if not rows:
        return {}
    scorer = Scorer(state, engine=engine)
    sums = {"reward_total": 0.0, "len_cost_total": 0.0}
    for r in rows:
        t = totals(scorer.score(r.get("question", ""), r["answer"], r.get("reference")))
        for k in sums:
            sums[k] += t[k]
    return {k: v / len(rows) for k, v in sums.items()}
