"""Turn a failed PubGrub derivation into numbered English sentences (after pub's report writer)."""

from __future__ import annotations

from itertools import groupby
from typing import Any

from .ranges import version_key
from .terms import ROOT, Incompatibility, is_failure


class Explainer:
    """Turn a failed derivation into numbered English sentences (after pub's report writer)."""

    def __init__(self, solver: Any) -> None:
        self.s = solver

    def versions_text(self, pkg: str, mask: int) -> str:
        """Describe a set of versions of `pkg`: its range label, 'x' families, or runs."""
        if pkg == ROOT:
            return ""
        full = self.s.full(pkg)
        if mask == full:
            return "*"
        label = self.s.labels.get((pkg, mask))
        if label is not None:
            return label
        vs = self.s.versions[pkg]
        # runs of neighbouring versions in the set: "1.x" when a run is a whole major, "1.2.x" a whole minor
        runs = [[v for _i, v in run] for inside, run in groupby(enumerate(vs), key=lambda iv: (mask >> iv[0]) & 1)
                if inside]
        parts = []
        for run in runs:
            keys = [version_key(v) for v in run]
            majors = {k[0] for k in keys}
            minors = {k[:2] for k in keys}
            if len(majors) == 1 and [v for v in vs if version_key(v)[0] in majors] == run:
                parts.append(f"{keys[0][0]}.x")
            elif len(minors) == 1 and [v for v in vs if version_key(v)[:2] in minors] == run:
                parts.append(f"{keys[0][0]}.{keys[0][1]}.x")
            elif len(run) == 1:
                parts.append(run[0])
            else:
                parts.append(f"{run[0]} - {run[-1]}")
        return " || ".join(parts)

    def term(self, pkg: str, mask: int, none: bool) -> str:
        """Describe one term as 'pkg RANGE' (positive) or 'not pkg RANGE'."""
        if pkg == ROOT:
            return "root"
        if not none:
            return pkg if mask == self.s.full(pkg) else f"{pkg} {self.versions_text(pkg, mask)}"
        return f"not {pkg} {self.versions_text(pkg, self.s.full(pkg) & ~mask)}".rstrip()

    def positive(self, pkg: str, mask: int) -> str:
        """Describe what a negative term forbids not having, i.e. its inverse."""
        return self.term(pkg, self.s.full(pkg) & ~mask, False)

    def incompatibility(self, inc: Incompatibility) -> str:
        """Describe one incompatibility as a clause."""
        t = inc.terms
        if inc.kind == "root":
            return "root is required"
        if inc.kind == "dependency":
            dep, rng = inc.info
            (pkg, (m, _)), = [(p, x) for p, x in t.items() if p != dep] or [(dep, t[dep])]
            who = ("root" if pkg == ROOT else f"every version of {pkg}" if m == self.s.full(pkg)
                   else f"{pkg} {self.versions_text(pkg, m)}")
            verb = "requires" if pkg == ROOT else "depends on"
            if dep not in self.s.index.packages:
                return f"{who} {verb} {dep} {rng}, which is not in the index"
            if self.s.mask_of(dep, rng) == 0:
                return f"{who} {verb} {dep} {rng}, but no version of {dep} matches {rng}"
            return f"{who} {verb} {dep} {rng}"
        if inc.kind == "no_versions":
            (pkg, (m, _)), = t.items()
            return f"no version of {pkg} matches {self.versions_text(pkg, m) or '*'}"
        if is_failure(inc):
            return "version solving failed"
        items = list(t.items())
        if len(items) == 1:
            pkg, (m, n) = items[0]
            return f"{self.term(pkg, m, n)} is forbidden" if not n else f"{self.positive(pkg, m)} is required"
        pos = [(p, x) for p, x in items if not x[1]]
        neg = [(p, x) for p, x in items if x[1]]
        if len(items) == 2 and len(pos) == 1:
            (pp, (pm, _)), (np_, (nm, _)) = pos[0], neg[0]
            return f"{self.term(pp, pm, False)} requires {self.positive(np_, nm)}"
        if not neg:
            return " and ".join(self.term(p, m, n) for p, (m, n) in pos) + " are incompatible"
        if not pos:
            return "either " + " or ".join(self.positive(p, m) for p, (m, _) in neg) + " must be selected"
        return ("if " + " and ".join(self.term(p, m, n) for p, (m, n) in pos) + " then one of "
                + ", ".join(self.positive(p, m) for p, (m, _) in neg) + " is required")

    def explain(self, failure: Incompatibility) -> str:
        """Return the numbered explanation of why `failure` holds (iterative: deep chains are fine)."""
        lines: list[str] = []
        number: dict[int, int] = {}
        stack: list[tuple[Incompatibility, bool]] = [(failure, False)]
        while stack:
            inc, expanded = stack.pop()
            if id(inc) in number or inc.kind != "conflict":
                continue
            if not expanded:
                stack.append((inc, True))
                stack.extend((c, False) for c in reversed(inc.causes) if c.kind == "conflict" and id(c) not in number)
                continue
            c1, c2 = inc.causes
            derived = [c for c in (c1, c2) if c.kind == "conflict"]
            if c1 is c2 or c2.kind == "root" or c1.kind == "root":
                only = c2 if c1.kind == "root" else c1
                ref = f" ({number[id(only)]})" if only.kind == "conflict" else ""
                lines.append(f"Because {self.incompatibility(only)}{ref}, {self.incompatibility(inc)}.")
            elif len(derived) == 1 and lines and number.get(id(derived[0])) == len(lines):
                other = c2 if derived[0] is c1 else c1
                lines.append(f"And because {self.incompatibility(other)}, {self.incompatibility(inc)}.")
            else:
                parts = [self.incompatibility(c) + (f" ({number[id(c)]})" if c.kind == "conflict" else "")
                         for c in (c1, c2)]
                lines.append(f"Because {parts[0]} and {parts[1]}, {self.incompatibility(inc)}.")
            number[id(inc)] = len(lines)
        if not lines:
            return f"Because {self.incompatibility(failure)}, version solving failed."
        width = len(str(len(lines)))
        return "\n".join(f"({i:>{width}}) {line}" for i, line in enumerate(lines, 1))
