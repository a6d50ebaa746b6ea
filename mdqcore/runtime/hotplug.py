"""The hot-plug loader: stage -> shadow -> canary -> promote | rollback, double-buffered.

Every cohort holds an immutable slot (active state, canary state or None, canary fraction).
Readers take a slot reference once and use it to the end: no lock on the read path, and a
slot swap is one reference assignment. Writers serialize on one lock. Every arrow appends
one ledger event; only `promoted` and `rolled_back` events change state, and they carry
the exact diff, so after a crash the state rebuilt from the ledger is either the state
before the package in flight or the state after it.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from attrs import frozen

from ..errors import DocumentError, MdqError, PackageError, Problem, Rejected
from ..gcpause import gc_paused
from ..ledger.base import Ledger, diff_from_json, diff_to_json, replay_with_base
from ..model import GateResult, MdqPackage, unstructure
from ..model.convert import atom_from_json, atom_to_json
from ..model.state import ControlState, Diff, atom_path
from ..registry import Registry
from ..versions.ranges import version_key
from .cohorts import in_canary
from .signing import TrustPolicy

DEFAULT = "default"
AXES = ("operator", "index", "gate")


@frozen
class Slot:
    """What one cohort serves: the active state and, during a canary, the staged state."""

    active: ControlState
    canary: ControlState | None = None
    fraction: float = 0.0
    salt: str = ""


@frozen
class ApplyResult:
    """The outcome of a successful apply."""

    package: str
    cohort: str
    changes: int
    kpis: Mapping[str, Any]
    seq: int


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
                    default = cap.meta.get("defaults", {}).get(pname, lo)
                    data[("param", atom_kind, owner, pname)] = default
    for cap in registry.of_kind("index_feature"):
        data[("semiring", cap.name)] = cap.meta["semiring"]
        data[("fweight", cap.name)] = float(cap.meta.get("weight", 1.0))
    return data


def check_against(registry: Registry, pkg: MdqPackage, *, source: str = "package") -> None:
    """Raise PackageError if `pkg` names an operator, parameter, index feature or gate no installed plugin declares."""
    problems = [Problem(f"unknown gate {t!r} (registered: {', '.join(registry.names('gate')) or 'none'})",
                        f"$.tests[{i}]") for i, t in enumerate(pkg.tests) if registry.find("gate", t) is None]
    try:
        ControlState(base_data(registry)).plan(pkg.atoms)
    except PackageError as exc:
        problems += exc.problems
    if problems:
        raise PackageError(problems, source=source)


class Runtime:
    """A running control plane bound to a registry and a ledger."""

    def __init__(self, registry: Registry, ledger: Ledger, *, actor: str = "mdq",
                 trust: TrustPolicy | None = None) -> None:
        self.registry, self.ledger, self.actor = registry, ledger, actor
        self.trust = trust or TrustPolicy()
        self._write = threading.Lock()
        self._refresh_lock = threading.Lock()
        rows = list(ledger.state_rows())
        self._seen = rows[-1][0] if rows else 0
        self.base, states = replay_with_base(rows)
        self._slots: dict[str, Slot] = {c: Slot(s) for c, s in states.items()}
        self.current: ControlState = self._slots[DEFAULT].active  # the hot path's attribute
        self._follower: Any = None
        self._listeners: list[Any] = []
        self._sync_base()

    def subscribe(self, listener: Any) -> None:
        """Call `listener(cohort, diff)` for every state change folded in from now on (e.g. EKB.update_from_diff)."""
        self._listeners.append(listener)

    def refresh(self, own: tuple[int, Diff] | None = None) -> int:
        """Apply ledger events written since the last one seen (by any process or machine); return how many.

        `own` is (seq, diff) of an event this runtime just wrote: its diff is used as is, not re-decoded.
        """
        with self._refresh_lock:
            n = 0
            for seq, _ts, kind, cohort, text in self.ledger.state_rows(since=self._seen):
                if own is not None and seq == own[0]:
                    self._apply_diff(seq, kind, cohort, own[1])
                else:
                    self._apply_event(seq, kind, cohort, orjson.loads(text)["payload"])
                self._seen = seq
                n += 1
            return n

    def _apply_event(self, seq: int, kind: str, cohort: str, payload: dict[str, Any]) -> None:
        self._apply_diff(seq, kind, cohort, diff_from_json(payload.get("diff", [])))

    def _apply_diff(self, seq: int, kind: str, cohort: str, diff: Diff) -> None:
        if kind == "base":
            self.base = self.base.apply_diff(diff)
            for c, slot in list(self._slots.items()):
                self._swap(c, Slot(slot.active.apply_diff(diff)))
            return
        slot = self._slots.get(cohort) or Slot(ControlState(self.base.data))
        self._swap(cohort, Slot(slot.active.apply_diff(diff, seq=seq)))  # a stale canary is dropped
        for listener in self._listeners:
            listener(cohort, diff)

    def follow(self, interval: float = 1.0) -> None:
        """Keep this runtime current with promotions made elsewhere (LISTEN/NOTIFY or polling)."""
        if self._follower is None:
            self._follower = self.ledger.follow(self.refresh, interval=interval)

    def close(self) -> None:
        """Stop following and close the ledger."""
        if self._follower is not None:
            self._follower.stop()
            self._follower = None
        self.ledger.close()

    # -- reading (no locks) -------------------------------------------------------------------
    def snapshot(self, cohort: str = DEFAULT, key: str | None = None) -> ControlState:
        """Return the state a request of `cohort` with routing `key` should use, once, to the end."""
        slot = self._slots.get(cohort) or self._slots[DEFAULT]
        if slot.canary is not None and key is not None and in_canary(key, slot.fraction, slot.salt):
            return slot.canary
        return slot.active

    def cohorts(self) -> list[str]:
        """Return the cohorts that have state."""
        return sorted(self._slots)

    # -- writing ------------------------------------------------------------------------------
    def _log(self, kind: str, cohort: str, pkg: MdqPackage | None, reason: str = "", **payload: Any):
        return self.ledger.append(kind, cohort=cohort, package=pkg.name if pkg else None,
                                  version=pkg.semver if pkg else None, actor=self.actor, reason=reason,
                                  payload=payload)

    def _swap(self, cohort: str, slot: Slot) -> None:
        self._slots[cohort] = slot
        if cohort == DEFAULT:
            self.current = slot.active

    def _sync_base(self) -> None:
        """Record a `base` event when installed plugins declare other bounds / defaults than the ledger has."""
        want = base_data(self.registry)
        have = dict(self.base.data)
        diff = [(p, have.get(p), v) for p, v in want.items() if have.get(p) != v and p[0] != "param"]
        # a default value enters the base only for parameters not yet known: it never overrides history
        diff += [(p, None, v) for p, v in want.items() if p[0] == "param" and p not in have]
        if not diff:
            return
        with self._write:
            self._log("base", DEFAULT, None, "installed plugins declare new parameters or bounds",
                      diff=diff_to_json(diff))
            self.refresh()

    def apply(self, pkg: MdqPackage, *, cohort: str = DEFAULT, canary: float = 0.1,
              inputs: Sequence[Mapping[str, Any]] = (), allow_downgrade: bool = False) -> ApplyResult:
        """Run one package through check -> stage -> shadow -> canary -> promote; raise Rejected otherwise."""
        if not 0.0 <= canary <= 1.0:
            raise ValueError(f"canary fraction must be within [0, 1], got {canary}")
        with self._write:
            self.refresh()  # decide against the newest state any replica has promoted
            reason = pkg.provenance.reason if pkg.provenance else ""
            with gc_paused():  # the kernel's bulk work only: gates and evaluators run with the collector on
                self._log("received", cohort, pkg, reason, package=unstructure(pkg))
            slot = self._slots.get(cohort) or Slot(ControlState(self.base.data))
            active = slot.active
            try:
                self._check(pkg, active, cohort, allow_downgrade)
                with gc_paused():
                    staged, diff = self._stage(pkg, active)
            except (MdqError, ValueError) as exc:
                self._log("rejected", cohort, pkg, str(exc))
                raise Rejected(pkg.ref, "check", str(exc)) from None
            self._log("staged", cohort, pkg, f"{len(diff)} changes", changes=len(diff))
            try:
                kpis = self._compare(pkg, active, staged, inputs)
                if kpis["regressions"]:
                    self._log("shadow_failed", cohort, pkg, "; ".join(kpis["regressions"]), kpis=kpis)
                    raise Rejected(pkg.ref, "shadow", "; ".join(kpis["regressions"]))
                self._log("shadow_passed", cohort, pkg, "no KPI regressed", kpis=kpis)
                salt = pkg.ref
                self._swap(cohort, Slot(active, staged, canary, salt))
                self._log("canary_started", cohort, pkg, f"{canary:.0%} of requests", fraction=canary)
                routed = [r for i, r in enumerate(inputs) if in_canary(str(r.get("key", i)), canary, salt)]
                ckpis = self._compare(pkg, active, staged, routed)
                if ckpis["regressions"]:
                    raise Rejected(pkg.ref, "canary", "; ".join(ckpis["regressions"]))
            except Exception as exc:  # any failure after staging: drop the staged state, record the inverse
                now = self._slots.get(cohort)  # a refresh may have moved the cohort on meanwhile
                self._swap(cohort, Slot(now.active if now is not None else active))
                why = exc.reason if isinstance(exc, Rejected) else f"{type(exc).__name__}: {exc}"
                stage = exc.stage if isinstance(exc, Rejected) else "shadow/canary"
                self._log("rolled_back", cohort, pkg, why, diff=[], inverse=[], stage=stage)
                self.refresh()
                if isinstance(exc, Rejected):
                    raise
                raise Rejected(pkg.ref, stage, why) from exc
            with gc_paused():
                ev = self._log("promoted", cohort, pkg, reason or "KPIs held", diff=diff_to_json(diff))
                self.refresh(own=(ev.seq, diff))  # the ledger's order is the truth: fold our promotion in through it
            return ApplyResult(pkg.ref, cohort, len(diff), {"shadow": kpis, "canary": ckpis}, ev.seq)

    def rollback(self, name: str, *, cohort: str = DEFAULT, reason: str = "operator asked") -> int:
        """Undo an active package in one cohort; record the inverse. Return the ledger seq."""
        with self._write, gc_paused():
            self.refresh()
            slot = self._slots.get(cohort)
            if slot is None or slot.active.get(("package", name)) is None:
                active = ", ".join(sorted(slot.active.packages())) if slot else ""
                raise Rejected(name, "check", f"no active package {name!r} in cohort {cohort!r} "
                                              f"(active: {active or 'none'})")
            diff = self._undo_diff(slot.active, name)
            entry = slot.active.get(("package", name))
            ev = self.ledger.append("rolled_back", cohort=cohort, package=name, version=entry["version"],
                                    actor=self.actor, reason=reason,
                                    payload={"diff": diff_to_json(diff), "inverse": entry.get("inverse") or []})
            self.refresh(own=(ev.seq, diff))
            return ev.seq

    # -- the steps ----------------------------------------------------------------------------
    def _check(self, pkg: MdqPackage, active: ControlState, cohort: str, allow_downgrade: bool) -> None:
        self.trust.check(pkg)
        entry = active.get(("package", pkg.name))
        if entry is not None:
            have = entry["version"]
            if version_key(pkg.semver) == version_key(have):
                raise MdqError(f"{pkg.ref} is already active in cohort {cohort!r}")
            if version_key(pkg.semver) < version_key(have) and not allow_downgrade:
                raise MdqError(f"{pkg.ref} is older than the active {pkg.name}@{have}: refusing a silent downgrade; "
                               f"ask for it explicitly (mdq pkg apply --rollback, or allow_downgrade=True)")
        self._check_requires(pkg, active)
        for test in pkg.tests:
            cap = self.registry.find("gate", test)
            if cap is None:
                raise MdqError(f"unknown gate {test!r} in tests (registered: {', '.join(self.registry.names('gate')) or 'none'})")
            try:
                result = cap.obj(pkg, active)
            except Exception as exc:  # a gate that raises refuses: fail closed
                raise MdqError(f"gate {test!r} raised {type(exc).__name__}: {exc}") from None
            if not isinstance(result, GateResult) or not result.ok:
                raise MdqError(f"gate {test!r} refused: {getattr(result, 'reason', result)}")

    def _check_requires(self, pkg: MdqPackage, active: ControlState) -> None:
        axes = {k: v for k, v in pkg.requires.items() if k in AXES}
        others = {k: v for k, v in pkg.requires.items() if k not in AXES}
        if axes:
            from ..versions.compat import check_requires
            check_requires(self.registry, axes, {}, what=pkg.ref)
        if not others:
            return
        from ..versions.index import Index
        from ..versions.installed import mdq_distributions
        from ..versions.resolver import ResolutionImpossible, resolve

        avail: dict[str, dict[str, dict[str, str]]] = {}
        for name, d in mdq_distributions().items():
            avail.setdefault(name, {})[_semver_of(d.version)] = {}
        for name, version in active.packages().items():
            avail.setdefault(name, {})[version] = {}
        try:
            resolve(Index.of(avail), [f"{n}@{r}" for n, r in others.items()])
        except ResolutionImpossible as exc:
            raise MdqError(f"requires cannot be met by installed plugins and active packages:\n{exc}") from None
        except DocumentError as exc:
            raise MdqError(str(exc)) from None

    def _stage(self, pkg: MdqPackage, active: ControlState) -> tuple[ControlState, Diff]:
        pre = active
        diff: Diff = []
        if active.get(("package", pkg.name)) is not None:  # upgrade or explicit downgrade: undo the old first
            diff = self._undo_diff(active, pkg.name)
            pre = active.apply_diff(diff)
        changes = pre.plan(pkg.atoms)
        inverse = None if pkg.rollback.auto else [atom_to_json(a) for a in pkg.inverse_atoms()]
        # JSON-shaped (lists, not tuples): the live entry must equal the one replay decodes
        entry = {"version": pkg.semver, "changes": [[list(p), o, n] for p, o, n in changes], "inverse": inverse}
        changes.append((("package", pkg.name), pre.get(("package", pkg.name)), entry))
        merged: dict[tuple[str, ...], tuple[Any, Any]] = {}
        for p, old, new in diff + changes:
            merged[p] = (merged[p][0] if p in merged else old, new)
        full = [(p, o, n) for p, (o, n) in merged.items() if o != n]
        return active.apply_diff(full), full

    def _undo_diff(self, state: ControlState, name: str) -> Diff:
        """Diff that removes package `name`: restore what it set unless changed since, else undo its delta."""
        raw = state.data  # read-only mapping; the hot loops below read it directly
        entry = raw[("package", name)]
        out: dict[tuple[str, ...], Any] = {}
        if entry.get("inverse"):
            work, _ = state.apply([atom_from_json(a) for a in entry["inverse"]], strict=False)
            wd = work.data
            out = {p: v for p, v in wd.items() if v != raw.get(p)}
        else:
            get = raw.get
            for path, old, new in entry["changes"]:
                p = tuple(path)
                cur = get(p)
                if cur == new or isinstance(cur, bool) or cur is None or old is None or new is None:
                    out[p] = old
                else:  # changed since by a later package: take back only this package's own step
                    out[p] = cur - (new - old)
        out[("package", name)] = None
        return [(p, raw.get(p), v) for p, v in out.items() if raw.get(p) != v]

    def _compare(self, pkg: MdqPackage, active: ControlState, staged: ControlState,
                 inputs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        report: dict[str, Any] = {"inputs": len(inputs), "evaluators": {}, "regressions": []}
        for cap in self.registry.of_kind("evaluator"):
            a, b = cap.obj(active, inputs), cap.obj(staged, inputs)
            lower = set(cap.meta.get("lower_is_better", ()))
            report["evaluators"][cap.name] = {k: {"active": a[k], "staged": b.get(k)} for k in a}
            for k, va in a.items():
                vb = b.get(k)
                if vb is None:
                    continue
                loss = (vb - va) if k in lower else (va - vb)
                if loss > pkg.kpi.tolerance.get(k, 0.0) + 1e-12:
                    report["regressions"].append(f"{cap.name}.{k} went from {va:g} to {vb:g}")
        return report


def _semver_of(version: str) -> str:
    """Turn a PEP 440 release like 0.1 or 1.2.3 into SemVer (extra parts dropped)."""
    parts = [p for p in version.split("+")[0].split(".")[:3]]
    nums = [int("".join(ch for ch in p if ch.isdigit()) or 0) for p in parts] + [0, 0, 0]
    return f"{nums[0]}.{nums[1]}.{nums[2]}"
