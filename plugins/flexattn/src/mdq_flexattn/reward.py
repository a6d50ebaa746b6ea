"""The lexical reward of SEEDS.md §2, one decision per character, every parameter from the control state.

    delta    = lambda_lex * 1[hit] * max(0, sim - tau) * idf(seg)      (x repeat for a term hit before)
    len_cost = lambda_h (L_h / L_h^max)^alpha_h + lambda_p (L_p / L_p^max)^alpha_p
    R_t      = base + eta1 * chi_soft + eta2 * delta - len_cost + rho * P_t

At step t the policy picks (L_h, L_p) for the emitted character a_t; from a_t the matcher
takes the longest catalog term along the true future characters with length in U and <= L_p.
Characters inside a hit do not start another one. sim is the semantic gate's score between
the question and the context so far (the text through the end of the hit). chi_soft is
1[a_t == chi_t] against the reference (1 when the text is the reference). P_t, the small
readability term, is 1 when a_t is punctuation closing a non-empty run (punctuation never hits).
L_h^max = max of the L_h set, L_p^max = max(U), as in the seed's worked example (0.10 * 6/8).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from attrs import asdict, frozen

from .catalog import is_punct
from .engine import Engine, default_engine
from .gates import DEFAULT_TAU, SemanticGate, check_tau
from .policy import LH_SET, TablePolicy

OPERATOR = "flexattn"
# parameter: (admissible interval, default) of the `flexattn` operator
PARAMS = {"lambda_lex": ((0.0, 1.0), 0.30), "eta1": ((0.0, 10.0), 0.10), "eta2": ((0.0, 10.0), 1.0),
          "base": ((-1.0, 1.0), 0.0), "lambda_h": ((0.0, 1.0), 0.08), "lambda_p": ((0.0, 1.0), 0.10),
          "alpha_h": ((0.1, 4.0), 1.0), "alpha_p": ((0.1, 4.0), 1.0), "repeat": ((0.0, 1.0), 0.0),
          "rho": ((0.0, 1.0), 0.01), "idf_ceiling": ((0.5, 1.0), 0.9)}


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
    tau: float

    @classmethod
    def of(cls, state: Any, gate: str = "bm25") -> Params:
        """Read every parameter from the control state (plugin defaults where it has none)."""
        vals = {}
        for name, (_bound, default) in PARAMS.items():
            v = state.param("Op", OPERATOR, name) if state is not None else None
            vals[name] = float(default if v is None else v)
        tau = state.param("Gate", gate, "tau") if state is not None else None
        return cls(**vals, tau=check_tau(DEFAULT_TAU if tau is None else tau))


class Scorer:
    """Scores texts step by step under one control state (take the state once per request)."""

    def __init__(self, state: Any = None, *, gate: str = "bm25", engine: Engine | None = None,
                 policy: Any = None) -> None:
        if gate not in ("bm25", "jaccard"):
            raise ValueError(f"unknown semantic gate {gate!r}: use 'bm25' or 'jaccard'")
        self.engine = engine or default_engine()
        self.state = state
        self.gate_name = gate
        self.gate = SemanticGate(gate, lambda: self.engine)
        self.params = Params.of(state, gate)
        self.matcher = self.engine.matchers.for_state(state)
        self.policy = policy or TablePolicy(state, self.matcher.longest_from)
        self.lh_max = max(getattr(self.policy, "lh_set", LH_SET))
        self.lp_max = self.matcher.U[-1]

    def steps(self, question: str, text: str, reference: str | None = None) -> Iterator[Step]:
        """Yield one `Step` per character of `text`."""
        p, m, idf = self.params, self.matcher, self.engine.idf
        seen: set[str] = set()
        covered = 0
        for t, a in enumerate(text):
            Lh, Lp = self.policy.decide(text[max(0, t - 6):t], a)
            hit = m.longest_suffix_hit_with_cap(text, t, m.U, Lp) if t >= covered else None
            if hit is not None:
                covered = hit.end
                sim = self.gate.score(question, text[:hit.end])
                w = idf(hit.term, self.state)
                dup = hit.term in seen
                seen.add(hit.term)
                delta = p.lambda_lex * max(0.0, sim - p.tau) * w * (p.repeat if dup else 1.0)
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
        if not isinstance(text, str) or not text:
            raise ValueError("text to score must be a non-empty string")
        return list(self.steps(question, text, reference))


def totals(steps: list[Step]) -> dict[str, float]:
    """Return the reward, lexical reward and length-cost totals and the distinct terms hit."""
    return {"reward_total": sum(s.R for s in steps), "ler_total": sum(s.ler for s in steps),
            "len_cost_total": sum(s.len_cost for s in steps),
            "hits": float(len({s.seg for s in steps if s.len}))}
