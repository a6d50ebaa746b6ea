"""The plugin's shared, read-only context: catalog, frequency list, IDF weights, matchers."""

from __future__ import annotations

import os
from functools import lru_cache

from .catalog import Catalog
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


@lru_cache(maxsize=1)
def default_engine() -> Engine:
    """Return the engine over $MDQ_FLEXATTN_CATALOG (else the medical starter catalog) and jieba's frequencies."""
    path = os.environ.get(CATALOG_ENV)
    catalog = Catalog.load(path) if path else Catalog.starter()
    return Engine(catalog, default_frequencies())
