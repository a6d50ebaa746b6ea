"""The lexical reward, one decision per character, every parameter from the control state.

    delta    = lambda_lex * 1[hit] * max(0, sim - tau) * idf(seg) * g(seg)   (x repeat for a term hit before)
    len_cost = lambda_h (L_h / L_h^max)^alpha_h + lambda_p (L_p / L_p^max)^alpha_p
    R_t      = base + eta1 * chi_soft + eta2 * delta - len_cost + rho * P_t

At step t the policy picks (L_h, L_p) for the emitted character a_t; from a_t the matcher
takes the longest catalog term along the true future characters with length in U and <= L_p.
Characters inside a hit do not start another one. sim is the relevance gate's score of that
hit in its place in the answer (gates.py). g(seg) is 1 for a domain term and `general_weight`
(default 0) for a general one: tagged `general` in the catalog or with idf below `idf_floor`.
chi_soft is 1[a_t == chi_t] against the reference (1 when there is none: teacher forcing).
P_t, the small readability term, is 1 when a_t is punctuation closing a non-empty run.
L_h^max = max of the L_h set, L_p^max = max(U), as in the design's worked example (0.10 * 6/8).
U is the set of lengths n whose operator parameter `U<n>` is on (>= 0.5).

Two ways to score, one result: `steps` / `score` give one `Step` per character (what the step
log records) and `summary` the totals and the hits without per-character records. Under the
table policy, which decides from the character alone and never cuts a term short, both come
from one automaton scan over the reachable lengths and per-character costs looked up by
character, and the steps are built column by column; `reference_steps` is the readable
per-character loop (any policy: a learned one decides from the history), kept beside the fast
path as its test oracle. Every path is linear in the text; the tests check they agree.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Iterator
from itertools import repeat
from typing import Any, NamedTuple

from attrs import frozen

from mdqcore.gcpause import gc_paused

from .catalog import DEFAULT_U, MAX_TERM_LEN, check_lengths, fold_width, is_punct
from .engine import Engine, default_engine
from .gates import DEFAULT_TAU, GATES, HitContext, QuestionProfile, SemanticGate, check_tau
from .policy import LH_SET, TablePolicy

from .params import OPERATOR, PARAMS  # noqa: E402,F401 - re-exported: the operator's parameters live there


class Step(NamedTuple):
    """One step of the structured log (field names as in the seed).

    A tuple, not an attrs class: there is one per character of every scored text, and a tuple
    is built in C from its fields (`Step._make`) about ten times faster.
    """

    step: int
    Lh: int
    Lp: int
    a: str
    seg: str
    len: int
    idf: float
    sim: float
    delta: float
    ler: float
    len_cost: float
    chi: float
    P: int
    dup: bool
    R: float

    def as_dict(self) -> dict[str, Any]:
        """Return the JSON record."""
        return self._asdict()


@frozen
class Params:
    """The reward's parameters as one state has them."""

    lambda_lex: float
    eta1: float
    eta2: float
    base: float
    lambda_h: float
    lambda_p: float
    alpha_h: float
    alpha_p: float
    repeat: float
    rho: float
    idf_ceiling: float
    general_weight: float
    idf_floor: float
    carry: float
    U2: float
    U3: float
    U4: float
    U5: float
    U6: float
    U7: float
    U8: float
    tau: float

    @property
    def U(self) -> tuple[int, ...]:
        """The allowed term lengths."""
        return check_lengths((n for n in range(2, MAX_TERM_LEN + 1) if getattr(self, f"U{n}") >= 0.5),
                             "U (the flexattn operator's U2..U8 switches)")

    @classmethod
    def of(cls, state: Any, gate: str = "topic") -> Params:
        """Read every parameter from the control state (plugin defaults where it has none)."""
        vals = {}
        for name, (_bound, default) in PARAMS.items():
            v = state.param("Op", OPERATOR, name) if state is not None else None
            vals[name] = float(default if v is None else v)
        tau = state.param("Gate", gate, "tau") if state is not None else None
        return cls(**vals, tau=check_tau(DEFAULT_TAU if tau is None else tau))


class HitScore(NamedTuple):
    """One lexical hit of an answer with its relevance and reward (a tuple: one per hit of a megabyte)."""

    step: int
    seg: str
    term: str
    len: int
    idf: float
    sim: float
    general: bool
    dup: bool
    delta: float

    def as_dict(self) -> dict[str, Any]:
        """Return the JSON record."""
        return self._asdict()


@frozen
class Summary:
    """An answer's totals (as `totals(steps)`) and its hits, from `Scorer.summary`."""

    totals: dict[str, float]
    hits: list[HitScore]


class Scorer:
    """Scores texts under one control state (take the state once per request).

    Public entry points: `score` / `steps` (per character), `summary` (totals and hits),
    `hit_scores` (the hits of `steps` without the per-character records), `reference_steps`
    (the per-character loop the fast paths are checked against).
    """

    def __init__(self, state: Any = None, *, gate: str = "topic", engine: Engine | None = None,
                 policy: Any = None) -> None:
        if gate not in GATES:
            raise ValueError(f"unknown relevance gate {gate!r}: use one of {', '.join(GATES)}")
        self.engine = engine or default_engine()
        self.state = state
        self.gate_name = gate
        self.gate = SemanticGate(gate, lambda: self.engine)
        self.params = Params.of(state, gate)
        self.U = self.params.U
        self.matcher = self.engine.matchers.for_state(state)
        self.table = policy is None
        self.policy = policy or TablePolicy(state, self.matcher.longest_from(self.U))
        self.lh_max = max(getattr(self.policy, "lh_set", LH_SET))
        self.lp_max = self.U[-1]
        cap = getattr(self.policy, "lp_max", self.U[-1])
        # the lengths a hit can have: in U and within the policy's widest window
        self.reach = tuple(n for n in self.U if n <= cap) or (self.U[0],)
        self.unreachable = self.matcher.catalog.unreachable(self.reach)
        self.general = self.engine.general(self.matcher.catalog, self.params.idf_floor)
        self._profiles: dict[str, QuestionProfile] = {}
        # per character, under the table policy (it decides from the character alone)
        self._by_char: dict[str, tuple[int, int, float]] = {}  # L_h, L_p, len_cost
        self._cost_of: dict[str, float] = {}  # len_cost
        self._plain: dict[str, tuple[Any, ...]] = {}  # a plain step less its number: Step = (t,) + this
        self._closing: dict[str, tuple[Any, ...]] = {}  # the same, for punctuation closing a run (P = 1)
        self._punct_of: dict[int, str] = {}  # str.translate table: "1" for punctuation, "0" otherwise
        self._per_term: dict[str, tuple[float, bool]] = {}  # idf and generality depend on the term alone

    def profile(self, question: str) -> QuestionProfile:
        """Return the question's topic profile (cached: many answers are scored per question)."""
        p = self._profiles.get(question)
        if p is None:
            if len(self._profiles) > 256:
                self._profiles.clear()
            p = self._profiles[question] = QuestionProfile(question, self.engine, self.matcher, self.general)
        return p

    def _check(self, question: Any, text: Any) -> None:
        if not isinstance(text, str) or not text:
            raise ValueError("text to score must be a non-empty string")
        if not isinstance(question, str):
            raise ValueError(f"question must be a string, got {type(question).__name__}")

    def _scan(self, text: str) -> list[tuple[int, str, str]]:
        # (start, form, term) tuples, not Hit objects: at a megabyte, fewer objects for the GC to track
        auto = self.matcher.reach(self.reach)
        return [(e - n, text[e - n:e + 1], term) for e, (n, term) in auto.iter_long(text)]

    def context(self, question: str, text: str, hits: list[tuple[int, str, str]] | None = None) -> HitContext:
        """Return the gate's per-hit relevance over `text` (already width-folded)."""
        if not question.strip():
            return _Zero()  # documented: an empty question makes every hit irrelevant
        return self.gate.prepare(question, text, matcher=self.matcher, general=self.general,
                                 carry=self.params.carry, hits=self._scan(text) if hits is None else hits,
                                 profile=self.profile(question) if self.gate_name == "topic" else None)

    def _delta(self, sim: float, w: float, general: bool, dup: bool) -> float:
        p = self.params
        g = p.general_weight if general else 1.0
        return p.lambda_lex * max(0.0, sim - p.tau) * w * g * (p.repeat if dup else 1.0)

    def _len_cost(self, Lh: int, Lp: int) -> float:
        p = self.params
        return p.lambda_h * (Lh / self.lh_max) ** p.alpha_h + p.lambda_p * (Lp / self.lp_max) ** p.alpha_p

    def _R(self, chi: float, ler: float, len_cost: float, P: int) -> float:
        p = self.params
        return p.base + p.eta1 * chi + ler - len_cost + p.rho * P  # one expression for every path: equal floats

    def _chars(self, text: str) -> None:
        # fill the per-character tables for the characters of `text` not seen yet (once per scorer:
        # the table policy decides from the character alone and the state is fixed)
        for ch in set(text).difference(self._by_char):
            Lh, Lp = self.policy.decide("", ch)
            cost = self._len_cost(Lh, Lp)
            self._by_char[ch] = (Lh, Lp, cost)
            self._cost_of[ch] = cost
            self._plain[ch] = (Lh, Lp, ch, "-", 0, 0.0, 0.0, 0.0, 0.0, cost, 1.0, 0, False, self._R(1.0, 0.0, cost, 0))
            self._closing[ch] = (*self._plain[ch][:11], 1, False, self._R(1.0, 0.0, cost, 1))
            self._punct_of[ord(ch)] = "1" if is_punct(ch) else "0"

    def _punct_after_text(self, text: str) -> list[int]:
        # positions t with P_t = 1: punctuation right after a non-punctuation character
        return [m.start() for m in _CLOSES.finditer(text.translate(self._punct_of))]

    def _hits(self, question: str, text: str) -> list[HitScore]:
        # every hit of the table policy (the reachable automaton's leftmost-longest scan) with its reward
        hits = self._scan(text)
        sims = self.context(question, text, hits).sims(hits)
        idf, state, general, per_term = self.engine.idf, self.state, self.general, self._per_term
        p = self.params
        scale, tau, repeat_w, gw = p.lambda_lex, p.tau, p.repeat, p.general_weight
        seen: set[str] = set()
        out = []
        new = tuple.__new__
        for (start, form, term), s in zip(hits, sims):
            wg = per_term.get(term)
            if wg is None:
                if len(per_term) > 65536:  # one state, any number of texts: bounded all the same
                    per_term.clear()
                wg = per_term[term] = (idf(term, state), general(term))
            w, g = wg
            dup = term in seen
            seen.add(term)
            # the same product, in the same order, as `_delta`
            delta = scale * max(0.0, s - tau) * w * (gw if g else 1.0) * (repeat_w if dup else 1.0)
            out.append(new(HitScore, (start + 1, form, term, len(form), w, s, g, dup, delta)))
        return out

    def steps(self, question: str, text: str, reference: str | None = None) -> Iterator[Step]:
        """Yield one `Step` per character of `text`."""
        if not self.table:
            yield from self.reference_steps(question, text, reference)
            return
        yield from self._table_steps(question, text, reference)

    def _table_steps(self, question: str, text: str, reference: str | None) -> list[Step]:
        # the table policy's steps, built in bulk: every step as a plain one (no hit, no closing
        # punctuation, chi = 1) from its character's template, then the others written over
        self._check(question, text)
        text = fold_width(text)
        self._chars(text)
        n = len(text)
        closes = self._punct_after_text(text)
        new = tuple.__new__
        with gc_paused():  # a megabyte is half a million acyclic records: nothing for the collector
            hits = self._hits(question, text)
            plain = map(self._plain.__getitem__, text)
            steps = list(map(new, repeat(Step), map(tuple.__add__, zip(range(1, n + 1)), plain)))
        if reference is None:
            closing = self._closing
            for t in closes:
                steps[t] = new(Step, (t + 1, *closing[text[t]]))
            for h in hits:
                steps[h.step - 1] = self._step(h.step - 1, text[h.step - 1], 1.0, 0, h)
            return steps
        reference = fold_width(reference)
        chi = {t: 0.0 for t, (a, b) in enumerate(zip(text, reference)) if a != b}
        chi.update(dict.fromkeys(range(len(reference), n), 0.0))  # past the reference's end: no match
        P = dict.fromkeys(closes, 1)
        by_start = {h.step - 1: h for h in hits}
        for t in chi | P | by_start:
            steps[t] = self._step(t, text[t], chi.get(t, 1.0), P.get(t, 0), by_start.get(t))
        return steps

    def _step(self, t: int, a: str, chi: float, P: int, h: HitScore | None) -> Step:
        # one step of the table policy that is not plain: a hit, closing punctuation or chi = 0
        Lh, Lp, cost = self._by_char[a]
        if h is None:
            return tuple.__new__(Step, (t + 1, Lh, Lp, a, "-", 0, 0.0, 0.0, 0.0, 0.0, cost, chi, P, False,
                                        self._R(chi, 0.0, cost, P)))
        ler = self.params.eta2 * h.delta
        return tuple.__new__(Step, (t + 1, Lh, Lp, a, h.seg, h.len, h.idf, h.sim, h.delta, ler, cost, chi, P, h.dup,
                                    self._R(chi, ler, cost, P)))

    def reference_steps(self, question: str, text: str, reference: str | None = None) -> Iterator[Step]:
        """Yield one `Step` per character, deciding and matching character by character (any policy)."""
        self._check(question, text)
        text = fold_width(text)
        reference = fold_width(reference) if reference is not None else None
        p, m, idf = self.params, self.matcher, self.engine.idf
        ctx = self.context(question, text)
        seen: set[str] = set()
        covered = 0
        for t, a in enumerate(text):
            Lh, Lp = self.policy.decide(text[max(0, t - 6):t], a)
            hit = m.longest_suffix_hit_with_cap(text, t, self.U, Lp) if t >= covered else None
            if hit is not None:
                covered = hit.end
                sim = ctx.sim(hit.start, hit.end, hit.term)
                w = idf(hit.term, self.state)
                dup = hit.term in seen
                seen.add(hit.term)
                delta = self._delta(sim, w, self.general(hit.term), dup)
                seg, n = hit.form, len(hit.form)
            else:
                sim = w = delta = 0.0
                seg, n, dup = "-", 0, False
            len_cost = self._len_cost(Lh, Lp)
            chi = 1.0 if reference is None else float(t < len(reference) and reference[t] == a)
            P = int(is_punct(a) and t > 0 and not is_punct(text[t - 1]))
            ler = p.eta2 * delta
            R = self._R(chi, ler, len_cost, P)
            yield Step(t + 1, Lh, Lp, a, seg, n, w, sim, delta, ler, len_cost, chi, P, dup, R)

    def score(self, question: str, text: str, reference: str | None = None) -> list[Step]:
        """Return every step of `text`."""
        self._check(question, text)
        if self.table:
            return self._table_steps(question, text, reference)
        with gc_paused():
            return list(self.reference_steps(question, text, reference))

    def hit_scores(self, steps: list[Step]) -> list[HitScore]:
        """Return the hits of scored steps with their canonical term and whether it is general."""
        m = self.matcher
        out = []
        for s in steps:
            if s.len:
                term = m.lookup(fold_width(s.seg)) or s.seg
                out.append(HitScore(s.step, s.seg, term, s.len, s.idf, s.sim, self.general(term), s.dup, s.delta))
        return out

    def summary(self, question: str, text: str, reference: str | None = None) -> Summary:
        """Return the totals and hits of `text` without per-character records (same numbers as `score`)."""
        if not self.table:
            steps = self.score(question, text, reference)
            return Summary(totals(steps), self.hit_scores(steps))
        self._check(question, text)
        text = fold_width(text)
        p = self.params
        with gc_paused():  # acyclic hit records, as in `_table_steps`
            out = self._hits(question, text)
        ler = sum(p.eta2 * h.delta for h in out)
        # per-character terms by character: the table policy decides from the character alone
        self._chars(text)
        cost = sum(map(self._cost_of.__getitem__, text))  # in text order, as `totals` sums the steps
        n_P = len(self._punct_after_text(text))
        chi = float(len(text)) if reference is None else float(sum(map(operator.eq, text, fold_width(reference))))
        reward = p.base * len(text) + p.eta1 * chi + ler - cost + p.rho * n_P
        return Summary({"reward_total": reward, "ler_total": ler, "len_cost_total": cost,
                        "hits": float(len({h.seg for h in out}))}, out)


_CLOSES = re.compile("(?<=0)1")  # in the punctuation string: a "1" right after a "0"




class _Zero:
    def sim(self, start: int, end: int, term: str) -> float:
        return 0.0

    def sims(self, hits: list[tuple[int, str, str]]) -> list[float]:
        return [0.0] * len(hits)


def totals(steps: list[Step]) -> dict[str, float]:
    """Return the reward, lexical reward and length-cost totals and the distinct terms hit."""
    return {"reward_total": sum(s.R for s in steps), "ler_total": sum(s.ler for s in steps),
            "len_cost_total": sum(s.len_cost for s in steps),
            "hits": float(len({s.seg for s in steps if s.len}))}
