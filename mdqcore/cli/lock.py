"""Lock files: the versions a resolution chose, per cohort, and a re-check against an index.

Only `mdq resolve --lock` writes them and only `mdq resolve --check-lock` reads them; the
runtime never does, which is why they live with the CLI.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..versions.index import Index
from ..versions.ranges import Range
from ..versions.resolver import Requirement

LOCK_VERSION = 1


def make_lock(index: Index, requirements: Sequence[Requirement], chosen: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
    """Return the JSON-ready lock for a resolution."""
    return {"lock_version": LOCK_VERSION, "index_sha256": index.digest(),
            "requirements": [str(r) for r in requirements],
            "cohorts": {c: dict(sorted(p.items())) for c, p in sorted(chosen.items())}}


def check_lock(lock: Mapping[str, Any], index: Index) -> list[str]:
    """Return every reason the lock no longer holds against `index` (empty: it holds)."""
    problems = []
    if lock.get("lock_version") != LOCK_VERSION:
        return [f"lock_version {lock.get('lock_version')!r} is not {LOCK_VERSION}; re-create the lock"]
    reqs = [Requirement.parse(r) for r in lock.get("requirements", [])]
    for cohort, pins in lock.get("cohorts", {}).items():
        own = {r.name for r in reqs if r.cohort == cohort}
        for r in reqs:
            if (r.cohort not in (None, cohort)) or (r.cohort is None and r.name in own):
                continue
            v = pins.get(r.name)
            if v is None or not Range.parse(r.range).contains(v):
                problems.append(f"[{cohort}] requirement {r.name}@{r.range} is not met by the lock ({v or 'absent'})")
        for name, v in pins.items():
            if v not in index.packages.get(name, {}):
                problems.append(f"[{cohort}] {name} {v} is locked but not in the index")
                continue
            for dep, rng in index.requires(name, v).items():
                dv = pins.get(dep)
                if dv is None or not Range.parse(rng).contains(dv):
                    problems.append(f"[{cohort}] {name} {v} depends on {dep} {rng}, locked at {dv or 'nothing'}")
    return problems
