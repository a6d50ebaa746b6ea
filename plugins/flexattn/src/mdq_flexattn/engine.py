"""The plugin's shared, read-only context: catalog, frequency list, IDF weights, matchers."""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import lru_cache

from .catalog import GENERAL, Catalog
from .gates import char_ngrams
from .idf import FrequencyList, IdfWeights, default_frequencies
from .matcher import MatcherCache

CATALOG_ENV = "MDQ_FLEXATTN_CATALOG"


class Engine:
    """Everything a scorer needs that does not live in the control state."""

    def __init__(self, catalog: Catalog, freqs: FrequencyList) -> None:
        self.catalog = catalog
        self.freqs = freqs
        self.idf = IdfWeights(freqs, catalog)
        self.matchers = MatcherCache(catalog)
        self._general: dict[tuple[int, float], Callable[[str], bool]] = {}
        self._by_bigram: dict[str, list[str]] | None = None

    def general(self, catalog: Catalog, floor: float) -> Callable[[str], bool]:
        """Return is_general(term): tagged `general` in `catalog`, or an IDF below `floor` (a frequent word)."""
        key = (id(catalog), floor)
        f = self._general.get(key)
        if f is None:
            if len(self._general) > 32:
                self._general.clear()
            cache: dict[str, bool] = {}
            base, tags = self.idf.base, catalog.tags

            def f(term: str) -> bool:
                g = cache.get(term)
                if g is None:
                    g = cache[term] = GENERAL in tags(term) or base(term) < floor
                return g

            self._general[key] = f
        return f

    def neighbours(self, seg: str) -> set[str]:
        """Return the catalog terms sharing a character bigram with `seg` (candidates for similarity)."""
        if self._by_bigram is None:
            index: dict[str, list[str]] = {}
            for t in self.catalog.entries:
                for g in set(char_ngrams(t)):
                    index.setdefault(g, []).append(t)
            self._by_bigram = index
        return {t for g in set(char_ngrams(seg)) for t in self._by_bigram.get(g, ())}


@lru_cache(maxsize=1)
def default_engine() -> Engine:
    """Return the engine over $MDQ_FLEXATTN_CATALOG (else the shipped default catalog) and jieba's frequencies."""
    path = os.environ.get(CATALOG_ENV)
    catalog = Catalog.load(path) if path else Catalog.default()
    return Engine(catalog, default_frequencies())
