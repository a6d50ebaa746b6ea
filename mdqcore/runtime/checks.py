"""What a package must pass before it is staged, and how its KPIs are judged: both fail closed.

`check_package` runs, in order: size, expiry, signature and name ownership (delegations, or the
key that signed the name before), versions only moving forward, `requires`, KPI tolerances
within the policy's ceilings, then every gate the package lists and every gate the policy makes
mandatory, recording each result. `compare` judges staged against active: a NaN or infinite KPI,
a KPI that is required but not measured, an evaluator that fails, or too few inputs all fail.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from ..errors import DocumentError, GateRefusal, MdqError, PackageError, Problem
from ..model import GateResult, MdqPackage
from ..model.state import ControlState
from ..registry import Registry
from ..signing import TrustPolicy
from ..versions.compat import AXES, check_requires
from ..versions.ranges import version_key
from .policy import Policy


def history(state: ControlState, name: str) -> dict[str, Any]:
    """Return what the cohort remembers of a package name: highest version, rolled-back versions, its key."""
    return state.get(("history", name)) or {"max": None, "rolled_back": [], "key": None}


def check_package(registry: Registry, pkg: MdqPackage, active: ControlState, cohort: str, policy: Policy,
                  trust: TrustPolicy, downgrade: bool) -> tuple[str | None, dict[str, Any]]:
    """Run every check (module docstring); return (signing key id, gate results) or raise MdqError saying why."""
    if len(pkg.atoms) > policy.max_atoms:
        raise MdqError(f"{len(pkg.atoms):,} atoms is over the policy's limit of {policy.max_atoms:,}; split the package")
    if pkg.expires and datetime.fromisoformat(pkg.expires.replace("Z", "+00:00")) <= datetime.now(timezone.utc):
        raise MdqError(f"{pkg.ref} expired at {pkg.expires}; ask its author for a fresh one")
    kid = trust.check(pkg, required=policy.require_signatures)
    _check_owner(pkg, kid, history(active, pkg.name), policy)
    _check_version(pkg, active, cohort, downgrade)
    _check_requires(registry, pkg, active)
    for k, tol in pkg.kpi.tolerance.items():
        if tol > policy.ceiling(k):
            raise MdqError(f"kpi.tolerance[{k!r}] = {tol:g} is over the policy's ceiling {policy.ceiling(k):g} "
                           f"for that KPI; the operator, not the package, decides how much may regress")
    return kid, run_gates(registry, pkg, active, policy.gates_for(cohort))


def run_gates(registry: Registry, pkg: MdqPackage, state: ControlState, mandatory: Sequence[str]) -> dict[str, Any]:
    """Run the package's own gates and the mandatory ones; return every result; raise if any refuses."""
    results: dict[str, Any] = {}
    for name in dict.fromkeys([*mandatory, *pkg.tests]):
        cap = registry.find("gate", name)
        why = "the policy makes it mandatory" if name in mandatory else "the package lists it in tests"
        if cap is None:
            results[name] = {"ok": False, "reason": f"no loaded plugin provides gate {name!r} ({why})"}
            continue
        try:
            r = cap.obj(pkg, state)
            ok, reason = (r.ok, r.reason) if isinstance(r, GateResult) else (False, f"returned {r!r}, not a GateResult")
        except Exception as exc:  # a gate that raises refuses: fail closed
            ok, reason = False, f"raised {type(exc).__name__}: {exc}"
        results[name] = {"ok": bool(ok), "reason": reason, "mandatory": name in mandatory}
    bad = [f"gate {n!r} refused: {r['reason']}" for n, r in results.items() if not r["ok"]]
    if bad:
        raise GateRefusal("; ".join(bad), results)
    return results


def _check_owner(pkg: MdqPackage, kid: str | None, hist: Mapping[str, Any], policy: Policy) -> None:
    prefixes = [p for p in policy.delegations if pkg.name == p or pkg.name.startswith(p.rstrip(".") + ".")]
    if prefixes:
        allowed = policy.delegations[max(prefixes, key=len)]
        if kid not in allowed:
            raise MdqError(f"{pkg.ref} is signed by {kid or 'no key'}, but the policy delegates "
                           f"{max(prefixes, key=len)!r} to {', '.join(allowed) or 'no key'}")
    elif hist.get("key") and kid != hist["key"]:
        raise MdqError(f"{pkg.name} has been signed by key {hist['key']}; {pkg.ref} is signed by {kid or 'no key'}. "
                       f"Another key may publish this name only through a delegation in the policy")


def _check_version(pkg: MdqPackage, active: ControlState, cohort: str, downgrade: bool) -> None:
    entry = active.get(("package", pkg.name))
    if entry is not None and version_key(pkg.semver) == version_key(entry["version"]):
        raise MdqError(f"{pkg.ref} is already active in cohort {cohort!r}")
    hist = history(active, pkg.name)
    if downgrade:
        return
    if pkg.semver in hist["rolled_back"]:
        raise MdqError(f"{pkg.ref} was rolled back in cohort {cohort!r}; applying it again needs --rollback "
                       f"with a reason")
    if hist["max"] and version_key(pkg.semver) < version_key(hist["max"]):
        raise MdqError(f"{pkg.ref} is older than {pkg.name}@{hist['max']}, applied before in cohort {cohort!r}: "
                       f"versions only move forward; an intended downgrade needs --rollback with a reason")


def _check_requires(registry: Registry, pkg: MdqPackage, active: ControlState) -> None:
    axes = {k: v for k, v in pkg.requires.items() if k in AXES}
    others = {k: v for k, v in pkg.requires.items() if k not in AXES}
    if axes:
        check_requires(registry, axes, {}, what=pkg.ref)
    if not others:
        return
    from ..versions.index import Index
    from ..versions.installed import mdq_distributions, semver_of
    from ..versions.resolver import ResolutionImpossible, resolve

    avail: dict[str, dict[str, dict[str, str]]] = {}
    for name, d in mdq_distributions().items():
        avail.setdefault(name, {})[semver_of(d.version)] = {}
    for name, version in active.packages().items():
        avail.setdefault(name, {})[version] = {}
    try:
        resolve(Index.of(avail), [f"{n}@{r}" for n, r in others.items()])
    except ResolutionImpossible as exc:
        raise MdqError(f"requires cannot be met by installed plugins and active packages:\n{exc}") from None
    except DocumentError as exc:
        raise MdqError(str(exc)) from None


def base_data(registry: Registry) -> dict[tuple[str, ...], Any]:
    """Return the state every cohort starts from: bounds, defaults and semirings plugins declare."""
    data: dict[tuple[str, ...], Any] = {}
    for kind, atom_kind in (("operator", "Op"), ("gate", "Gate"), ("length_policy", "Len")):
        caps = registry.of_kind(kind)
        for cap in caps:
            owners = [cap.name] + ([""] if kind == "length_policy" and (len(caps) == 1 or cap.meta.get("default")) else [])
            for owner in owners:
                for pname, (lo, hi) in cap.meta.get("params", {}).items():
                    data[("bound", atom_kind, owner, pname)] = [lo, hi]
                    data[("param", atom_kind, owner, pname)] = cap.meta.get("defaults", {}).get(pname, lo)
    for cap in registry.of_kind("index_feature"):
        data[("semiring", cap.name)] = cap.meta["semiring"]
        data[("fweight", cap.name)] = float(cap.meta.get("weight", 1.0))
    return data


def check_against(registry: Registry, pkg: MdqPackage, base: ControlState | None = None, *,
                  source: str = "package") -> None:
    """Raise PackageError if `pkg` names an operator, parameter, index feature or gate no installed plugin declares."""
    base = ControlState(base_data(registry)) if base is None else base
    problems = [Problem(f"unknown gate {t!r} (registered: {', '.join(registry.names('gate')) or 'none'})",
                        f"$.tests[{i}]") for i, t in enumerate(pkg.tests) if registry.find("gate", t) is None]
    try:
        base.plan(pkg.atoms)
    except PackageError as exc:
        problems += exc.problems
    if problems:
        raise PackageError(problems, source=source)


def compare(registry: Registry, pkg: MdqPackage, policy: Policy, active: ControlState, staged: ControlState,
            inputs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Judge staged against active on `inputs` with every loaded evaluator; `regressions` lists every failure."""
    report: dict[str, Any] = {"inputs": len(inputs), "evaluators": {}, "regressions": [], "measured": []}
    evaluators = registry.of_kind("evaluator")
    if not evaluators:
        report["regressions"].append("no KPI evaluator is loaded, so nothing can show this change is safe")
    for cap in evaluators:
        try:
            a, b = dict(cap.obj(active, inputs)), dict(cap.obj(staged, inputs))
        except Exception as exc:  # a broken evaluator cannot vouch for anything
            report["regressions"].append(f"evaluator {cap.name!r} failed: {type(exc).__name__}: {exc}")
            continue
        lower = set(cap.meta.get("lower_is_better", ()))
        report["evaluators"][cap.name] = {k: {"active": a.get(k), "staged": b.get(k)} for k in {*a, *b}}
        for k in sorted({*a, *b}):
            va, vb = a.get(k), b.get(k)
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (va, vb)):
                report["regressions"].append(f"{cap.name}.{k} is not a finite number ({va!r} -> {vb!r})")
                continue
            report["measured"].append(k)
            loss = (vb - va) if k in lower else (va - vb)
            if loss > pkg.kpi.tolerance.get(k, 0.0) + 1e-12:
                report["regressions"].append(f"{cap.name}.{k} went from {va:g} to {vb:g}")
    for k in dict.fromkeys([*policy.required_kpis, *pkg.kpi.tolerance]):
        if k not in report["measured"]:
            report["regressions"].append(f"KPI {k!r} is required but no loaded evaluator measured it")
    return report
