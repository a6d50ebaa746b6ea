"""Word non-compliance: strings within one edit of a catalog term that are not terms (神经酸酶).

A string s of the text, overlapping no catalog hit, is a near-miss of term t when all hold:

- s is one edit (substitution, deletion, insertion) from t, s has >= 3 characters, and s is
  neither a catalog form nor ordinary text: not a sequence of dictionary words of two or more
  characters each (面部潮红 = 面部 + 潮红), and not a dictionary word at least as frequent as t
  (of two spellings the rarer is the typo: 阿斯匹林, 28 in the list, is one of 阿司匹林, 47);
- the edit is inside t: a character dropped or added at either end is a shorter or longer
  word (头孢哌酮 next to 头孢哌酮钠), not a typo; a character replaced at an end counts only
  when that character does not form a dictionary word with its neighbour outside s
  (运动负荷试验 holds 动负荷试验, one edit from 水负荷试验, but 运动 is a word);
- a character replaced at an end counts only when the rest of s is not a word itself
  (肥大细胞等 is 肥大细胞 + 等, not a typo of 肥大细胞瘤);
- for a 3-character s: the edit is a substitution, t is the only 3-character term it is one
  substitution from, and neither two-character half of s is a word (unambiguous:
  3-character strings have many neighbours; 活动后 is 活动 + 后, not a typo of 活动桥).

Correctly spelled catalog terms are never near-misses: they are hits, and hits are masked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from .catalog import is_punct
from .policy import FUNCTION_CHARS

MIN_LEN = 3


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


def edit_position(s: str, t: str) -> int:
    """Return where the single edit turning t into s is (index into the longer string; -1 if none)."""
    if len(s) == len(t):
        diff = [i for i, (x, y) in enumerate(zip(s, t)) if x != y]
        return diff[0] if len(diff) == 1 else -1
    short, long_ = (s, t) if len(s) < len(t) else (t, s)
    for i in range(len(long_)):
        if long_[:i] + long_[i + 1:] == short:
            return i
    return -1


class NearMissIndex:
    """Symmetric-deletion index over catalog terms of >= MIN_LEN characters."""

    def __init__(self, terms: Iterable[str], min_len: int = MIN_LEN,
                 count: Callable[[str], float] | None = None, freq: Callable[[str], float] | None = None,
                 segment: Callable[[str], list[str]] | None = None) -> None:
        self.forms = set(terms)
        self.terms = {t for t in self.forms if len(t) >= min_len}
        self._by_key: dict[str, set[str]] = {}
        for t in self.terms:
            for k in (t, *_deletions(t)):
                self._by_key.setdefault(k, set()).add(t)
        self.min_len = min_len
        self.max_len = max((len(t) for t in self.terms), default=0) + 1
        self.count = count or (lambda s: 0.0)
        self.freq = freq or self.count
        self.segment = segment

    def is_word(self, s: str) -> bool:
        """Return whether s is a dictionary word."""
        return self.count(s) > 0

    def _known(self, s: str) -> bool:
        return s in self.forms or self.is_word(s)

    def _ordinary(self, s: str) -> bool:
        # a run of dictionary words of two or more characters each (one word: see the frequency rule)
        if self.segment is None:
            return False
        words = self.segment(s)
        return len(words) > 1 and all(len(w) >= 2 for w in words)

    def candidates(self, s: str) -> list[str]:
        """Return the terms s is one edit from (s itself not being a term), sorted."""
        if s in self.terms:
            return []
        found = set()
        for k in (s, *_deletions(s)):
            for t in self._by_key.get(k, ()):
                if t != s and within_one_edit(s, t):
                    found.add(t)
        return sorted(found)

    def near(self, s: str, before: str = "", after: str = "") -> str | None:
        """Return the term s is a near-miss of, given the characters just before and after it, or None."""
        if len(s) < self.min_len or self._ordinary(s):
            return None
        for t in self.candidates(s):
            if len(s) == 3 and len(t) != 3:
                continue
            if self.is_word(s) and self.count(s) >= self.freq(t):
                continue  # a word at least as common as the term: the rarer spelling is the typo
            i = edit_position(s, t)
            if len(s) != len(t) and i in (0, len(max(s, t, key=len)) - 1):
                continue  # a character dropped or added at an end: a shorter or longer word
            if len(s) == len(t) and i in (0, len(s) - 1) and s[i] in FUNCTION_CHARS:
                continue  # a function character at an end is grammar (和血钠 is 和 + 血钠)
            if len(s) == len(t) and i == 0 and (self._known(s[1:]) or before and self.is_word(before + s[0])):
                continue  # the replaced first character belongs to the word before, or begins s's own
            if len(s) == len(t) and i == len(s) - 1 and (self._known(s[:-1]) or after and self.is_word(s[-1] + after)):
                continue
            if len(s) == 3 and (self._known(s[:2]) or self._known(s[1:]) or {s[0], s[-1]} & FUNCTION_CHARS):
                continue  # a word and a character: ordinary text more often than a typo
            if len(s) == 3 and sum(len(c) == 3 and len(s) == len(c) for c in self.candidates(s)) > 1:
                return None  # ambiguous among 3-character terms
            return t
        return None

    def find(self, text: str, covered: Iterable[tuple[int, int]] = (),
             is_term: Callable[[str], object] | None = None) -> list[tuple[int, str, str]]:
        """Return (start, string, term) near-misses in `text` that overlap no span in `covered`."""
        mask = bytearray(len(text))
        for a, b in covered:
            mask[a:b] = b"\x01" * (b - a)
        out, i = [], 0
        while i < len(text):
            found = None
            for n in range(min(self.max_len, len(text) - i), self.min_len - 1, -1):
                s = text[i:i + n]
                if any(mask[i:i + n]) or any(is_punct(ch) for ch in s) or (is_term and is_term(s)):
                    continue
                t = self.near(s, text[i - 1] if i else "", text[i + n] if i + n < len(text) else "")
                if t is not None:
                    found = (i, s, t)
                    break
            if found:
                out.append(found)
                i += len(found[1])
            else:
                i += 1
        return out
