"""The index of available versions: {"packages": {NAME: {VERSION: {"requires": {DEP: RANGE}}}}}."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from attrs import field, frozen

from ..errors import DocumentError
from ..model.convert import load_file, structure
from ..model.types import Name, RangeStr, SemVerStr


@frozen
class Release:
    """One version of one package: what it requires."""

    requires: dict[Name, RangeStr] = field(factory=dict)


@frozen
class Index:
    """Available versions of every package and their requirements."""

    packages: dict[Name, dict[SemVerStr, Release]] = field(factory=dict)

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "index") -> Index:
        """Build an index from parsed JSON, raising DocumentError with `@ $.path` problems."""
        return structure(data, cls, source=source, error=DocumentError)

    @classmethod
    def load(cls, path: str | Path) -> Index:
        """Read an index file."""
        return load_file(path, cls, error=DocumentError)

    @classmethod
    def of(cls, packages: dict[str, dict[str, dict[str, str]]]) -> Index:
        """Build an index from plain {name: {version: {dep: range}}} (for code and tests)."""
        return cls.from_dict({"packages": {n: {v: {"requires": r} for v, r in vs.items()}
                                           for n, vs in packages.items()}})

    def requires(self, name: str, version: str) -> dict[str, str]:
        """Return the requirements of one release."""
        return self.packages[name][version].requires

    def digest(self) -> str:
        """Return a SHA-256 of the index's canonical JSON (a lock names the index it came from)."""
        data = {n: {v: dict(sorted(r.requires.items())) for v, r in sorted(vs.items())}
                for n, vs in sorted(self.packages.items())}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
