"""The hot-plug loader: check -> stage -> shadow -> canary -> promote | rollback, double-buffered.

Every cohort holds an immutable slot (active state, canary state or None, canary fraction).
Readers take a slot reference once and use it to the end: no lock on the read path, and a
slot swap is one reference assignment. Writers serialize on one lock per process, and across
processes and machines on the ledger: the promoting append is a compare-and-swap on the
cohort's head, so a writer that planned against a state another writer has since changed
re-plans (re-running every check) instead of overwriting that change. Every arrow appends one
ledger event; only `base`, `policy`, `promoted` and `rolled_back` change state, and they carry
the exact diff, so after a crash the state rebuilt from the ledger is either the state before
the package in flight or the state after it; the next writer to open the ledger closes such a
leftover apply with an `aborted` event.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from itertools import takewhile
from typing import Any

import attrs
from attrs import frozen

from ..errors import ConflictError, MdqError, PolicyError, Rejected
from ..gcpause import gc_paused
from ..ledger.base import GLOBAL, Event, Ledger, diff_from_json, diff_to_json, normalize_ts, replay_with_base, state_events
from ..model import MdqPackage, load_package, unstructure
from ..model.state import ControlState, Diff
from ..registry import Registry
from ..signing import TrustPolicy
from ..versions.ranges import version_key
from . import undo
from .checks import base_data, check_package, compare, history
from .cohorts import in_canary
from .policy import Policy, in_effect, policy_diff

DEFAULT = "default"
MAX_REPLANS = 50
_FOLLOWED = frozenset({"base", "policy", "promoted", "rolled_back", "canary_started", "aborted"})


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


def _started(pid: int) -> str | None:
    """Return a process's start time (clock ticks since boot) on Linux, to tell a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rpartition(")")[2].split()[19]
    except (OSError, IndexError):
        return None


OWNER = {"host": socket.gethostname(), "pid": os.getpid(), "started": _started(os.getpid())}


def _gone(owner: Mapping[str, Any]) -> bool:
    """Tell whether the process that wrote an apply on this host no longer runs."""
    try:
        os.kill(int(owner["pid"]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, KeyError, TypeError, ValueError):
        return False
    return owner.get("started") is not None and _started(int(owner["pid"])) != owner["started"]


class Runtime:
    """A running control plane bound to a registry and a ledger (readers pass a read-only ledger)."""

    def __init__(self, registry: Registry, ledger: Ledger, *, actor: str = "mdq",
                 trust: TrustPolicy | None = None) -> None:
        self.registry, self.ledger, self.actor = registry, ledger, actor
        self.trust = trust or TrustPolicy()
        self.readonly = bool(getattr(ledger, "readonly", False))
        self._write = threading.Lock()
        self._refresh_lock = threading.Lock()
        head = ledger.head()
        self.base, states = replay_with_base(takewhile(lambda r: r[0] <= head, ledger.rows()))
        self._seen = head
        self._slots: dict[str, Slot] = {c: Slot(s) for c, s in states.items()}
        self.current: ControlState = self._slots[DEFAULT].active  # the hot path's attribute
        self._follower: Any = None
        self._listeners: list[Any] = []
        self.rollouts: dict[str, dict[str, Any]] = {}  # cohort -> the live rollout in it (see begin_rollout)
        for first, _last in ledger.open_applies():
            ev = ledger.latest("canary_started", first.cohort, first.package, first.version)
            if ev is not None and ev.seq > first.seq:
                self._canary(ev.seq, ev.cohort, ev.payload)
        if self.readonly:
            self._overlay_base()
        else:
            self._reconcile()
            self._sync_base()

    @property
    def head(self) -> int:
        """The last ledger entry this runtime has folded in."""
        return self._seen

    @property
    def policy(self) -> Policy:
        """The operator policy in effect (PolicyError if it cannot be trusted)."""
        return in_effect(self.base, self.trust)

    def subscribe(self, listener: Any) -> None:
        """Call `listener(cohort, diff)` for every state change folded in from now on (e.g. EKB.update_from_diff)."""
        self._listeners.append(listener)

    def refresh(self, own: tuple[int, Diff] | None = None) -> int:
        """Fold in ledger events written since the last one seen (by any process or machine); return how many.

        `own` is (seq, diff) of an event this runtime just wrote: its diff is used as is, not re-decoded.
        """
        with self._refresh_lock:
            last = [self._seen]

            def tap() -> Any:
                for row in self.ledger.rows(self._seen):
                    last[0] = row[0]
                    yield row
            n = 0
            for seq, kind, cohort, diff, payload in state_events(tap(), self._seen, kinds=_FOLLOWED):
                info = self.rollouts.get(cohort)
                if info is not None and payload.get("rollout") == info["seq"]:
                    del self.rollouts[cohort]  # concluded: promoted, rolled back or aborted
                    if kind == "aborted":
                        self._swap(cohort, Slot(self._slots[cohort].active))
                if kind == "canary_started":
                    self._canary(seq, cohort, payload)
                elif kind != "aborted":
                    mine = own is not None and seq == own[0]
                    self._apply_diff(seq, kind, cohort, own[1] if mine else diff_from_json(diff))
                    n += 1
            self._seen = last[0]
            return n

    def _canary(self, seq: int, cohort: str, payload: Mapping[str, Any]) -> None:
        """A live canary: remember the rollout, and route its share of requests if it was planned on our state."""
        if not payload.get("live"):
            return
        diff = diff_from_json(payload.get("diff", []))
        info = {"seq": seq, "cohort": cohort, "package": load_package(payload["package"]), "parent": payload["parent"],
                "diff": diff, "fraction": payload["fraction"], "salt": payload["salt"], "spec": payload["spec"],
                "downgrade": bool(payload.get("downgrade"))}
        self.rollouts[cohort] = info
        slot = self._slot(cohort)
        if slot.active.seq == info["parent"]:
            self._swap(cohort, Slot(slot.active, slot.active.apply_diff(diff), info["fraction"], info["salt"]))

    def _apply_diff(self, seq: int, kind: str, cohort: str, diff: Diff) -> None:
        if kind in GLOBAL:
            self.base = self.base.apply_diff(diff, seq=seq)
            for c, slot in list(self._slots.items()):
                self._swap(c, Slot(slot.active.apply_diff(diff, seq=seq)))
            return
        slot = self._slot(cohort)
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

    def route(self, cohort: str = DEFAULT, key: str = "") -> tuple[ControlState, str, int | None, ControlState]:
        """Return (the state a request uses, "active" or "canary", the live rollout's seq or None, the active state).

        Taken once per request from one slot, so the four always belong together.
        """
        slot = self._slots.get(cohort) or self._slots[DEFAULT]
        info = self.rollouts.get(cohort)
        rollout = info["seq"] if info is not None and slot.canary is not None else None
        if slot.canary is not None and in_canary(key, slot.fraction, slot.salt):
            return slot.canary, "canary", rollout, slot.active
        return slot.active, "active", rollout, slot.active

    def cohorts(self) -> list[str]:
        """Return the cohorts that have state."""
        return sorted(self._slots)

    # -- writing ------------------------------------------------------------------------------
    def _log(self, kind: str, cohort: str, pkg: MdqPackage | None, reason: str = "", **payload: Any) -> Event:
        return self.ledger.append(kind, cohort=cohort, package=pkg.name if pkg else None,
                                  version=pkg.semver if pkg else None, actor=self.actor, reason=reason,
                                  payload=payload)

    def _slot(self, cohort: str) -> Slot:
        """The cohort's slot; a cohort without state of its own starts from the base."""
        return self._slots.get(cohort) or Slot(self.base)

    def _swap(self, cohort: str, slot: Slot) -> None:
        self._slots[cohort] = slot
        if cohort == DEFAULT:
            self.current = slot.active

    def _overlay_base(self) -> None:
        """A reader sees the bounds and defaults installed plugins declare, in memory only (never written)."""
        missing = {p: v for p, v in base_data(self.registry).items() if p not in self.base.data}
        if missing:
            self.base = ControlState({**missing, **self.base.data}, self.base.seq)
            for c, slot in list(self._slots.items()):
                self._swap(c, Slot(ControlState({**missing, **slot.active.data}, slot.active.seq)))

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

    def _reconcile(self) -> None:
        """Close applies left open by a crashed writer with an `aborted` event saying whose and when."""
        try:
            timeout = self.policy.inflight_timeout_s
        except PolicyError:  # housekeeping still runs when the policy cannot be trusted (checks then refuse)
            timeout = Policy().inflight_timeout_s
        for first, last in self.ledger.open_applies():
            owner = first.payload.get("owner") or {}
            idle = time.time() - datetime.fromisoformat(normalize_ts(last.ts)).timestamp()
            # a live rollout is run by the servers, not by the process that began it
            live = last.kind in ("observed", "analysis") or (last.kind == "canary_started" and last.payload.get("live"))
            if owner.get("host") == OWNER["host"] and owner.get("pid") is not None and not live:
                dead, why = _gone(owner), f"its process {owner.get('pid')} on {owner['host']} is gone"
            else:
                dead, why = idle > timeout, f"nothing was heard from it for {idle:.0f} s (over {timeout:.0f} s)"
            if dead:
                info = self.rollouts.get(first.cohort)
                rollout = info["seq"] if info is not None and info["package"].name == first.package else None
                self.ledger.append("aborted", cohort=first.cohort, package=first.package, version=first.version,
                                   actor=self.actor, reason=f"the apply did not finish: {why}; last event #{last.seq} "
                                                            f"{last.kind} at {last.ts}; the state never changed",
                                   payload={"received": first.seq, "last": last.seq, "rollout": rollout})
                self.refresh()

    def apply(self, pkg: MdqPackage, *, cohort: str = DEFAULT, canary: float | None = None,
              inputs: Sequence[Mapping[str, Any]] = (), allow_downgrade: bool = False,
              reason: str | None = None) -> ApplyResult:
        """Run one package through check -> stage -> shadow -> canary -> promote; raise Rejected otherwise.

        The canary here is analysed on the recorded inputs routed to it; `begin_rollout` hands it
        to live traffic instead (servers route, measure and decide).
        """
        if canary is not None and not 0.0 <= canary <= 1.0:
            raise ValueError(f"canary fraction must be within [0, 1], got {canary}")
        with self._write:
            why = self._receive(pkg, cohort, reason, allow_downgrade)
            conflict = ""
            for _attempt in range(MAX_REPLANS):
                active, policy, staged, diff = self._prepare(pkg, cohort, why, allow_downgrade, conflict)
                kpis = self._analyse(pkg, cohort, policy, active, staged, inputs,
                                     policy.canary.fraction if canary is None else canary)
                try:
                    ev = self._commit("promoted", pkg.name, pkg.semver, cohort, diff, active.seq, why or "KPIs held")
                except ConflictError as exc:  # another writer changed the cohort meanwhile: plan again on top of it
                    conflict = str(exc)
                    continue
                return ApplyResult(pkg.ref, cohort, len(diff), kpis, ev.seq)
            self._log("aborted", cohort, pkg, f"gave up after {MAX_REPLANS} re-plans: {conflict}")
            raise Rejected(pkg.ref, "promote", f"the cohort kept changing under it ({conflict}); try again")

    def begin_rollout(self, pkg: MdqPackage, *, cohort: str = DEFAULT, fraction: float | None = None,
                      inputs: Sequence[Mapping[str, Any]] = (), allow_downgrade: bool = False,
                      reason: str | None = None) -> int:
        """Check, stage and shadow a package, then hand its canary to live traffic; return the rollout's seq.

        The `canary_started` event carries the staged diff, the state it was planned on, the
        routing (fraction, salt) and the policy's analysis spec; every server following the
        ledger then routes that share of requests to the staged state, and the rollout's
        controller concludes it with `conclude_rollout`.
        """
        with self._write:
            why = self._receive(pkg, cohort, reason, allow_downgrade)
            active, policy, staged, diff = self._prepare(pkg, cohort, why, allow_downgrade, "")
            frac = policy.canary.fraction if fraction is None else fraction
            if not 0.0 < frac <= 1.0:
                raise ValueError(f"a live canary needs a fraction within (0, 1], got {frac}")
            self._analyse(pkg, cohort, policy, active, staged, inputs, frac, live=True)
            return self._start_canary(pkg, cohort, policy, active, diff, frac, "").seq

    def conclude_rollout(self, rollout: int, *, promote: bool, reason: str, figures: Mapping[str, Any] | None = None,
                         actor: str | None = None) -> Event:
        """Promote or roll back a live rollout (by its `canary_started` seq); return the closing event.

        If the cohort moved on since the canary was planned, promoting re-plans it (every check
        again) and starts a fresh canary instead: the returned event is then a `canary_started`.
        """
        with self._write:
            info = self._rollout(rollout)
            pkg = info["package"]
            who = actor or self.actor
            if not promote:
                ev = self.ledger.append("rolled_back", cohort=info["cohort"], package=pkg.name, version=pkg.semver,
                                        actor=who, reason=reason,
                                        payload={"diff": [], "stage": "canary", "rollout": rollout, **(figures or {})})
                self.refresh()
                return ev
            try:
                return self._commit("promoted", pkg.name, pkg.semver, info["cohort"], info["diff"], info["parent"],
                                    reason, rollout=rollout, actor=who, **(figures or {}))
            except ConflictError as exc:
                return self._replan(info, str(exc))

    def replan_rollout(self, rollout: int, why: str) -> Event:
        """Re-plan a live rollout whose cohort moved on (every check again); return the new `canary_started`."""
        with self._write:
            return self._replan(self._rollout(rollout), why)

    def _rollout(self, seq: int) -> dict[str, Any]:
        """The live rollout started at entry `seq`, as the newest ledger says it stands."""
        self.refresh()
        info = next((r for r in self.rollouts.values() if r["seq"] == seq), None)
        if info is None:
            raise Rejected(str(seq), "canary", f"no live rollout started at entry {seq}")
        return info

    def _replan(self, info: Mapping[str, Any], why: str) -> Event:
        active, policy, _staged, diff = self._prepare(info["package"], info["cohort"], why, info["downgrade"], why)
        return self._start_canary(info["package"], info["cohort"], policy, active, diff, info["fraction"], why,
                                  replaces=info["seq"])

    # -- the steps ----------------------------------------------------------------------------
    def _receive(self, pkg: MdqPackage, cohort: str, reason: str | None, downgrade: bool) -> str:
        self.refresh()  # decide against the newest state any replica has promoted
        why = reason or (pkg.provenance.reason if pkg.provenance else "")
        with gc_paused():  # the kernel's bulk work only: gates and evaluators run with the collector on
            self._log("received", cohort, pkg, why, package=unstructure(pkg), owner=OWNER, downgrade=downgrade)
        return why

    def _prepare(self, pkg: MdqPackage, cohort: str, why: str, downgrade: bool,
                 conflict: str) -> tuple[ControlState, Policy, ControlState, Diff]:
        """Check and stage against the cohort's current state, recording `staged` (or `rejected`, raising)."""
        if conflict:
            self._swap(cohort, Slot(self._slot(cohort).active))
            self.refresh()
        active = self._slot(cohort).active
        try:
            live = self.rollouts.get(cohort)
            if live is not None and not conflict:
                raise MdqError(f"cohort {cohort!r} has a live rollout of {live['package'].ref} (entry {live['seq']}): "
                               f"wait for it to end, or end it with `mdq rollout abort`")
            if downgrade and not why:
                raise MdqError("--rollback (allow_downgrade) needs a reason, recorded in the ledger")
            policy = self.policy
            kid, gates = check_package(self.registry, pkg, active, cohort, policy, self.trust, downgrade)
            with gc_paused():
                staged, diff = self._stage(pkg, active, kid)
        except (MdqError, ValueError) as exc:
            self._log("rejected", cohort, pkg, str(exc), gates=getattr(exc, "results", {}))
            raise Rejected(pkg.ref, "check", str(exc)) from None
        self._log("staged", cohort, pkg, f"{len(diff)} changes" + (f"; re-planned: {conflict}" if conflict else ""),
                  changes=len(diff), parent=active.seq, gates=gates)
        return active, policy, staged, diff

    def _commit(self, kind: str, name: str, version: str, cohort: str, diff: Diff, parent: int, reason: str,
                actor: str | None = None, **extra: Any) -> Event:
        """Record a promotion or rollback if `parent` is still the cohort's head (else ConflictError)."""
        with gc_paused():
            ev = self.ledger.append(kind, cohort=cohort, package=name, version=version, actor=actor or self.actor,
                                    reason=reason, payload={"diff": diff_to_json(diff), "parent": parent, **extra},
                                    expect=(cohort, parent))
            self.refresh(own=(ev.seq, diff))  # the ledger's order is the truth: fold our change in through it
        return ev

    def _start_canary(self, pkg: MdqPackage, cohort: str, policy: Policy, active: ControlState, diff: Diff,
                      fraction: float, replanned: str, replaces: int | None = None) -> Event:
        ev = self._log("canary_started", cohort, pkg, f"live: {fraction:.0%} of requests to the staged state"
                       + (f"; re-planned: {replanned}" if replanned else ""), live=True, fraction=fraction,
                       salt=f"{pkg.ref}#{active.seq}", parent=active.seq, diff=diff_to_json(diff),
                       spec=attrs.asdict(policy.canary), package=unstructure(pkg), downgrade=False, rollout=replaces)
        self.refresh()
        return ev

    def _analyse(self, pkg: MdqPackage, cohort: str, policy: Policy, active: ControlState, staged: ControlState,
                 inputs: Sequence[Mapping[str, Any]], fraction: float, live: bool = False) -> dict[str, Any]:
        """Shadow on every recorded input, then (offline) the canary on those routed to it; roll back on any failure."""
        try:
            kpis = compare(self.registry, pkg, policy, active, staged, inputs)
            if len(inputs) < policy.min_shadow_inputs:
                if not policy.allow_skip_shadow:
                    raise Rejected(pkg.ref, "shadow", f"{len(inputs)} recorded inputs, the policy requires at least "
                                                      f"{policy.min_shadow_inputs}: give --inputs (or let the policy "
                                                      f"allow skipping)")
                self._log("shadow_skipped", cohort, pkg, f"{len(inputs)} recorded inputs, under the policy's "
                                                         f"{policy.min_shadow_inputs}; the policy allows skipping", kpis=kpis)
            elif kpis["regressions"]:
                self._log("shadow_failed", cohort, pkg, "; ".join(kpis["regressions"]), kpis=kpis)
                raise Rejected(pkg.ref, "shadow", "; ".join(kpis["regressions"]))
            else:
                self._log("shadow_passed", cohort, pkg, f"no KPI regressed on {len(inputs)} inputs", kpis=kpis)
            if live:
                return {"shadow": kpis}
            salt = pkg.ref
            self._swap(cohort, Slot(active, staged, fraction, salt))
            routed = [r for i, r in enumerate(inputs) if in_canary(str(r.get("key", i)), fraction, salt)]
            self._log("canary_started", cohort, pkg, f"{fraction:.0%} of recorded inputs; {len(routed)} routed to it",
                      fraction=fraction, routed=len(routed))
            ckpis = compare(self.registry, pkg, policy, active, staged, routed) if routed else {"inputs": 0}
            if routed and ckpis["regressions"]:
                raise Rejected(pkg.ref, "canary", "; ".join(ckpis["regressions"]))
            return {"shadow": kpis, "canary": ckpis}
        except Exception as exc:  # any failure after staging: drop the staged state, record it
            now = self._slots.get(cohort)  # a refresh may have moved the cohort on meanwhile
            self._swap(cohort, Slot(now.active if now is not None else active))
            why = exc.reason if isinstance(exc, Rejected) else f"{type(exc).__name__}: {exc}"
            stage = exc.stage if isinstance(exc, Rejected) else "shadow/canary"
            self._log("rolled_back", cohort, pkg, why, diff=[], stage=stage)
            self.refresh()
            raise Rejected(pkg.ref, stage, why) from (None if isinstance(exc, Rejected) else exc)

    def rollback(self, name: str, *, cohort: str = DEFAULT, reason: str = "operator asked") -> int:
        """Undo an active package in one cohort exactly; record the diff. Return the ledger seq."""
        with self._write, gc_paused():
            for _attempt in range(MAX_REPLANS):
                self.refresh()
                slot = self._slots.get(cohort)
                entry = slot.active.get(("package", name)) if slot else None
                if entry is None:
                    active = ", ".join(sorted(slot.active.packages())) if slot else ""
                    raise Rejected(name, "check", f"no active package {name!r} in cohort {cohort!r} "
                                                  f"(active: {active or 'none'})")
                hist = history(slot.active, name)
                diff = undo.undo_diff(slot.active, name)
                diff.append((("history", name), slot.active.get(("history", name)),
                             {**hist, "rolled_back": sorted({*hist["rolled_back"], entry["version"]})}))
                with contextlib.suppress(ConflictError):  # the cohort moved on meanwhile: plan the undo again
                    return self._commit("rolled_back", name, entry["version"], cohort, diff, slot.active.seq, reason).seq
            raise Rejected(name, "check", "the cohort kept changing under the rollback; try again")

    def set_policy(self, doc: Any, private: Any | None, reason: str) -> int:
        """Make `doc` the operator policy in effect (signed by `private` if given); return the ledger seq."""
        with self._write:
            self.refresh()
            diff = policy_diff(self.base, doc, private)
            trial = ControlState({**self.base.data, diff[0][0]: diff[0][2]})
            in_effect(trial, self.trust)  # refuse now what would lock every package out
            ev = self.ledger.append("policy", cohort=DEFAULT, actor=self.actor, reason=reason,
                                    payload={"diff": diff_to_json(diff)}, expect=(DEFAULT, self.base.seq))
            self.refresh(own=(ev.seq, diff))
            return ev.seq

    def _stage(self, pkg: MdqPackage, active: ControlState, kid: str | None) -> tuple[ControlState, Diff]:
        pre, diff = active, []
        if active.get(("package", pkg.name)) is not None:  # upgrade or explicit downgrade: undo the old first
            diff = undo.undo_diff(active, pkg.name)
            pre = active.apply_diff(diff)
        changes, ops = pre.plan_ops(pkg.atoms)
        if not pkg.rollback.auto:
            problems = undo.inverse_problems(pre, pre.apply_diff(changes), changes, pkg.inverse_atoms())
            if problems:
                raise MdqError("; ".join(problems))
        hist = history(pre, pkg.name)
        top = pkg.semver if hist["max"] is None or version_key(pkg.semver) > version_key(hist["max"]) else hist["max"]
        changes.append((("package", pkg.name), pre.get(("package", pkg.name)),
                        undo.entry(pkg.semver, undo.next_n(pre), ops, kid)))
        changes.append((("history", pkg.name), pre.get(("history", pkg.name)),
                        {"max": top, "rolled_back": hist["rolled_back"], "key": kid or hist["key"]}))
        if not diff:  # a fresh package: nothing to merge with an undo
            return active.apply_diff(changes), changes
        # undo and re-apply as one diff: each path from the value it had first to the value it ends with
        first = {p: old for p, old, _new in reversed(diff + changes)}
        last = {p: new for p, _old, new in diff + changes}
        full = [(p, first[p], new) for p, new in last.items() if first[p] != new]
        return active.apply_diff(full), full


__all__ = ["ApplyResult", "DEFAULT", "Runtime", "Slot"]
