"""Dependency resolution with conflict-driven learning (PubGrub) and readable explanations.

PubGrub (Weizenbaum 2018; the solver of Dart's pub, uv and Cargo's experiments) keeps a
partial solution of decisions and derivations and a set of *incompatibilities*: sets of
terms that must not all hold. Unit propagation derives what must follow; on a conflict it
learns a new incompatibility by resolution, backjumps, and keeps the derivation tree, which
is what makes the final explanation a chain of reasons rather than "no solution".

Here every package has a finite, known list of versions, so a term's version set is a
bitmask over that list plus one flag for "the package is not selected at all": set algebra
is integer arithmetic. Sketch of the loop:

    add {not root}                      # root must be selected
    next = root
    while True:
        propagate(next)                 # derive; on conflict: learn, backjump, derive again
        next = decide()                 # newest admissible version of the most constrained package
        if next is None: return decisions
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from attrs import define, frozen

from ..errors import ResolutionImpossible
from .explain import Explainer
from .index import Index
from .ranges import Range, version_key
from .terms import ROOT, Incompatibility, is_failure, merge

_SAT, _CONTRA, _INCONC = 0, 1, 2


@frozen
class Requirement:
    """`name@range`, optionally limited to one cohort (gray group)."""

    name: str
    range: str
    cohort: str | None = None

    @classmethod
    def parse(cls, text: str) -> Requirement:
        """Parse `[COHORT:]NAME@RANGE` (RANGE defaults to `*`)."""
        cohort = None
        if ":" in text.split("@", 1)[0]:
            cohort, text = text.split(":", 1)
        name, _, rng = text.partition("@")
        name, rng = name.strip(), rng.strip() or "*"
        if not name:
            raise ValueError(f"requirement {text!r} has no name; write NAME@RANGE, e.g. mdq-gptq@^0.1")
        Range.parse(rng)
        return cls(name, rng, cohort.strip() if cohort else None)

    def __str__(self) -> str:
        return f"{self.cohort + ':' if self.cohort else ''}{self.name}@{self.range}"


@define
class _Assignment:
    package: str
    mask: int
    none: bool
    level: int
    index: int
    cause: Incompatibility | None  # None for a decision
    acc: tuple[int, bool]  # the package's term once this and every earlier assignment of it hold


class Resolver:
    """Resolve root requirements against an Index; see the module docstring."""

    def __init__(self, index: Index) -> None:
        self.index = index
        self.versions: dict[str, list[str]] = {n: sorted(vs, key=version_key) for n, vs in index.packages.items()}
        self.versions[ROOT] = ["0.0.0"]
        self._mask_cache: dict[tuple[str, str], int] = {}
        self.labels: dict[tuple[str, int], str] = {}

    # -- version sets ---------------------------------------------------------------------
    def full(self, pkg: str) -> int:
        """Mask of every known version of `pkg`."""
        return (1 << len(self.versions.get(pkg, ()))) - 1

    def mask_of(self, pkg: str, rng: str) -> int:
        """Mask of the versions of `pkg` inside range text `rng`."""
        key = (pkg, rng)
        m = self._mask_cache.get(key)
        if m is None:
            r = Range.parse(rng)
            m = sum(1 << i for i, v in enumerate(self.versions.get(pkg, ())) if r.contains_key(version_key(v)))
            self._mask_cache[key] = m
            self.labels.setdefault((pkg, m), rng)
        return m

    # -- the solver -------------------------------------------------------------------------
    def resolve(self, requirements: Iterable[Requirement | str]) -> dict[str, str]:
        """Return {name: version} satisfying every requirement, or raise ResolutionImpossible."""
        reqs = [Requirement.parse(r) if isinstance(r, str) else r for r in requirements]
        # each root requirement is its own constraint: two on one name must both hold
        self.root_requires: list[tuple[str, str]] = [(r.name, r.range) for r in reqs]
        self.assignments: list[_Assignment] = []
        self.by_pkg: dict[str, list[_Assignment]] = {}
        self.acc: dict[str, tuple[int, bool]] = {}
        self.decisions: dict[str, int] = {}
        self.pending: set[str] = set()  # selected (positive) but not yet decided
        self.incs: dict[str, list[Incompatibility]] = {}
        self._deps_added: set[tuple] = set()
        self._add(Incompatibility({ROOT: (0, True)}, "root"))
        nxt: str | None = ROOT
        while nxt is not None:
            self._propagate(nxt)
            nxt = self._decide()
        return {p: self.versions[p][i] for p, i in sorted(self.decisions.items()) if p != ROOT}

    def _add(self, inc: Incompatibility) -> None:
        for pkg in inc.terms:
            self.incs.setdefault(pkg, []).append(inc)

    def _relation(self, pkg: str, mask: int, none: bool) -> int:
        acc = self.acc.get(pkg)
        if acc is None:
            return _INCONC
        am, an = acc
        if not (am & ~mask) and (not an or none):
            return _SAT
        if not (am & mask) and not (an and none):
            return _CONTRA
        return _INCONC

    def _assign(self, pkg: str, mask: int, none: bool, cause: Incompatibility | None) -> None:
        am, an = self.acc.get(pkg, (self.full(pkg), True))
        self.acc[pkg] = (am & mask, an and none)
        a = _Assignment(pkg, mask, none, len(self.decisions), len(self.assignments), cause, self.acc[pkg])
        self.assignments.append(a)
        self.by_pkg.setdefault(pkg, []).append(a)
        if not (an and none) and pkg not in self.decisions:
            self.pending.add(pkg)

    def _propagate(self, start: str) -> None:
        changed = [start]
        while changed:
            pkg = changed.pop()
            for inc in reversed(self.incs.get(pkg, [])):
                result = self._propagate_one(inc)
                if result is _CONFLICT:
                    root_cause = self._resolve_conflict(inc)
                    changed.clear()
                    derived = self._propagate_one(root_cause)
                    assert isinstance(derived, str), "learned incompatibility must be almost satisfied"
                    changed.append(derived)
                    break
                if result is not None:
                    changed.append(result)

    def _propagate_one(self, inc: Incompatibility) -> Any:
        unsatisfied = None
        for pkg, (m, n) in inc.terms.items():
            rel = self._relation(pkg, m, n)
            if rel == _CONTRA:
                return None
            if rel == _INCONC:
                if unsatisfied is not None:
                    return None
                unsatisfied = pkg
        if unsatisfied is None:
            return _CONFLICT
        m, n = inc.terms[unsatisfied]
        self._assign(unsatisfied, self.full(unsatisfied) & ~m, not n, inc)
        return unsatisfied

    def _satisfier(self, pkg: str, mask: int, none: bool) -> _Assignment:
        """Return the earliest assignment after which the package's term satisfies (mask, none)."""
        return next(a for a in self.by_pkg[pkg] if not (a.acc[0] & ~mask) and (not a.acc[1] or none))

    def _resolve_conflict(self, inc: Incompatibility) -> Incompatibility:
        new = False
        while True:
            if is_failure(inc):
                raise ResolutionImpossible(Explainer(self).explain(inc), inc)
            recent_term = None
            recent: _Assignment | None = None
            difference: tuple[int, bool] | None = None
            prev_level = 0
            for pkg, (m, n) in inc.terms.items():
                sat = self._satisfier(pkg, m, n)
                if recent is None or recent.index < sat.index:
                    if recent is not None:
                        prev_level = max(prev_level, recent.level)
                    recent_term, recent, difference = pkg, sat, None
                else:
                    prev_level = max(prev_level, sat.level)
                if recent_term == pkg:
                    dm, dn = recent.mask & ~m, recent.none and not n
                    difference = (dm, dn) if (dm or dn) else None
                    if difference is not None:
                        inv = (self.full(pkg) & ~dm, not dn)
                        prev_level = max(prev_level, self._satisfier(pkg, *inv).level)
            assert recent is not None and recent_term is not None
            if prev_level < recent.level or recent.cause is None:
                self._backtrack(prev_level)
                if new:
                    self._add(inc)
                return inc
            terms: dict[str, tuple[int, bool]] = {}
            for pkg, t in inc.terms.items():
                if pkg != recent_term:
                    merge(terms, pkg, t)
            for pkg, t in recent.cause.terms.items():
                if pkg != recent.package:
                    merge(terms, pkg, t)
            if difference is not None:
                merge(terms, recent_term, (self.full(recent_term) & ~difference[0], not difference[1]))
            if len(terms) > 1 and ROOT in terms and not terms[ROOT][1]:
                del terms[ROOT]  # "root is selected" is always true: drop it
            inc = Incompatibility(terms, "conflict", (inc, recent.cause))
            new = True

    def _backtrack(self, level: int) -> None:
        touched = set()
        while self.assignments and self.assignments[-1].level > level:
            a = self.assignments.pop()
            self.by_pkg[a.package].pop()
            touched.add(a.package)
            if a.cause is None:
                del self.decisions[a.package]
        for pkg in touched:
            self.pending.discard(pkg)
            lst = self.by_pkg.get(pkg)
            if not lst:
                self.acc.pop(pkg, None)
                continue
            self.acc[pkg] = lst[-1].acc
            if not lst[-1].acc[1] and pkg not in self.decisions:
                self.pending.add(pkg)

    def _decide(self) -> str | None:
        if not self.pending:
            return None
        # the most constrained package first (fewest versions left), by name among equals
        pkg = min(self.pending, key=lambda p: (self.acc[p][0].bit_count(), p))
        m = self.acc[pkg][0]
        if m == 0:
            self._add(Incompatibility({pkg: (m, False)}, "no_versions"))
            return pkg
        vi = m.bit_length() - 1
        conflict = False
        for inc in self._dependencies(pkg, vi):
            conflict = conflict or all(self._relation(p, *t) == _SAT for p, t in inc.terms.items() if p != pkg)
        if not conflict:
            self.decisions[pkg] = vi
            self.pending.discard(pkg)
            self._assign(pkg, 1 << vi, False, None)
        return pkg

    def _requires(self, pkg: str, vi: int) -> Mapping[str, str]:
        return self.index.packages[pkg][self.versions[pkg][vi]].requires

    def _dependencies(self, pkg: str, vi: int) -> list[Incompatibility]:
        out = []
        vs = self.versions[pkg]
        pairs = self.root_requires if pkg == ROOT else self._requires(pkg, vi).items()
        for dep, rng in pairs:
            if dep == pkg:  # a release that requires its own name: usable only if it admits itself
                if not (self.mask_of(dep, rng) >> vi) & 1 and (pkg, -1 - vi) not in self._deps_added:
                    self._deps_added.add((pkg, -1 - vi))
                    inc = Incompatibility({pkg: (1 << vi, False)}, "dependency", info=(dep, rng))
                    self._add(inc)
                    out.append(inc)
                continue
            # widen to the run of neighbouring versions with the same requirement: fewer,
            # more general incompatibilities, and explanations that say "a 2.x" not "a 2.0.3"
            lo = hi = vi
            if pkg != ROOT:
                while lo > 0 and self._requires(pkg, lo - 1).get(dep) == rng:
                    lo -= 1
                while hi < len(vs) - 1 and self._requires(pkg, hi + 1).get(dep) == rng:
                    hi += 1
            run = ((1 << (hi + 1)) - 1) & ~((1 << lo) - 1)
            if (pkg, dep, rng, run) in self._deps_added:
                continue
            self._deps_added.add((pkg, dep, rng, run))
            dm = self.mask_of(dep, rng)
            inc = Incompatibility({pkg: (run, False), dep: (self.full(dep) & ~dm, True)}, "dependency",
                                  info=(dep, rng))
            self._add(inc)
            out.append(inc)
        return out


_CONFLICT = object()


def resolve(index: Index, requirements: Iterable[Requirement | str]) -> dict[str, str]:
    """Pick one version per name satisfying `requirements` (newest admissible first)."""
    return Resolver(index).resolve(requirements)


def resolve_cohorts(index: Index, requirements: Iterable[Requirement | str],
                    cohorts: Iterable[str] = ()) -> dict[str, dict[str, str]]:
    """Resolve each cohort separately: shared requirements plus that cohort's own.

    The cohorts resolved are `default` (requirements without a cohort), every cohort named in
    a requirement, and any named in `cohorts`; one name may get different versions in each.
    """
    reqs = [Requirement.parse(r) if isinstance(r, str) else r for r in requirements]
    names = {"default", *cohorts, *(r.cohort for r in reqs if r.cohort)}
    out = {}
    for c in sorted(names):
        # a cohort's own requirement on a name replaces the shared one (that is what a gray group is for)
        own = {r.name for r in reqs if r.cohort == c}
        shared = [r for r in reqs if r.cohort is None and r.name not in own]
        out[c] = resolve(index, shared + [r for r in reqs if r.cohort == c])
    return out
