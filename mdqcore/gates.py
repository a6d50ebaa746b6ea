"""The standard gates the kernel's plugin `core` registers: legal, budget, blacklist."""

from __future__ import annotations

from typing import Any

from .model import GateResult, Idx, MdqPackage
from .model.state import ControlState, atom_path


def _requested(atom: Any, state: ControlState | None) -> float | None:
    cur = state.get(atom_path(atom)) if state is not None else None
    if isinstance(atom.value, bool) or isinstance(cur, bool):
        return None
    if atom.value is not None:
        return float(atom.value)
    return (cur or 0.0) + atom.delta


def legal(package: MdqPackage, state: ControlState | None) -> GateResult:
    """Refuse a package any of whose parameter changes would need clipping to stay admissible."""
    out = []
    for i, a in enumerate(package.atoms):
        if isinstance(a, Idx) or state is None:
            continue
        b = state.bound(atom_path(a))
        v = _requested(a, state)
        if b is not None and v is not None and not (b[0] <= v <= b[1]):
            out.append(f"$.atoms[{i}] asks {'/'.join(atom_path(a)[1:])} = {v:g}, outside [{b[0]:g}, {b[1]:g}]")
    return GateResult.refused("; ".join(out)) if out else GateResult.passed("every change stays admissible")


def budget(package: MdqPackage, state: ControlState | None) -> GateResult:
    """Refuse a package whose total change (sum of |delta|) exceeds the budget ceiling in effect.

    A change of the ceiling itself is not counted: it takes effect for the next package only,
    so raising the budget is always its own, separately recorded step.
    """
    ceiling = state.param("Gate", "budget", "ceiling", 1.0) if state is not None else 1.0
    total = 0.0
    for a in package.atoms:
        if atom_path(a)[:3] == ("param", "Gate", "budget"):
            continue
        if a.delta is not None:
            total += abs(a.delta)
        elif not isinstance(a.value, bool):
            cur = state.get(atom_path(a)) if state is not None else None
            total += abs(float(a.value) - (cur or 0.0)) if not isinstance(cur, bool) else 0.0
    if total > ceiling:
        return GateResult.refused(f"total change {total:g} exceeds the budget ceiling {ceiling:g} "
                                  f"(raise it with a Gate atom on budget/ceiling, or split the package)")
    return GateResult.passed(f"total change {total:g} <= {ceiling:g}")


def blacklist(package: MdqPackage, state: ControlState | None) -> GateResult:
    """Refuse a package that adds or boosts index entries for blacklisted segments."""
    bad = sorted({a.seg for a in package.atoms if isinstance(a, Idx) and a.feature != "blacklist"
                  and state is not None and state.index("blacklist", a.seg) > 0})
    if bad:
        return GateResult.refused(f"blacklisted segments: {', '.join(bad)}")
    return GateResult.passed("no blacklisted segment")
