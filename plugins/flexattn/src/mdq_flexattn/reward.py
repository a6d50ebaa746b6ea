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
L_h^max = max of the L_h set, L_p^max = max(U), as in the seed's worked example (0.10 * 6/8).
U is the set of lengths n whose operator parameter `U<n>` is on (>= 0.5).

Two ways to score, one result: `steps` yields one `Step` per character (the reference, and
what the step log records); `summary` computes the totals and the hits without a Python loop
over characters (one automaton scan over the reachable lengths, per-character costs by
character class), for the table policy whose cap never cuts a term short. Both are linear in
the text; the tests check they agree.
"""

from __future__ import annotations

import operator
from collections import Counter
from collections.abc import Iterator
from typing import Any

from attrs import asdict, frozen

from .catalog import DEFAULT_U, MAX_TERM_LEN, check_lengths, fold_width, is_punct
from .engine import Engine, default_engine
from .gates import DEFAULT_TAU, GATES, HitContext, QuestionProfile, SemanticGate, check_tau
from .policy import LH_SET, TablePolicy

from .params import OPERATOR, PARAMS  # noqa: E402,F401 - re-exported: the operator's parameters live there


@frozen
class Step:
    """One step of the structured log (field names as in the seed)."""

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
        return asdict(self)


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


@frozen
class HitScore:
    """One lexical hit of an answer with its relevance and reward."""

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
        return asdict(self)


@frozen
class Summary:
    """An answer's totals (as `totals(steps)`) and its hits, from `Scorer.summary`."""

    totals: dict[str, float]
    hits: list[HitScore]


class Scorer:
    """Scores texts under one control state (take the state once per request).

    Public entry points: `score` / `steps` (per character), `summary` (totals and hits),
    `hit_scores` (the hits of `steps` without the per-character records).
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
        self._char_cost: dict[str, float] = {}
        self._punct_of: dict[int, str] = {}

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

    def steps(self, question: str, text: str, reference: str | None = None) -> Iterator[Step]:
        """Yield one `Step` per character of `text`."""
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
            len_cost = p.lambda_h * (Lh / self.lh_max) ** p.alpha_h + p.lambda_p * (Lp / self.lp_max) ** p.alpha_p
            chi = 1.0 if reference is None else float(t < len(reference) and reference[t] == a)
            P = int(is_punct(a) and t > 0 and not is_punct(text[t - 1]))
            ler = p.eta2 * delta
            R = p.base + p.eta1 * chi + ler - len_cost + p.rho * P
            yield Step(t + 1, Lh, Lp, a, seg, n, w, sim, delta, ler, len_cost, chi, P, dup, R)

    def score(self, question: str, text: str, reference: str | None = None) -> list[Step]:
        """Return every step of `text`."""
        self._check(question, text)
        return list(self.steps(question, text, reference))

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
        p, idf, state = self.params, self.engine.idf, self.state
        hits = self._scan(text)
        ctx = self.context(question, text, hits)
        seen: set[str] = set()
        out, ler = [], 0.0
        per_term: dict[str, tuple[float, bool]] = {}  # idf and generality depend on the term alone
        for start, form, term in hits:
            sim = ctx.sim(start, start + len(form), term)
            wg = per_term.get(term)
            if wg is None:
                wg = per_term[term] = (idf(term, state), self.general(term))
            w, g = wg
            dup = term in seen
            seen.add(term)
            delta = self._delta(sim, w, g, dup)
            ler += p.eta2 * delta
            out.append(HitScore(start + 1, form, term, len(form), w, sim, g, dup, delta))
        # per-character terms by character: the table policy decides from the character alone
        cost, by_char, P_of = 0.0, self._char_cost, self._punct_of
        for ch, k in Counter(text).items():
            c = by_char.get(ch)
            if c is None:  # once per character per scorer: the state, hence the table, is fixed
                Lh, Lp = self.policy.decide("", ch)
                c = by_char[ch] = p.lambda_h * (Lh / self.lh_max) ** p.alpha_h + p.lambda_p * (Lp / self.lp_max) ** p.alpha_p
                P_of[ord(ch)] = "1" if is_punct(ch) else "0"
            cost += k * c
        n_P = text.translate(P_of).count("01")  # punctuation right after a non-punctuation character
        chi = float(len(text)) if reference is None else float(sum(map(operator.eq, text, fold_width(reference))))
        reward = p.base * len(text) + p.eta1 * chi + ler - cost + p.rho * n_P
        return Summary({"reward_total": reward, "ler_total": ler, "len_cost_total": cost,
                        "hits": float(len({h.seg for h in out}))}, out)


class _Zero:
    def sim(self, start: int, end: int, term: str) -> float:
        return 0.0


def totals(steps: list[Step]) -> dict[str, float]:
    """Return the reward, lexical reward and length-cost totals and the distinct terms hit."""
    return {"reward_total": sum(s.R for s in steps), "ler_total": sum(s.ler for s in steps),
            "len_cost_total": sum(s.len_cost for s in steps),
            "hits": float(len({s.seg for s in steps if s.len}))}
