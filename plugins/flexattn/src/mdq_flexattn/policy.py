"""L_h / L_p window policies. Phase A is a table; a learned policy implements the same `decide`.

The table widens L_p at a character that starts a catalog term (only as wide as the longest
term starting there, so long windows are not free), and tightens it on function words and
punctuation. Every number it uses is a length-policy parameter in the control state, so a Len
atom changes it live. L_h is one of {2,3,4,6}; L_p one of {3,...,8} up to `Lp_max` (default 8,
so that every catalog term can hit; a package setting it to 6 gives the original {3,4,5,6}).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from .catalog import is_punct

LH_SET = (2, 3, 4, 6)
LP_SET = (3, 4, 5, 6, 7, 8)
# characters and words that carry grammar, not domain meaning (also stripped from questions by the gates)
FUNCTION_WORDS = ("请问", "什么", "哪些", "怎么", "如何", "为什么", "是否", "一种", "请", "问", "是", "的", "了",
                  "吗", "呢", "吧", "和", "与", "及", "或", "在", "为", "其", "之", "这", "那", "也", "都", "就",
                  "而", "并", "被", "把", "对", "从", "以", "于", "将", "个", "种")
FUNCTION_CHARS = frozenset(w for w in FUNCTION_WORDS if len(w) == 1)

from .params import POLICY_PARAMS as PARAMS  # noqa: E402 - the `table` policy's parameters live there


class LengthPolicy(Protocol):
    """Chooses (L_h, L_p) for the character being emitted."""

    def decide(self, history: str, a: str) -> tuple[int, int]:
        """Return (L_h, L_p) for emitting `a` after `history`."""
        ...


def snap(value: float, allowed: Sequence[int]) -> int:
    """Return the smallest allowed length >= value (the largest one when none is)."""
    for n in allowed:
        if n >= value:
            return n
    return allowed[-1]


class TablePolicy:
    """Phase-A policy: a lookup by the class of the emitted character."""

    def __init__(self, state: Any = None, longest_from: dict[str, int] | None = None,
                 lh_set: Sequence[int] = LH_SET, lp_set: Sequence[int] = LP_SET) -> None:
        def p(name: str) -> float:
            v = state.param("Len", "table", name) if state is not None else None
            return PARAMS[name][1] if v is None else v

        self.lh_set, self.lp_set = tuple(sorted(lh_set)), tuple(sorted(lp_set))
        self.lh_term, self.lh_word, self.lh_punct = (snap(p(n), self.lh_set) for n in ("Lh_term", "Lh_word", "Lh_punct"))
        self.lp_min, self.lp_max = snap(p("Lp_min"), self.lp_set), snap(p("Lp_max"), self.lp_set)
        self.lp_min = min(self.lp_min, self.lp_max)
        self.longest_from = longest_from or {}

    def decide(self, history: str, a: str) -> tuple[int, int]:
        """Return (L_h, L_p) for emitting `a` after `history` (the table ignores the history)."""
        if is_punct(a):
            return self.lh_punct, self.lp_min
        longest = self.longest_from.get(a, 0)
        if longest:
            return self.lh_term, snap(min(max(longest, self.lp_min), self.lp_max), self.lp_set)
        return self.lh_word, self.lp_min


def table_policy(state: Any = None, longest_from: dict[str, int] | None = None) -> TablePolicy:
    """Factory registered as the `table` length policy."""
    return TablePolicy(state, longest_from)
