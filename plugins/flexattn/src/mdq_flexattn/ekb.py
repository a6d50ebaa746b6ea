"""The tiered knowledge buffer (EKB): cold (JSONL file) -> warm (memory) -> hot (bounded cache).

Look-ups try hot, then warm, then cold. A warm entry earns a hot place after `promote_hits`
hits; a hot entry holds a lease of `ttl` seconds, renewed by each hit, and is evicted when its
lease expires or, when the hot tier is full, by fewest hits (then oldest lease). Changes from
promoted Idx atoms go straight to the warm tier and invalidate the hot copy, so they are
visible to the very next look-up.

Cold file lines: {"feature": "idf", "seg": "奥司他韦", "weight": 0.9}.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from attrs import define

from mdqcore.errors import DocumentError, Problem

Key = tuple[str, str]


@define
class _Lease:
    value: float
    hits: int
    expires: float


@define
class EKBStats:
    """Counters for tuning tier sizes."""

    hot_hits: int = 0
    warm_hits: int = 0
    cold_hits: int = 0
    misses: int = 0
    promotions: int = 0
    evictions: int = 0


class EKB:
    """A three-tier buffer of index entries; see the module docstring."""

    def __init__(self, cold: str | Path | None = None, *, hot_size: int = 1024, ttl: float = 300.0,
                 promote_hits: int = 2, clock: Callable[[], float] = time.monotonic) -> None:
        if hot_size < 1:
            raise ValueError(f"hot_size must be >= 1, got {hot_size}")
        if ttl <= 0:
            raise ValueError(f"ttl must be > 0 seconds, got {ttl}")
        self.cold_path = Path(cold) if cold else None
        self.hot_size, self.ttl, self.promote_hits, self.clock = hot_size, ttl, promote_hits, clock
        self.hot: dict[Key, _Lease] = {}
        self.warm: dict[Key, float] = {}
        self._warm_hits: dict[Key, int] = {}
        self._cold: dict[Key, float] | None = None
        self.stats = EKBStats()
        self._lock = threading.Lock()

    def _load_cold(self) -> dict[Key, float]:
        if self._cold is None:
            self._cold = {}
            if self.cold_path is not None:
                problems = []
                for n, line in enumerate(self.cold_path.read_text(encoding="utf-8").splitlines(), 1):
                    if not line.strip():
                        continue
                    try:
                        d = json.loads(line)
                        self._cold[(str(d["feature"]), str(d["seg"]))] = float(d["weight"])
                    except (ValueError, KeyError, TypeError) as exc:
                        problems.append(Problem(f"line {n}: {type(exc).__name__}: {exc}", f"$[{n - 1}]"))
                if problems:
                    self._cold = None
                    raise DocumentError(problems, source=str(self.cold_path))
        return self._cold

    def lookup(self, feature: str, seg: str) -> float | None:
        """Return the weight of (feature, seg), or None if no tier has it."""
        key, now = (feature, seg), self.clock()
        with self._lock:
            lease = self.hot.get(key)
            if lease is not None:
                if lease.expires > now:
                    lease.hits += 1
                    lease.expires = now + self.ttl
                    self.stats.hot_hits += 1
                    return lease.value
                del self.hot[key]
                self.stats.evictions += 1
            if key in self.warm:
                self.stats.warm_hits += 1
                value = self.warm[key]
            else:
                cold = self._load_cold()
                if key not in cold:
                    self.stats.misses += 1
                    return None
                self.stats.cold_hits += 1
                value = self.warm[key] = cold[key]
            hits = self._warm_hits.get(key, 0) + 1
            self._warm_hits[key] = hits
            if hits >= self.promote_hits:
                self._promote(key, value, hits, now)
            return value

    def _promote(self, key: Key, value: float, hits: int, now: float) -> None:
        if len(self.hot) >= self.hot_size:
            expired = [k for k, v in self.hot.items() if v.expires <= now]
            victim = expired[0] if expired else min(self.hot, key=lambda k: (self.hot[k].hits, self.hot[k].expires))
            del self.hot[victim]
            self.stats.evictions += 1
        self.hot[key] = _Lease(value, hits, now + self.ttl)
        self.stats.promotions += 1

    def update(self, changes: Iterable[tuple[str, str, float | None]]) -> None:
        """Apply promoted index changes: (feature, seg, weight or None to remove); visible at once."""
        with self._lock:
            for feature, seg, weight in changes:
                key = (feature, seg)
                self.hot.pop(key, None)
                if weight is None:
                    self.warm.pop(key, None)
                    self._load_cold().pop(key, None)
                else:
                    self.warm[key] = weight

    def update_from_diff(self, diff: Iterable[tuple[tuple[str, ...], object, object]]) -> None:
        """Feed a promoted state diff: its ("index", feature, seg) entries."""
        self.update((p[1], p[2], new) for p, _old, new in diff if p[0] == "index")  # type: ignore[misc]

    def attach(self, runtime: object, cohort: str = "default") -> None:
        """Follow one cohort of a Runtime: every promoted or rolled-back Idx change lands here at once."""
        runtime.subscribe(lambda c, diff: self.update_from_diff(diff) if c == cohort else None)  # type: ignore[attr-defined]
