"""PubGrub's terms and incompatibilities: the data the solver and its explanation share."""

from __future__ import annotations

from typing import Any

ROOT = "$root"


class Incompatibility:
    """Terms {package: (mask, allows_unselected)} that must not all hold, and why."""

    __slots__ = ("terms", "kind", "causes", "info")

    def __init__(self, terms: dict[str, tuple[int, bool]], kind: str, causes: tuple = (), info: Any = None):
        self.terms, self.kind, self.causes, self.info = terms, kind, causes, info


def is_failure(inc: Incompatibility) -> bool:
    """Tell whether an incompatibility says that the root itself cannot be selected."""
    return not inc.terms or (list(inc.terms) == [ROOT] and not inc.terms[ROOT][1])


def merge(terms: dict[str, tuple[int, bool]], pkg: str, t: tuple[int, bool]) -> None:
    """Intersect term `t` into `terms[pkg]`."""
    old = terms.get(pkg)
    terms[pkg] = t if old is None else (old[0] & t[0], old[1] and t[1])
