"""Relevance gates: how related each hit of an answer is to the question, in [0, 1].

A gate scores one hit in its place in the answer, not the answer's prefix, so a score can
fall as well as rise and never saturates over a long text. Three gates are registered, each
with its own threshold tau in the control state (``Gate/<name>/tau``):

- ``topic`` (the default): the hit term's own relation to the question (its catalog terms with
  their aliases, its content words), or the topic context of the sentence the hit stands in;
  see `TopicContext` for the rules and the plugin README for a worked example.
- ``bm25``: BM25-lite of the question's content bigrams in a window of the answer around the hit.
- ``jaccard``: Jaccard of the question's content bigrams and those of the best span of that
  window as long as the question's content.

`prepare(question, text)` does the per-answer work once (one scan, one pass over sentences),
so a whole answer is scored in time linear in its length. As a package test a gate refuses
Idx atoms on segments no catalog term is similar to (`score(segment, term) >= tau`).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from mdqcore import GateResult, Idx, MdqPackage

from .catalog import DOMAIN_TAGS, fold_width, is_punct
from .policy import FUNCTION_WORDS

from .params import DEFAULT_TAU, GATES  # noqa: E402,F401 - re-exported
RELATED = 0.5  # rel at which a hit puts its sentence on the question's topic (and below which it can be a rival)
WINDOW = 12  # characters each side of a hit that bm25 and jaccard see, within its sentence
SENTENCE_END = "。！？!?；;\n"
_SENTENCES = re.compile(f"[{re.escape(SENTENCE_END)}]+")


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
    return _jaccard(set(char_ngrams(content(question), n)), context, n)


def _jaccard(q: set[str], context: str, n: int = 2) -> float:
    c = set(char_ngrams(context, n))
    return len(q & c) / len(q | c) if q | c else 0.0


def bm25_lite(question: str, context: str, idf: Callable[[str], float], n: int = 2, k1: float = 1.2) -> float:
    """Return BM25 of the question's n-grams in the context, without length normalization, over its self-score.

    "Lite": one document and no corpus, so no average length (b = 0); IDF comes from the
    frequency list. 1.0 means the context holds every content n-gram of the question.
    """
    return _bm25(Counter(char_ngrams(content(question), n)), context, idf, n, k1)


def _bm25(q: Counter[str], context: str, idf: Callable[[str], float], n: int = 2, k1: float = 1.2) -> float:
    tf = Counter(char_ngrams(context, n))
    num = den = 0.0
    for g, qn in q.items():
        w = idf(g) * qn
        den += w
        f = tf.get(g, 0)
        num += w * f * (k1 + 1) / (f + k1)  # saturating tf; a single occurrence scores 1, like the question itself
    return min(1.0, num / den) if den > 0 else 0.0


def overlap(a: str, b: str) -> float:
    """Return the bigram overlap coefficient |A ∩ B| / min(|A|, |B|) of two terms (1 when one holds the other)."""
    return _overlap(_grams(a), _grams(b))


def _grams(s: str) -> frozenset[str]:
    return frozenset(char_ngrams(s))


def _overlap(A: frozenset[str], B: frozenset[str]) -> float:
    return len(A & B) / min(len(A), len(B)) if A and B else 0.0


class HitContext(Protocol):
    """What a gate prepared for one answer: the relevance of each hit."""

    def sim(self, start: int, end: int, term: str) -> float:
        """Return the relevance in [0, 1] of the hit text[start:end] (canonical `term`)."""
        ...

    def sims(self, hits: list[tuple[int, str, str]]) -> list[float]:
        """Return the relevance of each (start, form, term) hit, in order of start."""
        ...


DOMAIN_PARTS = 2  # distinct catalog terms a question word must be part of to put the question in the domain


def _unknown_words(run: str) -> list[str]:
    # a run the dictionary does not know: Chinese as its bigrams (他汀 in 他汀类), Latin letters and
    # digits as whole words (Python, not Py yt th ho on)
    out: list[str] = []
    for part in re.findall(r"[\u3400-\u9fff\uf900-\ufaff]+|[^\u3400-\u9fff\uf900-\ufaff]+", run):
        if "\u3400" <= part[0] <= "\u9fff" or "\uf900" <= part[0] <= "\ufaff":
            out.extend(part[i:i + 2] for i in range(len(part) - 1))
        elif len(part) >= 2:
            out.append(part)
    return out


def _builds_terms(word: str, catalog: Any, general: Callable[[str], bool], need: int = DOMAIN_PARTS) -> bool:
    # whether `word` is part of `need` distinct domain terms (头孢 of 头孢曲松 and 头孢呋辛): a word the
    # domain builds its vocabulary from, unlike 蜂蜜 or 发动机, which no catalog term contains
    found: set[str] = set()
    for form, term in catalog.surface.items():
        if word in form and form != word and term not in found and not general(term):
            found.add(term)
            if len(found) >= need:
                return True
    return False


class QuestionProfile:
    """The question's topic: its keys (catalog terms with every alias), anchors, and their domain tags.

    The question is in the domain (`in_domain`) when it names a catalog term with a domain tag
    (手术, a procedure, counts although it is too frequent to earn reward) or one of its words is
    part of DOMAIN_PARTS or more domain terms (头孢, 他汀). A question outside the domain (why bread
    rises, why honey keeps) gives every hit of its answers sim 0: its answers may use domain
    words (葡萄糖, 过氧化氢), but they are not domain answers.

    Keys are the non-general catalog terms the question contains, with all their surface forms,
    so a lay alias in the question (拉肚子) names the clinical term of the answer (腹泻).
    Anchors are the strings whose mention puts a sentence on the question's topic: the key
    forms, the rest of the question split into dictionary words (two or more characters, not
    general), and the bigrams of runs that the dictionary does not know (他汀 in 他汀类药物).
    """

    def __init__(self, question: str, engine: Any, matcher: Any, general: Callable[[str], bool]) -> None:
        self.question = fold_width(question)
        self.terms: set[str] = set()
        self.tags: set[str] = set()
        named: set[str] = set()  # domain tags of every catalog term the question names, frequent ones included
        forms: set[str] = set()
        covered = bytearray(len(self.question))
        for h in matcher.hits(self.question):
            covered[h.start:h.end] = b"\x01" * len(h.form)
            named |= DOMAIN_TAGS.intersection(engine.catalog.tags(h.term))
            if general(h.term):
                continue
            self.terms.add(h.term)
            self.tags |= DOMAIN_TAGS.intersection(engine.catalog.tags(h.term))
            e = engine.catalog.entries.get(h.term)
            forms.update((h.term, h.form, *(e.aliases if e else ())))
        self.forms = sorted(forms)
        rest = "".join(" " if covered[i] or is_punct(ch) else ch for i, ch in enumerate(self.question))
        words: set[str] = set()
        for run in content(rest).split():
            segs = engine.freqs.segment(run)
            words.update(w for w in segs if len(w) >= 2)
            unknown = ""  # consecutive single characters: a word the dictionary lacks
            for w in [*segs, "  "]:
                if len(w) == 1:
                    unknown += w
                    continue
                words.update(_unknown_words(unknown))
                unknown = ""
        self.words = sorted(w for w in words if w not in FUNCTION_WORDS and not general(w))
        self.anchors = sorted(set(self.forms) | set(self.words), key=len, reverse=True)
        self._anchor_grams = [_grams(a) for a in self.anchors]
        self._rel: dict[tuple[str, str], float] = {}
        self._mention: Any = None
        self.in_domain = bool(named) or any(_builds_terms(w, matcher.catalog, general) for w in self.words)

    def __bool__(self) -> bool:
        return bool(self.anchors)

    def rel(self, term: str, form: str = "") -> float:
        """Return how related a hit term is to the question: 1 for a key (any alias), else the best bigram overlap."""
        r = self._rel.get((term, form))
        if r is None:
            if len(self._rel) > 65536:  # one question, many answers: bounded all the same
                self._rel.clear()
            r = self._rel[(term, form)] = 1.0 if term in self.terms else max(
                (_overlap(g, a) for a in self._anchor_grams for g in {_grams(term), _grams(form or term)}), default=0.0)
        return r

    def mentioned(self, text: str) -> bool:
        """Return whether `text` mentions an anchor of the question."""
        return any(k in text for k in self.anchors)

    def mentions(self, text: str) -> Iterator[int]:
        """Yield where anchors of the question occur in `text` (one scan; overlapping mentions may merge)."""
        if self._mention is None:
            self._mention = re.compile("|".join(map(re.escape, self.anchors))) if self.anchors else False
        if self._mention:
            yield from (m.start() for m in self._mention.finditer(text))


class TopicContext:
    """The `topic` gate over one answer: sim(hit) = max(rel(hit), ctx(sentence of the hit)).

    The answer is cut into sentences (at 。！？；!?; and newlines). Over the catalog hits of the
    whole answer, for sentence s:

        ctx(s) = 1      if s is on topic: it mentions an anchor of the question (a key in any
                        form, a content word of the question) or holds a hit with rel >= 0.5
               = 0      if s holds no domain hit (every hit general, or none)
               = 0      if the first domain hit of s is a rival: unrelated to the question
                        (rel < 0.5) and sharing a domain tag with its keys (another drug for a
                        drug question: a new subject)
               = carry * max(ctx(s-1), ctx(s+1))   otherwise, carried from the neighbouring
                        sentences (each carried value itself carried on, fading per sentence;
                        never through an off-domain or rival sentence)

    A question outside the domain (`QuestionProfile.in_domain` false) gives every hit sim 0.
    So an answer earns context only where it names the question's topic; the context carries
    into sentences next to it that go on about it (dropped subjects, pronouns, an explanation
    before the subject is named), fading by `carry` per sentence, and is lost at once where the
    answer turns to another subject or leaves the domain.
    """

    def __init__(self, profile: QuestionProfile, text: str, hits: Iterable[tuple[int, str, str]], catalog: Any,
                 general: Callable[[str], bool], carry: float) -> None:
        self.profile = profile
        self.starts = [0] + [m.end() for m in _SENTENCES.finditer(text)]
        ends = self.starts[1:] + [len(text)]
        n = len(self.starts)
        on = [False] * n
        for at in profile.mentions(text):  # anchors hold no punctuation: a mention lies in one sentence
            on[bisect_right(self.starts, at) - 1] = True
        domain = [False] * n
        rival = [False] * n
        u = 0
        for start, form, term in hits:
            while start >= ends[u]:
                u += 1
            if general(term):
                continue
            r = self.rel(term, form)
            on[u] = on[u] or r >= RELATED
            if not domain[u]:  # the first domain hit of the sentence decides whether it opens a new subject
                domain[u] = True
                rival[u] = r < RELATED and bool(profile.tags.intersection(catalog.tags(term)))
        ctx = [1.0 if o else 0.0 for o in on]
        # carry both ways: an answer may explain before it names the subject
        for order in (range(n), range(n - 1, -1, -1)):
            prev = 0.0
            for i in order:
                if not on[i] and domain[i] and not rival[i]:
                    ctx[i] = max(ctx[i], carry * prev)
                prev = ctx[i] if on[i] or (domain[i] and not rival[i]) else 0.0
        self.off_domain = not profile.in_domain
        self.ctx = [0.0] * n if self.off_domain else ctx

    def rel(self, term: str, form: str = "") -> float:
        """Return the profile's relation of a term (cached per question)."""
        return self.profile.rel(term, form)

    def sim(self, start: int, end: int, term: str) -> float:
        """Return max(rel(term), ctx(sentence of the hit)); 0 for every hit when the question is off the domain."""
        if self.off_domain:
            return 0.0
        return max(self.profile.rel(term), self.ctx[bisect_right(self.starts, start) - 1])

    def sims(self, hits: list[tuple[int, str, str]]) -> list[float]:
        """Return `sim` of each hit, walking the sentences once (hits in order of start)."""
        if self.off_domain:
            return [0.0] * len(hits)
        rel, cached, ctx = self.profile.rel, self.profile._rel, self.ctx
        ends = self.starts[1:] + [float("inf")]
        out, u = [], 0
        for start, _form, term in hits:
            while start >= ends[u]:
                u += 1
            r = cached.get((term, ""))
            if r is None:
                r = rel(term)
            out.append(r if r > ctx[u] else ctx[u])
        return out


class WindowContext:
    """The `bm25` and `jaccard` gates over one answer: the question against the text round each hit.

    The window is the hit with up to WINDOW characters each side, cut at sentence ends, so the
    score depends on the hit's neighbourhood only: it neither shrinks nor saturates as the text
    grows. `bm25` scores the whole window; `jaccard` the best span of the window that is as long
    as the question's content (a longer span would dilute the ratio by its length alone).
    """

    def __init__(self, score: Callable[[str], float], text: str, span: int = 0) -> None:
        self.score, self.text, self.span = score, text, span
        self._ends = [m.end() for m in _SENTENCES.finditer(text)]

    def sims(self, hits: list[tuple[int, str, str]]) -> list[float]:
        """Return `sim` of each (start, form, term) hit."""
        return [self.sim(start, start + len(form), term) for start, form, term in hits]

    def sim(self, start: int, end: int, term: str) -> float:
        """Return the gate's score of the question against the window round text[start:end]."""
        i = bisect_right(self._ends, start)
        lo = max(start - WINDOW, self._ends[i - 1] if i else 0)
        hi = min(end + WINDOW, self._ends[i] if i < len(self._ends) else len(self.text))
        if not self.span:
            return self.score(self.text[lo:hi])
        w = self.span  # spans of the question's length that overlap the hit
        first, last = max(lo, start - w + 1), min(end - 1, hi - w)
        if last < first:
            return self.score(self.text[lo:hi])
        return max(self.score(self.text[a:a + w]) for a in range(first, last + 1))


class SemanticGate:
    """A gate capability: `score`, `prepare` (per-hit relevance in an answer), `__call__` as a package test."""

    def __init__(self, name: str, engine: Callable[[], Any]) -> None:
        if name not in GATES:
            raise ValueError(f"unknown relevance gate {name!r}: use one of {', '.join(GATES)}")
        self.name = name
        self._engine = engine

    def tau(self, state: Any) -> float:
        """Return the threshold the control state sets for this gate."""
        v = state.param("Gate", self.name, "tau") if state is not None else None
        return check_tau(DEFAULT_TAU if v is None else v)

    def score(self, question: str, context: str) -> float:
        """Return the similarity in [0, 1] of two texts (topic: the bigram overlap of the two)."""
        if self.name == "jaccard":
            return jaccard(question, context)
        if self.name == "topic":
            return overlap(content(question).replace(" ", ""), context)
        return bm25_lite(question, context, self._engine().idf.base)

    def passes(self, question: str, context: str, state: Any = None) -> bool:
        """Return whether the context is on the question's topic (score >= tau)."""
        return self.score(question, context) >= self.tau(state)

    def prepare(self, question: str, text: str, *, matcher: Any, general: Callable[[str], bool],
                carry: float = 0.85, hits: Iterable[tuple[int, str, str]] | None = None, profile: QuestionProfile | None = None
                ) -> HitContext:
        """Return the per-hit relevance of one answer (all the per-answer work is done here, once)."""
        if self.name == "jaccard":
            q = set(char_ngrams(content(question)))
            return WindowContext(lambda span: _jaccard(q, span), text, span=len(q) + 1)
        if self.name == "bm25":
            qc, idf = Counter(char_ngrams(content(question))), self._engine().idf.base
            return WindowContext(lambda window: _bm25(qc, window, idf), text)
        eng = self._engine()
        profile = profile or QuestionProfile(question, eng, matcher, general)
        if hits is None:
            hits = [(h.start, h.form, h.term) for h in matcher.hits(text)]
        return TopicContext(profile, text, hits, eng.catalog, general, carry)

    def __call__(self, package: MdqPackage, state: Any) -> GateResult:
        """Refuse Idx atoms on segments no catalog term is similar to (score >= tau)."""
        eng = self._engine()
        tau = self.tau(state)
        bad = []
        for i, a in enumerate(package.atoms):
            if not isinstance(a, Idx) or a.seg in eng.catalog:
                continue
            best = max((self.score(a.seg, t) for t in eng.neighbours(a.seg)), default=0.0)
            if best < tau:
                bad.append(f"$.atoms[{i}].seg {a.seg!r} (best {best:.2f} < tau {tau:.2f})")
        if bad:
            return GateResult.refused("segments unrelated to the domain catalog: " + "; ".join(bad))
        return GateResult.passed("every index segment is a catalog term or close to one")
