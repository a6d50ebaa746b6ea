"""IDF / Zipf weights from a real word-frequency list, normalized to [0, 1].

The default list is the dictionary shipped inside the `jieba` distribution (349,046 words,
60,101,967 counts, MIT licence); it is read from disk, jieba itself is never imported.
A phrase that is not a dictionary word gets the frequency of its most probable segmentation
into dictionary words (the estimate jieba's own `suggest_freq` uses), so 是一种 = 是 + 一种
is frequent and down-weighted while 神经氨酸酶 is rare.

    idf(seg) = c * clip((ln T - ln(1 + f(seg))) / ln T, 0, 1) + phi_idf(seg)   clipped again to [0, 1]

where T is the list's total count, phi_idf the sum of promoted Idx atoms on feature ``idf``
and c the ceiling (operator parameter ``flexattn/idf_ceiling``, default 0.9): a rare term
weighs 0.9, as in the design's worked numbers, which leaves room for a package to boost it.
"""

from __future__ import annotations

import importlib.util
import math
from functools import lru_cache
from pathlib import Path
from typing import Any

from mdqcore.errors import DocumentError, Problem

from .catalog import Catalog

DEFAULT_CEILING = 0.9


def jieba_dict_path() -> Path:
    """Return the path of jieba's dict.txt without importing jieba."""
    spec = importlib.util.find_spec("jieba")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("the frequency list comes from the `jieba` distribution: pip install jieba")
    return Path(spec.origin).parent / "dict.txt"


class FrequencyList:
    """Word -> count, with a segmentation estimate for phrases that are not words."""

    def __init__(self, counts: dict[str, int], source: str = "frequencies") -> None:
        if not counts:
            raise DocumentError([Problem("the frequency list is empty", "$")], source=source)
        self.counts = counts
        self.total = sum(counts.values())
        self.log_total = math.log(self.total)
        self.max_word = max(len(w) for w in counts)
        self.source = source

    @classmethod
    def load(cls, path: str | Path | None = None) -> FrequencyList:
        """Read a whitespace-separated `word count [tag]` file (jieba's dict.txt by default)."""
        p = Path(path) if path is not None else jieba_dict_path()
        counts: dict[str, int] = {}
        with p.open(encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                parts = line.split()
                if not parts:
                    continue
                if len(parts) < 2 or not parts[1].isdigit():
                    raise DocumentError([Problem(f"expected 'word count', got {line.strip()!r}", f"line {n}")],
                                        source=str(p))
                counts[parts[0]] = int(parts[1])
        return cls(counts, str(p))

    def freq(self, seg: str) -> float:
        """Return the count of a word, or the estimated count of a phrase (0 for nothing known)."""
        c = self.counts.get(seg)
        if c is not None:
            return float(c)
        return self._estimate(seg)

    @lru_cache(maxsize=65536)  # noqa: B019 - lists live for the whole process
    def _estimate(self, seg: str) -> float:
        # best[i] = max log-probability of seg[:i] segmented into words; unknown characters count 1
        n, counts, lt = len(seg), self.counts, self.log_total
        best = [0.0] + [-math.inf] * n
        for i in range(1, n + 1):
            for j in range(max(0, i - self.max_word), i):
                w = seg[j:i]
                c = counts.get(w, 1 if i - j == 1 else 0)
                if c and best[j] > -math.inf:
                    best[i] = max(best[i], best[j] + math.log(c) - lt)
        return math.exp(best[n] + lt) if n > 1 else float(counts.get(seg, 0))


    def segment(self, run: str) -> list[str]:
        """Return the most probable split of `run` into dictionary words (an unknown character stands alone)."""
        n, counts, lt = len(run), self.counts, self.log_total
        best = [0.0] + [-math.inf] * n
        back = [0] * (n + 1)
        for i in range(1, n + 1):
            for j in range(max(0, i - self.max_word), i):
                c = counts.get(run[j:i], 1 if i - j == 1 else 0)
                if c and best[j] + math.log(c) - lt > best[i]:
                    best[i], back[i] = best[j] + math.log(c) - lt, j
        out, i = [], n
        while i > 0:
            out.append(run[back[i]:i])
            i = back[i]
        return out[::-1]


class IdfWeights:
    """Normalized IDF/Zipf weights for catalog terms, with per-term overrides from the control state."""

    def __init__(self, freqs: FrequencyList, catalog: Catalog | None = None) -> None:
        self.freqs = freqs
        self._catalog_freq = {t: e.freq for t, e in (catalog.entries.items() if catalog else ()) if e.freq is not None}
        self._base: dict[str, float] = {}

    def base(self, seg: str) -> float:
        """Return the weight from frequencies alone."""
        w = self._base.get(seg)
        if w is None:
            f = self._catalog_freq.get(seg)
            f = self.freqs.freq(seg) if f is None else f
            lt = self.freqs.log_total
            w = self._base[seg] = min(1.0, max(0.0, (lt - math.log1p(f)) / lt))
        return w

    def __call__(self, seg: str, state: Any = None) -> float:
        """Return idf(seg) in [0, 1], including the ceiling and the promoted `idf` Idx atoms of `state`."""
        ceiling = state.param("Op", "flexattn", "idf_ceiling") if state is not None else None
        w = (DEFAULT_CEILING if ceiling is None else ceiling) * self.base(seg)
        if state is not None:
            w += state.index("idf", seg)
        return min(1.0, max(0.0, w))


@lru_cache(maxsize=1)
def default_frequencies() -> FrequencyList:
    """Return jieba's frequency list, read once per process."""
    return FrequencyList.load()
