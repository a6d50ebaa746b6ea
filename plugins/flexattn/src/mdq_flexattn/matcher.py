"""Aho-Corasick matching over the catalog (pyahocorasick).

The automaton holds every surface form of the catalog, whatever its length, so coverage and
near-miss checks see every term. The reward hits only lengths in U and <= the policy's cap:
`longest_suffix_hit_with_cap` checks them one by one, and `reach(lengths)` builds (once per
length set) an automaton of just those forms, whose leftmost-longest scan gives the same hits
as the per-character loop when the cap never binds (the table policy; see reward.py).
Weights are never stored in an automaton, so a package that only changes weights needs no
rebuild. Only promoted ``term`` atoms (new terms) rebuild, once per distinct term set.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import ahocorasick
from attrs import frozen

from .catalog import DEFAULT_U, TERM_FEATURE, Catalog, check_lengths, fold_width, is_punct


@frozen
class Hit:
    """A catalog term found in a text: where it starts, the surface form and its canonical term."""

    start: int
    form: str
    term: str

    @property
    def end(self) -> int:
        """One past the last character."""
        return self.start + len(self.form)


def _automaton(forms: Iterable[tuple[str, str]]) -> Any:
    auto = ahocorasick.Automaton()
    for form, term in forms:
        auto.add_word(form, (len(form) - 1, term))  # a 2-tuple unpacks fastest in scan
    auto.make_automaton()
    return auto


class Matcher:
    """Exact and longest-match look-ups of catalog terms in a text."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.U = DEFAULT_U
        self._auto = _automaton(catalog.surface.items())
        self.max_len = max(map(len, catalog.surface))
        self.lengths = frozenset(map(len, catalog.surface))
        self._reach: dict[tuple[int, ...], Any] = {}
        self._longest: dict[tuple[int, ...], dict[str, int]] = {}

    def lookup(self, s: str) -> str | None:
        """Return the canonical term of an exact surface form, or None."""
        v = self._auto.get(s, None)
        return None if v is None else v[1]

    def longest_from(self, U: Iterable[int] = DEFAULT_U) -> dict[str, int]:
        """Return {first character: length of the longest form starting with it} over forms with length in U."""
        key = check_lengths(U)
        out = self._longest.get(key)
        if out is None:
            out = {}
            for form in self.catalog.surface:
                if len(form) in key and out.get(form[0], 0) < len(form):
                    out[form[0]] = len(form)
            self._longest[key] = out
        return out

    def longest_suffix_hit_with_cap(self, text: str, pos: int, U: Iterable[int] | None = None,
                                    cap: int | None = None) -> Hit | None:
        """Return the longest catalog term starting at `pos` with length in U and <= cap, or None."""
        lengths = self.U if U is None else check_lengths(U)
        cap = self.max_len if cap is None else int(cap)
        if cap < 2:
            raise ValueError(f"cap must be >= 2 (single characters never hit), got {cap}")
        if not 0 <= pos < len(text):
            raise IndexError(f"pos {pos} is outside the text (length {len(text)})")
        if is_punct(text[pos]):
            return None
        get = self._auto.get
        for n in reversed(lengths):
            if n > cap or pos + n > len(text):
                continue
            form = text[pos:pos + n]
            v = get(fold_width(form), None)
            if v is not None:
                return Hit(pos, form, v[1])
        return None

    def reach(self, lengths: Iterable[int]) -> Any:
        """Return a pyahocorasick automaton of the forms whose length is in `lengths` (built once per set)."""
        key = check_lengths(lengths)
        if self.lengths.issubset(key):
            return self._auto  # every form is reachable: the full automaton (one in the CPU cache, not two)
        auto = self._reach.get(key)
        if auto is None:
            if len(self._reach) > 8:  # few distinct sets in one process; keep memory bounded
                self._reach.clear()
            auto = self._reach[key] = _automaton((f, t) for f, t in self.catalog.surface.items() if len(f) in key)
        return auto

    def scan(self, text: str) -> list[tuple[int, str]]:
        """Return (start, canonical term) of every leftmost-longest, non-overlapping hit in `text`."""
        return [(e - n, term) for e, (n, term) in self._auto.iter_long(fold_width(text))]

    def hits(self, text: str) -> list[Hit]:
        """Return every leftmost-longest, non-overlapping hit as a `Hit`."""
        return [Hit(e - n, text[e - n:e + 1], term) for e, (n, term) in self._auto.iter_long(fold_width(text))]

    def terms_in(self, text: str) -> set[str]:
        """Return the set of canonical terms occurring in `text` (for coverage)."""
        return {term for _e, (_n, term) in self._auto.iter_long(fold_width(text))}


class MatcherCache:
    """Matchers for the base catalog plus the term atoms a state has promoted, built once per term set."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._base = Matcher(catalog)
        self._cache: dict[frozenset[str], Matcher] = {}

    def for_state(self, state: Any) -> Matcher:
        """Return the matcher that sees the catalog as `state` has it (base terms + promoted term atoms)."""
        extra = {p[2]: v for p, v in state.data.items() if p[0] == "index" and p[1] == TERM_FEATURE} \
            if state is not None else {}
        key = frozenset(s for s, v in extra.items() if v > 0 and s not in self.catalog)
        if not key:
            return self._base
        m = self._cache.get(key)
        if m is None:
            if len(self._cache) > 16:  # a long-running process sees few distinct term sets; keep memory bounded
                self._cache.clear()
            m = self._cache[key] = Matcher(self.catalog.with_terms(dict.fromkeys(key, 1.0)))
        return m
