"""Word non-compliance: strings within edit distance 1 of a catalog term that are not terms (神经酸酶)."""

from __future__ import annotations

from collections.abc import Iterable

from .catalog import is_punct

MIN_TERM_LEN = 4  # shorter terms have too many one-edit neighbours that are ordinary words (抑制剂 -> 抑制了)


def _deletions(s: str) -> set[str]:
    return {s[:i] + s[i + 1:] for i in range(len(s))}


def within_one_edit(a: str, b: str) -> bool:
    """Return whether Levenshtein(a, b) <= 1."""
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b)) <= 1
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return short in _deletions(long_)


class NearMissIndex:
    """Symmetric-deletion index over catalog terms of length >= MIN_TERM_LEN."""

    def __init__(self, terms: Iterable[str], min_len: int = MIN_TERM_LEN) -> None:
        self.terms = {t for t in terms if len(t) >= min_len}
        self._by_key: dict[str, set[str]] = {}
        for t in self.terms:
            for k in (t, *_deletions(t)):
                self._by_key.setdefault(k, set()).add(t)
        self.min_len = min_len
        self.max_len = max((len(t) for t in self.terms), default=0) + 1

    def near(self, s: str) -> str | None:
        """Return a term s is one edit away from (s itself not being a term), or None."""
        if s in self.terms:
            return None
        for k in (s, *_deletions(s)):
            for t in sorted(self._by_key.get(k, ())):
                if t != s and within_one_edit(s, t):
                    return t
        return None

    def find(self, text: str, covered: Iterable[tuple[int, int]] = (), is_term=None) -> list[tuple[int, str, str]]:
        """Return (start, string, term) near-misses in `text` that overlap no span in `covered`."""
        mask = bytearray(len(text))
        for a, b in covered:
            mask[a:b] = b"\x01" * (b - a)
        out, i = [], 0
        while i < len(text):
            found = None
            for n in range(min(self.max_len, len(text) - i), self.min_len - 2, -1):
                s = text[i:i + n]
                if any(mask[i:i + n]) or any(is_punct(ch) for ch in s) or (is_term and is_term(s)):
                    continue
                t = self.near(s)
                if t is not None:
                    found = (i, s, t)
                    break
            if found:
                out.append(found)
                i += len(found[1])
            else:
                i += 1
        return out
