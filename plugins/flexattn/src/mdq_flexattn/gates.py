"""Semantic gates between a question and a candidate context: character n-gram Jaccard and BM25-lite.

Both score in [0, 1] and pass when the score reaches tau, read from the control state
(``Gate/<name>/tau``, default 0.75). Function words are stripped from the question first, so
"请问什么是" does not count as topic. As a package test (`tests: ["bm25"]`), a gate refuses
Idx atoms whose segment is unrelated to the domain catalog: no catalog term scores >= tau.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from mdqcore import GateResult, Idx, MdqPackage

from .catalog import is_punct
from .policy import FUNCTION_WORDS

DEFAULT_TAU = 0.75


def check_tau(tau: float) -> float:
    """Return tau as a float, refusing values outside [0, 1]."""
    if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not 0.0 <= tau <= 1.0:
        raise ValueError(f"tau must be within [0, 1], got {tau!r}")
    return float(tau)


def content(text: str) -> str:
    """Return `text` without punctuation and function words."""
    for w in sorted(FUNCTION_WORDS, key=len, reverse=True):
        text = text.replace(w, " ")
    return "".join(" " if is_punct(ch) else ch for ch in text)


def char_ngrams(text: str, n: int = 2) -> list[str]:
    """Return the character n-grams of each punctuation-free run (a shorter run counts whole)."""
    out: list[str] = []
    for run in "".join(" " if is_punct(ch) else ch for ch in text).split():
        out.extend([run] if len(run) < n else [run[i:i + n] for i in range(len(run) - n + 1)])
    return out


def jaccard(question: str, context: str, n: int = 2) -> float:
    """Return |Q ∩ C| / |Q ∪ C| over the character n-gram sets of question content and context."""
    q, c = set(char_ngrams(content(question), n)), set(char_ngrams(context, n))
    return len(q & c) / len(q | c) if q | c else 0.0


def bm25_lite(question: str, context: str, idf: Callable[[str], float], n: int = 2, k1: float = 1.2) -> float:
    """Return BM25 of the question's n-grams in the context, without length normalization, over its self-score.

    "Lite": one document and no corpus, so no average length (b = 0); IDF comes from the
    frequency list. 1.0 means the context covers every content n-gram of the question.
    """
    q = Counter(char_ngrams(content(question), n))
    tf = Counter(char_ngrams(context, n))
    num = den = 0.0
    for g, qn in q.items():
        w = idf(g) * qn
        den += w
        f = tf.get(g, 0)
        num += w * f * (k1 + 1) / (f + k1)  # saturating tf; a single occurrence scores 1, like the question itself
    return min(1.0, num / den) if den > 0 else 0.0


class SemanticGate:
    """A gate capability: `score`/`passes` for question vs context, `__call__` as a package test."""

    def __init__(self, name: str, engine: Callable[[], Any]) -> None:
        self.name = name
        self._engine = engine

    def tau(self, state: Any) -> float:
        """Return the threshold the control state sets for this gate."""
        v = state.param("Gate", self.name, "tau") if state is not None else None
        return check_tau(DEFAULT_TAU if v is None else v)

    def score(self, question: str, context: str) -> float:
        """Return the similarity in [0, 1]."""
        if self.name == "jaccard":
            return jaccard(question, context)
        eng = self._engine()
        return bm25_lite(question, context, eng.idf.base)

    def passes(self, question: str, context: str, state: Any = None) -> bool:
        """Return whether the context is on the question's topic (score >= tau)."""
        return self.score(question, context) >= self.tau(state)

    def __call__(self, package: MdqPackage, state: Any) -> GateResult:
        """Refuse Idx atoms on segments no catalog term is similar to (score >= tau)."""
        eng = self._engine()
        tau = self.tau(state)
        terms = list(eng.catalog.surface)
        bad = []
        for i, a in enumerate(package.atoms):
            if not isinstance(a, Idx) or a.seg in eng.catalog:
                continue
            best = max((self.score(a.seg, t) for t in terms), default=0.0)
            if best < tau:
                bad.append(f"$.atoms[{i}].seg {a.seg!r} (best {best:.2f} < tau {tau:.2f})")
        if bad:
            return GateResult.refused("segments unrelated to the domain catalog: " + "; ".join(bad))
        return GateResult.passed("every index segment is a catalog term or close to one")

