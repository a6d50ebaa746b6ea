"""Which Chinese characters sound alike: the confusion set of pinyin input, for near-miss detection.

Most Chinese text is typed through pinyin, so most misspellings put a character of the same
syllable in place of the right one (胆固纯 for 胆固醇: both chun). Two characters sound alike
when any of their readings (heteronyms included: 卒 is zu and cu) share a syllable once tones
are dropped and the pairs that pinyin input methods treat as one are merged: initials z/zh,
c/ch, s/sh, n/l, finals an/ang, en/eng, in/ing. Readings come from pypinyin's character table
(loaded on first use, never at plugin import).
"""

from __future__ import annotations

from functools import lru_cache

# fuzzy pairs of pinyin input methods: the second spelling folds onto the first
_INITIALS = (("zh", "z"), ("ch", "c"), ("sh", "s"), ("l", "n"))
_FINALS = (("ang", "an"), ("eng", "en"), ("ing", "in"))


def fold(syllable: str) -> str:
    """Return a toneless pinyin syllable with the fuzzy initials and finals merged (zhang -> zan)."""
    for a, b in _INITIALS:
        if syllable.startswith(a):
            syllable = b + syllable[len(a):]
            break
    for a, b in _FINALS:
        if syllable.endswith(a):
            return syllable[: -len(a)] + b
    return syllable


@lru_cache(maxsize=65536)
def readings(ch: str) -> frozenset[str]:
    """Return the folded syllables of a character (empty for one pypinyin does not know)."""
    from pypinyin import Style, pinyin  # a 40k-character table: loaded on the first near-miss check only

    if len(ch) != 1:
        raise ValueError(f"readings() takes one character, got {ch!r}")
    out = pinyin(ch, style=Style.NORMAL, heteronym=True, errors=lambda _c: [""])
    return frozenset(fold(s) for s in out[0] if s and s.isascii() and s.isalpha())


def sound_alike(a: str, b: str) -> bool:
    """Return whether two characters share a syllable (tones ignored, fuzzy pairs merged)."""
    return bool(readings(a) & readings(b))
