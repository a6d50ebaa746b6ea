"""Word non-compliance: strings within one edit of a catalog term that are misspellings of it (神经酸酶).

A string s of the text, cutting no catalog hit (it may hold whole ones), is a near-miss of a domain term t (not a
general word: a misspelt connective is no domain error) when all of these hold:

- s is one edit (substitution, deletion, insertion) from t and has >= 3 characters;
- s is spelled correctly as something else: not a catalog form, not a dictionary word, however
  rare (阿斯匹林 and 喹诺酮 are words), not a run of dictionary words of two or more characters
  (面部潮红 = 面部 + 潮红), and not a run of words with at most one single character that is at
  more probable than t by the frequency list (免疫力低 = 免疫力 + 低 is more common text than
  免疫力降低);
- the edit is a plausible slip: the characters it changes are Chinese characters (a letter or
  digit names another thing: 血栓素A2, not 血栓素B2); it does not put a function character in
  (镁的缺乏, 动脉被血: grammar); a substitution puts a character that sounds like the right one
  (pinyin input: 胆固纯 for 胆固醇; `sounds.py`), so 解痉止痛 is not a typo of 解热止痛;
- the edit does not turn a word of t into another dictionary word at least as common: the word
  of s holding the edit is then a variant spelling or another word (瑞氏综合征 against the
  catalog's 瑞氏综合症: 综合征 is the commoner spelling; 尿白蛋白 = 尿 + 白蛋白), while the
  rarer spelling is still a typo (肠易激综合症 against 肠易激综合征);
- the edit is inside t: a character dropped or added at either end is a shorter or longer
  word (头孢哌酮 next to 头孢哌酮钠); a character replaced at an end counts only when it does not
  form a dictionary word with its neighbour outside s (运动负荷试验 holds 动负荷试验, one edit
  from 水负荷试验, but 运动 is a word), and the rest of s is not a word itself (肥大细胞等 is
  肥大细胞 + 等, not a typo of 肥大细胞瘤);
- for a 3-character s: t is the only 3-character term that s is such a substitution from, and
  neither two-character half of s is a word (活动后 is 活动 + 后, not a typo of 活动桥).

Correctly spelled catalog terms are never near-misses: they are hits, and hits are masked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from .catalog import is_punct
from .policy import FUNCTION_CHARS
from .sounds import sound_alike

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


def is_hanzi(ch: str) -> bool:
    """Return whether `ch` is a CJK unified ideograph (basic block, extension A or beyond, compatibility)."""
    return "\u3400" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff" or "\U00020000" <= ch <= "\U0003134f"


VARIANT_MIN = 3  # term pairs that must spell one slot both ways before two characters count as variants


def variant_pairs(forms: Iterable[str], min_pairs: int = VARIANT_MIN) -> frozenset[tuple[str, str]]:
    """Return the character pairs (a, b), a < b, that `min_pairs` or more pairs of forms differ by alone.

    When the lexicon itself spells the same slot both ways in several terms (紧张型头痛 and
    紧张性头痛 style: 型/性; 综合征/综合症), a text using either spelling is not misspelt.
    """
    slots: dict[str, set[str]] = {}
    for f in forms:
        if len(f) >= MIN_LEN:
            for i in range(len(f)):
                slots.setdefault(f[:i] + "\0" + f[i + 1:], set()).add(f[i])
    pairs: dict[tuple[str, str], int] = {}
    for chars in slots.values():
        if len(chars) > 1:
            cs = sorted(chars)
            for j, a in enumerate(cs):
                for b in cs[j + 1:]:
                    pairs[(a, b)] = pairs.get((a, b), 0) + 1
    return frozenset(p for p, n in pairs.items() if n >= min_pairs)


def _word_at(words: list[str], char: int = -1, gap: int = -1) -> str:
    # the word of a segmentation that holds character `char`, or that spans the gap before character `gap`
    a = 0
    for w in words:
        b = a + len(w)
        if (a <= char < b) or (a < gap < b):
            return w
        a = b
    return ""


class NearMissIndex:
    """Symmetric-deletion index over catalog terms of >= MIN_LEN characters.

    `forms` are every catalog surface form (known spellings); `targets` the forms a string may be
    a near-miss of (default: all forms; the KPI passes the domain ones). `count` is a word's
    dictionary count (0 for a non-word), `freq` a string's count or its segmentation estimate,
    `segment` the most probable split into dictionary words, `alike` whether two characters
    sound alike (pinyin, by default).
    """

    def __init__(self, forms: Iterable[str], min_len: int = MIN_LEN,
                 count: Callable[[str], float] | None = None, freq: Callable[[str], float] | None = None,
                 segment: Callable[[str], list[str]] | None = None, targets: Iterable[str] | None = None,
                 alike: Callable[[str, str], bool] = sound_alike) -> None:
        self.forms = set(forms)
        self.terms = {t for t in (self.forms if targets is None else set(targets)) if len(t) >= min_len}
        self._by_key: dict[str, set[str]] = {}
        for t in self.terms:
            for k in (t, *_deletions(t)):
                self._by_key.setdefault(k, set()).add(t)
        self.min_len = min_len
        self.max_len = max((len(t) for t in self.terms), default=0) + 1
        self.count = count or (lambda s: 0.0)
        self.freq = freq or self.count
        self.segment = segment
        self.alike = alike
        self.variants = variant_pairs(self.forms)

    def is_word(self, s: str) -> bool:
        """Return whether s is a dictionary word."""
        return self.count(s) > 0

    def _known(self, s: str) -> bool:
        return s in self.forms or self.is_word(s)

    def _ordinary(self, s: str) -> bool:
        # a run of dictionary words of two or more characters each (one word: see `near`)
        if self.segment is None:
            return False
        words = self.segment(s)
        return len(words) > 1 and all(len(w) >= 2 for w in words)

    def _commoner_text(self, s: str, t: str) -> bool:
        # words with at most one single character, and more probable than the term
        if self.segment is None:
            return False
        words = self.segment(s)
        return (sum(len(w) == 1 for w in words) <= 1 and all(self.is_word(w) for w in words)
                and self.freq(s) > self.freq(t))

    def _other_spelling(self, s: str, t: str, i: int) -> bool:
        # whether the edit turns t's word there into another correct spelling: a dictionary word of
        # s at least as common (when both are dictionary words, the rarer spelling is the typo), or
        # else a character pair the lexicon itself uses both ways
        if self.segment is not None:
            ss, st = self.segment(s), self.segment(t)
            if len(s) == len(t):
                ws, wt = _word_at(ss, char=i), _word_at(st, char=i)
            elif len(s) > len(t):  # a character inserted at s[i]
                ws, wt = _word_at(ss, char=i), _word_at(st, gap=i)
            else:  # t[i] dropped
                ws, wt = _word_at(ss, gap=i), _word_at(st, char=i)
            if len(ws) >= 2 and len(wt) >= 2 and self.is_word(ws) and self.is_word(wt):
                return self.count(ws) >= self.count(wt)
        return len(s) == len(t) and tuple(sorted((s[i], t[i]))) in self.variants

    def _slip(self, s: str, t: str, i: int) -> bool:
        # the edit is a plausible slip of the keys: Chinese characters, no function character
        # put in, and a substituted character that sounds like the right one
        if len(s) == len(t):
            return is_hanzi(s[i]) and is_hanzi(t[i]) and s[i] not in FUNCTION_CHARS and self.alike(s[i], t[i])
        if len(s) > len(t):
            return is_hanzi(s[i]) and s[i] not in FUNCTION_CHARS
        return is_hanzi(t[i])

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

    def near(self, s: str, before: str = "", after: str = "", holds_hit: bool = False) -> str | None:
        """Return the term s is a near-miss of, given the characters just before and after it, or None.

        `holds_hit`: s holds a whole catalog hit; then only a substituted character is a slip
        (a character added or dropped next to a correct term changes the phrase: 肾小动脉硬化).
        """
        if len(s) < self.min_len or self._known(s) or self._ordinary(s):
            return None
        slips = []
        for t in self.candidates(s):
            if (len(s) == 3 or holds_hit) and len(t) != len(s):
                continue
            i = edit_position(s, t)
            if not self._slip(s, t, i):
                continue
            if len(s) != len(t) and i in (0, len(max(s, t, key=len)) - 1):
                continue  # a character dropped or added at an end: a shorter or longer word
            if len(s) == len(t) and i == 0 and (self._known(s[1:]) or before and self.is_word(before + s[0])):
                continue  # the replaced first character belongs to the word before, or begins s's own
            if len(s) == len(t) and i == len(s) - 1 and (self._known(s[:-1]) or after and self.is_word(s[-1] + after)):
                continue
            if len(s) == 3 and (self._known(s[:2]) or self._known(s[1:])):
                continue  # a word and a character: ordinary text more often than a typo
            if self._other_spelling(s, t, i) or self._commoner_text(s, t):
                continue
            slips.append(t)
        if len(s) == 3 and len(slips) > 1:
            return None  # ambiguous among 3-character terms
        return slips[0] if slips else None

    def find(self, text: str, covered: Iterable[tuple[int, int]] = (),
             is_term: Callable[[str], object] | None = None) -> list[tuple[int, str, str]]:
        """Return (start, string, term) near-misses in `text` that cut no span of `covered` (the hits).

        A near-miss may hold whole hits (促甲状线激素 holds the term 激素) but never part of one.
        """
        cut = bytearray(len(text) + 1)  # cut[k]: characters k-1 and k lie in one hit
        mask = bytearray(len(text))
        for a, b in covered:
            cut[a + 1:b] = b"\x01" * (b - a - 1)
            mask[a:b] = b"\x01" * (b - a)
        out, i = [], 0
        while i < len(text):
            found = None
            for n in range(min(self.max_len, len(text) - i), self.min_len - 1, -1):
                s = text[i:i + n]
                if cut[i] or cut[i + n] or any(is_punct(ch) for ch in s) or (is_term and is_term(s)):
                    continue
                t = self.near(s, text[i - 1] if i else "", text[i + n] if i + n < len(text) else "",
                              holds_hit=any(mask[i:i + n]))
                if t is not None:
                    found = (i, s, t)
                    break
            if found:
                out.append(found)
                i += len(found[1])
            else:
                i += 1
        return out
