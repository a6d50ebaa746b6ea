"""Aho-Corasick matching over the catalog (pyahocorasick).

The automaton holds every surface form whose length is in U; weights are never stored in it,
so a package that only changes weights needs no rebuild. Only promoted ``term`` atoms (new
terms) rebuild it, once per distinct term set (`MatcherCache`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import ahocorasick
from attrs import frozen

from .catalog import TERM_FEATURE, Catalog, check_lengths, is_punct


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


class Matcher:
    """Exact and longest-match look-ups of catalog terms in a text."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.U = catalog.U
        self._auto = ahocorasick.Automaton()
        for form, term in catalog.surface.items():
            if len(form) in self.U:
                self._auto.add_word(form, (len(form) - 1, term))  # a 2-tuple unpacks fastest in scan
        self._auto.make_automaton()
        self.max_len = self.U[-1]
        # the longest term starting with each character, so a policy can widen L_p only as far as needed
        self.longest_from: dict[str, int] = {}
        for form in catalog.surface:
            if len(form) in self.U:
                self.longest_from[form[0]] = max(self.longest_from.get(form[0], 0), len(form))

    def lookup(self, s: str) -> str | None:
        """Return the canonical term of an exact surface form, or None."""
        v = self._auto.get(s, None)
        return None if v is None else v[1]

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
            v = get(form, None)
            if v is not None:
                return Hit(pos, form, v[1])
        return None

    def scan(self, text: str) -> list[tuple[int, str]]:
        """Return (start, canonical term) of every leftmost-longest, non-overlapping hit in `text`."""
        return [(e - n, term) for e, (n, term) in self._auto.iter_long(text)]

    def hits(self, text: str) -> list[Hit]:
        """Return every leftmost-longest, non-overlapping hit as a `Hit`."""
        return [Hit(e - n, text[e - n:e + 1], term) for e, (n, term) in self._auto.iter_long(text)]

    def terms_in(self, text: str) -> set[str]:
        """Return the set of canonical terms occurring in `text` (for coverage)."""
        return {term for _e, (_n, term) in self._auto.iter_long(text)}


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
