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

import os
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from itertools import takewhile
from typing import Any

from attrs import frozen

from ..errors import ConflictError, MdqError, PolicyError, Rejected
from ..gcpause import gc_paused
from ..ledger.base import GLOBAL, Event, Ledger, diff_from_json, diff_to_json, normalize_ts, replay_with_base, state_events
from ..model import MdqPackage, unstructure
from ..model.state import ControlState, Diff
from ..registry import Registry
from ..signing import TrustPolicy
from . import undo
from .checks import GateRefusal, base_data, check_package, compare, history
from .cohorts import in_canary
from .policy import Policy, in_effect

DEFAULT = "default"
MAX_REPLANS = 50


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
        if self.readonly:
            self._overlay_base()
        else:
            self._reconcile()
            self._sync_base()

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
            for seq, kind, cohort, diff in state_events(tap(), self._seen):
                self._apply_diff(seq, kind, cohort, own[1] if own is not None and seq == own[0] else diff_from_json(diff))
                n += 1
            self._seen = last[0]
            return n

    def _apply_diff(self, seq: int, kind: str, cohort: str, diff: Diff) -> None:
        if kind in GLOBAL:
            self.base = self.base.apply_diff(diff, seq=seq)
            for c, slot in list(self._slots.items()):
                self._swap(c, Slot(slot.active.apply_diff(diff, seq=seq)))
            return
        slot = self._slots.get(cohort) or Slot(self.base)
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
    def _log(self, kind: str, cohort: str, pkg: MdqPackage | None, reason: str = "", **payload: Any) -> Event:
        return self.ledger.append(kind, cohort=cohort, package=pkg.name if pkg else None,
                                  version=pkg.semver if pkg else None, actor=self.actor, reason=reason,
                                  payload=payload)

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
        timeout = self.policy_or_default().inflight_timeout_s
        for first, last in self.ledger.open_applies():
            owner = first.payload.get("owner") or {}
            idle = time.time() - _epoch(last.ts)
            if owner.get("host") == OWNER["host"] and owner.get("pid") is not None:
                dead, why = _gone(owner), f"its process {owner.get('pid')} on {owner['host']} is gone"
            else:
                dead, why = idle > timeout, f"nothing was heard from it for {idle:.0f} s (over {timeout:.0f} s)"
            if dead:
                self.ledger.append("aborted", cohort=first.cohort, package=first.package, version=first.version,
                                   actor=self.actor, reason=f"the apply did not finish: {why}; last event #{last.seq} "
                                                            f"{last.kind} at {last.ts}; the state never changed",
                                   payload={"received": first.seq, "last": last.seq})

    def policy_or_default(self) -> Policy:
        """The policy in effect, or the default one if it cannot be read (for housekeeping, never for checks)."""
        try:
            return self.policy
        except PolicyError:
            return Policy()

    def apply(self, pkg: MdqPackage, *, cohort: str = DEFAULT, canary: float | None = None,
              inputs: Sequence[Mapping[str, Any]] = (), allow_downgrade: bool = False,
              reason: str | None = None) -> ApplyResult:
        """Run one package through check -> stage -> shadow -> canary -> promote; raise Rejected otherwise."""
        if canary is not None and not 0.0 <= canary <= 1.0:
            raise ValueError(f"canary fraction must be within [0, 1], got {canary}")
        with self._write:
            self.refresh()  # decide against the newest state any replica has promoted
            why = reason or (pkg.provenance.reason if pkg.provenance else "")
            with gc_paused():  # the kernel's bulk work only: gates and evaluators run with the collector on
                self._log("received", cohort, pkg, why, package=unstructure(pkg), owner=OWNER,
                          downgrade=allow_downgrade)
            conflict = ""
            for _attempt in range(MAX_REPLANS):
                active = (self._slots.get(cohort) or Slot(self.base)).active
                try:
                    if allow_downgrade and not why:
                        raise MdqError("--rollback (allow_downgrade) needs a reason, recorded in the ledger")
                    policy = self.policy
                    kid, gates = check_package(self.registry, pkg, active, cohort, policy, self.trust, allow_downgrade)
                    with gc_paused():
                        staged, diff = self._stage(pkg, active, kid)
                except (MdqError, ValueError) as exc:
                    self._log("rejected", cohort, pkg, str(exc), gates=getattr(exc, "results", {}))
                    raise Rejected(pkg.ref, "check", str(exc)) from None
                self._log("staged", cohort, pkg, f"{len(diff)} changes" + (f"; re-planned: {conflict}" if conflict else ""),
                          changes=len(diff), parent=active.seq, gates=gates)
                kpis = self._analyse(pkg, cohort, policy, active, staged, inputs,
                                     policy.canary.fraction if canary is None else canary)
                try:
                    with gc_paused():
                        ev = self.ledger.append("promoted", cohort=cohort, package=pkg.name, version=pkg.semver,
                                                actor=self.actor, reason=why or "KPIs held",
                                                payload={"diff": diff_to_json(diff), "parent": active.seq},
                                                expect=(cohort, active.seq))
                except ConflictError as exc:  # another writer changed the cohort meanwhile: plan again on top of it
                    self._swap(cohort, Slot((self._slots.get(cohort) or Slot(self.base)).active))
                    self.refresh()
                    conflict = str(exc)
                    continue
                with gc_paused():
                    self.refresh(own=(ev.seq, diff))  # the ledger's order is the truth: fold our promotion in through it
                return ApplyResult(pkg.ref, cohort, len(diff), kpis, ev.seq)
            self._log("aborted", cohort, pkg, f"gave up after {MAX_REPLANS} re-plans: {conflict}")
            raise Rejected(pkg.ref, "promote", f"the cohort kept changing under it ({conflict}); try again")

    def _analyse(self, pkg: MdqPackage, cohort: str, policy: Policy, active: ControlState, staged: ControlState,
                 inputs: Sequence[Mapping[str, Any]], fraction: float) -> dict[str, Any]:
        """Shadow on every recorded input, then the canary on those routed to it; roll back on any failure."""
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
            salt = pkg.ref
            self._swap(cohort, Slot(active, staged, fraction, salt))
            routed = [r for i, r in enumerate(inputs) if in_canary(str(r.get("key", i)), fraction, salt)]
            self._log("canary_started", cohort, pkg, f"{fraction:.0%} of requests; {len(routed)} recorded inputs "
                                                     f"routed to it", fraction=fraction, routed=len(routed))
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
                if slot is None or slot.active.get(("package", name)) is None:
                    active = ", ".join(sorted(slot.active.packages())) if slot else ""
                    raise Rejected(name, "check", f"no active package {name!r} in cohort {cohort!r} "
                                                  f"(active: {active or 'none'})")
                entry = slot.active.get(("package", name))
                hist = history(slot.active, name)
                diff = undo.undo_diff(slot.active, name)
                diff.append((("history", name), slot.active.get(("history", name)),
                             {**hist, "rolled_back": sorted({*hist["rolled_back"], entry["version"]})}))
                try:
                    ev = self.ledger.append("rolled_back", cohort=cohort, package=name, version=entry["version"],
                                            actor=self.actor, reason=reason,
                                            payload={"diff": diff_to_json(diff), "parent": slot.active.seq},
                                            expect=(cohort, slot.active.seq))
                except ConflictError:
                    continue
                self.refresh(own=(ev.seq, diff))
                return ev.seq
            raise Rejected(name, "check", "the cohort kept changing under the rollback; try again")

    def set_policy(self, doc: Any, private: Any | None, reason: str) -> int:
        """Make `doc` the operator policy in effect (signed by `private` if given); return the ledger seq."""
        from .policy import policy_diff

        with self._write:
            self.refresh()
            diff = policy_diff(self.base, doc, private)
            trial = ControlState({**self.base.data, diff[0][0]: diff[0][2]})
            in_effect(trial, self.trust)  # refuse now what would lock every package out
            ev = self.ledger.append("policy", cohort=DEFAULT, actor=self.actor, reason=reason,
                                    payload={"diff": diff_to_json(diff)}, expect=(DEFAULT, self.base.seq))
            self.refresh(own=(ev.seq, diff))
            return ev.seq

    # -- the steps ----------------------------------------------------------------------------
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
        top = pkg.semver if hist["max"] is None or _newer(pkg.semver, hist["max"]) else hist["max"]
        changes.append((("package", pkg.name), pre.get(("package", pkg.name)),
                        undo.entry(pkg.semver, undo.next_n(pre), ops, kid)))
        changes.append((("history", pkg.name), pre.get(("history", pkg.name)),
                        {"max": top, "rolled_back": hist["rolled_back"], "key": kid or hist["key"]}))
        if not diff:  # a fresh package: nothing to merge with an undo
            return active.apply_diff(changes), changes
        merged: dict[tuple[str, ...], tuple[Any, Any]] = {}
        for p, old, new in diff + changes:
            merged[p] = (merged[p][0] if p in merged else old, new)
        full = [(p, o, n) for p, (o, n) in merged.items() if o != n]
        return active.apply_diff(full), full


def _newer(a: str, b: str) -> bool:
    from ..versions.ranges import version_key

    return version_key(a) > version_key(b)


def _epoch(ts: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(normalize_ts(ts).replace("Z", "+00:00")).timestamp()


__all__ = ["ApplyResult", "DEFAULT", "Runtime", "Slot"]
