"""The compatibility matrix: operator set x index schema x gate policy versions -> ok / warn / reject.

Plugins register rules through `register_compat_rules`. A rule is any callable
`rule(versions: dict[str, str]) -> (verdict, reason) | None`; `RangeRule` is the data-only
form most plugins need. Every rule sees every combination; the most severe verdict wins.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from attrs import field, frozen

from ..errors import CompatError
from ..registry import Registry
from .ranges import Range, version_key

AXES = ("operator", "index", "gate")
SEVERITY = {"ok": 0, "warn": 1, "reject": 2}
# which capability kind carries each axis's version
AXIS_KIND = {"operator": "operator", "index": "index_feature", "gate": "gate"}


@frozen
class RangeRule:
    """A rule as data: when every axis in `when` is inside its range, say `verdict` with `reason`."""

    when: Mapping[str, str]
    verdict: str
    reason: str
    _ranges: dict[str, Range] = field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        if self.verdict not in SEVERITY:
            raise ValueError(f"verdict must be one of ok, warn, reject; got {self.verdict!r}")
        if not self.when:
            raise ValueError("a RangeRule needs at least one axis in `when`")
        object.__setattr__(self, "_ranges", {a: Range.parse(r) for a, r in self.when.items()})

    def __call__(self, versions: Mapping[str, str]) -> tuple[str, str] | None:
        """Return (verdict, reason) when every named axis matches, else None."""
        matches = all(versions.get(axis) is not None and rng.contains(versions[axis])
                      for axis, rng in self._ranges.items())
        return (self.verdict, self.reason) if matches else None


@frozen
class Finding:
    """One rule's say on one combination."""

    rule: str
    origin: str
    verdict: str
    reason: str


@frozen
class Decision:
    """The matrix's answer for one combination, with the rules that decided it."""

    versions: Mapping[str, str]
    verdict: str
    findings: tuple[Finding, ...]

    def deciding(self) -> list[Finding]:
        """Return the findings with the winning (most severe) verdict."""
        return [f for f in self.findings if f.verdict == self.verdict]

    def explain(self) -> str:
        """Say the verdict and every rule behind it."""
        combo = " ".join(f"{a}={v}" for a, v in self.versions.items())
        if not self.findings:
            return f"{combo}: ok (no rule applies)"
        lines = [f"{combo}: {self.verdict}"]
        lines += [f"  {f.verdict:6} {f.rule} [{f.origin}]: {f.reason}" for f in self.findings]
        return "\n".join(lines)


def evaluate(registry: Registry, versions: Mapping[str, str]) -> Decision:
    """Run every registered compat rule on one combination; a rule that raises counts as reject."""
    findings = []
    for cap in registry.of_kind("compat_rule"):
        try:
            said = cap.obj(dict(versions))
        except Exception as exc:  # fail safe: a broken rule must not wave a combination through
            said = ("reject", f"rule raised {type(exc).__name__}: {exc}")
        if said is None:
            continue
        verdict, reason = said
        if verdict not in SEVERITY:
            verdict, reason = "reject", f"rule returned unknown verdict {verdict!r}"
        findings.append(Finding(cap.name, cap.origin, verdict, reason))
    worst = max((f.verdict for f in findings), key=SEVERITY.__getitem__, default="ok")
    return Decision(dict(versions), worst, tuple(findings))


def known_versions(registry: Registry) -> dict[str, list[str]]:
    """Return the versions of each axis that installed capabilities declare."""
    return {axis: sorted({c.version for c in registry.of_kind(kind) if c.version}, key=version_key)
            for axis, kind in AXIS_KIND.items()}


def matrix(registry: Registry, axes: Mapping[str, Sequence[str]]) -> list[Decision]:
    """Evaluate every combination of the given axis versions."""
    names = [a for a in axes if axes[a]]
    return [evaluate(registry, dict(zip(names, combo)))
            for combo in itertools.product(*(axes[a] for a in names))]


def check_requires(registry: Registry, requires: Mapping[str, str], active: Mapping[str, str],
                   axes: Mapping[str, Sequence[str]] | None = None, *, what: str = "package") -> Decision:
    """Decide the combination a package's `requires` lands on; raise CompatError if rejected.

    For each axis the package names, the newest known version inside its range is taken;
    other axes keep the active version.
    """
    axes = known_versions(registry) if axes is None else axes
    combo: dict[str, Any] = dict(active)
    for axis in AXES:
        if axis not in requires:
            continue
        rng = Range.parse(requires[axis])
        ok = [v for v in axes.get(axis, ()) if rng.contains(v)]
        if not ok:
            known = ", ".join(axes.get(axis, ())) or "none"
            d = Decision(combo, "reject", (Finding("requires", "package", "reject",
                                                   f"needs {axis} {requires[axis]}; known versions: {known}"),))
            raise CompatError(d, what)
        combo[axis] = max(ok, key=version_key)
    decision = evaluate(registry, combo)
    if decision.verdict == "reject":
        raise CompatError(decision, what)
    return decision
