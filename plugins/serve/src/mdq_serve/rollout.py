"""Live canary analysis: every replica counts, one leader decides, the ledger records both.

Each replica keeps, per live rollout and arm (active / canary), the count, sum and sum of squares
of every KPI observation its pipelines return, and flushes them every interval as one `observed`
event. For a request served by the canary, a pipeline that can (`observe`) also measures the
same request under the active state without serving it: a *paired* observation, whose
difference removes the request-to-request spread that makes two arms of different requests hard
to compare. The leader (the holder of the ledger's "rollouts" lock, so exactly one across
replicas) merges every replica's observations of the interval and appends one `analysis` event.
For a KPI where higher is better:

    paired (n pairs, differences c_i - a_i with mean d and variance v):
    d, se = mean(c - a), sqrt(v / n)
    unpaired (means m, variances v and counts n per arm):
    d, se = m_canary - m_active, sqrt(v_active / n_active + v_canary / n_canary)

    (d negated when lower is better: d > 0 is an improvement)
    T  = tolerance + margin * |mean of the active side|  (the package's tolerance, within the policy's ceiling)

    pass         if d - z se >= -T        (confidently no worse than T)
    fail         if d + z se <  -T        (confidently worse than T)
    inconclusive otherwise

An interval passes when every judged KPI passes, fails when any fails, and is `insufficient`
when either arm has fewer than `min_requests` observations. `intervals` passing intervals in a
row promote; a failing one rolls back with its figures; a rollout that is still undecided after
`timeout_s` is rolled back (a canary without traffic never promotes). Worked example: active
0.40 +- 0.10 over 50, canary 0.38 +- 0.10 over 50, margin 0.05, z 1.645: d = -0.02,
se = 0.02, T = 0.02, so d - z se = -0.053 < -T and d + z se = 0.013 >= -T: inconclusive.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping
from typing import Any

ARMS = ("active", "canary")


def _empty() -> dict[str, Any]:
    return {"n": 0, "kpis": {}}


def _add(acc: dict[str, list[float]], k: str, v: Any, base: Any = 0.0) -> None:
    s = acc.setdefault(k, [0.0, 0.0, 0, 0.0])  # sum, sum of squares, count, sum of the active side (pairs)
    if all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in (v, base)):
        s[0] += v
        s[1] += v * v
        s[2] += 1
        s[3] += base
    else:  # a non-finite observation poisons the KPI: the analysis must fail, not skip it
        s[0] = math.nan


class Recorder:
    """One replica's per-rollout, per-arm KPI sums since its last flush (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._acc: dict[int, dict[str, dict[str, Any]]] = {}

    def observe(self, rollout: int, arm: str, observations: list[Mapping[str, float]]) -> None:
        """Add one request's observations (one per scored item) to the rollout's arm."""
        with self._lock:
            acc = self._slot(rollout)[arm]
            for obs in observations:
                acc["n"] += 1
                for k, v in obs.items():
                    _add(acc["kpis"], k, v)

    def pair(self, rollout: int, canary: list[Mapping[str, float]], active: list[Mapping[str, float]]) -> None:
        """Add paired observations: the same items measured under the canary (served) and the active state."""
        with self._lock:
            acc = self._slot(rollout)["pairs"]
            for c, a in zip(canary, active):
                acc["n"] += 1
                for k in c.keys() & a.keys():
                    _add(acc["kpis"], k, c[k] - a[k] if _num(c[k]) and _num(a[k]) else math.nan, a[k])

    def _slot(self, rollout: int) -> dict[str, dict[str, Any]]:
        return self._acc.setdefault(rollout, {a: _empty() for a in (*ARMS, "pairs")})

    def drain(self) -> dict[int, dict[str, dict[str, Any]]]:
        """Return and forget everything observed since the last drain."""
        with self._lock:
            out, self._acc = self._acc, {}
            return out


def _num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def merge(observed: list[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Merge `observed` payloads (several replicas, one rollout) into per-arm (and paired) totals."""
    total = {a: _empty() for a in (*ARMS, "pairs")}
    for payload in observed:
        for arm in total:
            src, dst = payload["arms"].get(arm, _empty()), total[arm]
            dst["n"] += src["n"]
            for k, vals in src["kpis"].items():
                t = dst["kpis"].setdefault(k, [0.0, 0.0, 0, 0.0])
                for i, v in enumerate(vals):
                    t[i] += v
    return total


def _moments(s: float, s2: float, n: int) -> tuple[float, float]:
    mean = s / n
    return mean, max(s2 / n - mean * mean, 0.0) * n / max(n - 1, 1)


def analyse(arms: Mapping[str, Mapping[str, Any]], directions: Mapping[str, str], spec: Mapping[str, Any],
            tolerance: Mapping[str, float]) -> dict[str, Any]:
    """Judge one interval (module docstring); return the verdict with every figure behind it."""
    n = {a: arms[a]["n"] for a in ARMS}
    out: dict[str, Any] = {"n": {**n, "pairs": arms.get("pairs", _empty())["n"]}, "kpis": {}, "verdict": "pass",
                           "reasons": []}
    if min(n.values()) < spec["min_requests"]:
        out["verdict"] = "insufficient"
        out["reasons"].append(f"{n['active']} active / {n['canary']} canary observations, fewer than "
                              f"{spec['min_requests']} per arm")
        return out
    verdicts = []
    pairs = arms.get("pairs", _empty())
    for k, way in sorted(directions.items()):
        stats = {a: arms[a]["kpis"].get(k) for a in ARMS}
        if any(s is None or s[2] == 0 for s in stats.values()):
            continue  # this pipeline does not report k
        p = pairs["kpis"].get(k)
        if p is not None and p[2] >= spec["min_requests"]:  # paired: the same requests under both states
            dm, dv = _moments(p[0], p[1], p[2])
            ma = p[3] / p[2]
            mc, d, se, how = ma + dm, dm, math.sqrt(dv / p[2]), "paired"
        else:
            (ma, va), (mc, vc) = (_moments(*stats[a][:3]) for a in ARMS)
            d, se, how = mc - ma, math.sqrt(va / stats["active"][2] + vc / stats["canary"][2]), "arms"
        d = d * (1 if way == "higher" else -1)
        tol = tolerance.get(k, 0.0) + spec["margin"] * abs(ma)
        lo, hi = d - spec["z"] * se, d + spec["z"] * se
        if not all(math.isfinite(x) for x in (ma, mc, lo, hi)):
            v = "fail"
        else:
            v = "pass" if lo >= -tol else ("fail" if hi < -tol else "inconclusive")
        out["kpis"][k] = {"active": ma, "canary": mc, "better": way, "diff": d, "se": se, "allowed": -tol,
                          "verdict": v, "by": how}
        verdicts.append(v)
        if v == "fail":
            out["reasons"].append(f"{k} {ma:.4g} -> {mc:.4g} ({'higher' if way == 'higher' else 'lower'} is "
                                  f"better; allowed {-tol:+.3g}, measured {d:+.3g} +- {spec['z'] * se:.2g})")
    if not verdicts:
        out["verdict"] = "insufficient"
        out["reasons"].append("no KPI with a known direction was observed on both arms")
    elif "fail" in verdicts:
        out["verdict"] = "fail"
    elif "inconclusive" in verdicts:
        out["verdict"] = "inconclusive"
    return out


class Controller:
    """Runs the analysis of every live rollout, on the replica that holds the ledger's "rollouts" lock."""

    def __init__(self, runtime: Any, directions: Mapping[str, str], clock: Any = time.time, replica: str = "") -> None:
        self.rt, self.directions, self.clock, self.replica = runtime, dict(directions), clock, replica
        self._since: dict[int, int] = {}  # rollout -> the seq its last analysis covered

    def leader(self) -> bool:
        """Tell whether this replica decides (take the lock if it is free)."""
        return bool(self.rt.ledger.try_lead("rollouts"))

    def step(self) -> list[Any]:
        """Analyse every live rollout whose interval is due; return the events written."""
        if not self.leader():
            return []
        written = []
        for info in list(self.rt.rollouts.values()):
            ev = self._step(info)
            if ev is not None:
                written.append(ev)
        return written

    def _history(self, info: Mapping[str, Any]) -> tuple[list[Any], list[Any]]:
        """Return (this rollout's analysis events, its observed events since the last analysis)."""
        analyses, observed = [], []
        for ev in self.rt.ledger.events(self._since.get(info["seq"], info["seq"])):
            if ev.payload.get("rollout") != info["seq"]:
                continue
            if ev.kind == "analysis":
                analyses.append(ev)
                observed = [o for o in observed if o.seq > ev.seq]
            elif ev.kind == "observed":
                observed.append(ev)
        return analyses, observed

    def _step(self, info: Mapping[str, Any]) -> Any:
        from mdqcore.ledger.base import normalize_ts

        spec, pkg, seq = info["spec"], info["package"], info["seq"]
        head = self.rt.snapshot(info["cohort"]).seq
        if head != info["parent"]:  # the cohort moved on: the staged state is stale, nobody is routed to it
            return self.rt.replan_rollout(seq, f"the cohort moved on to entry {head} since the canary was planned "
                                               f"on entry {info['parent']}")
        analyses, observed = self._history(info)
        last = analyses[-1] if analyses else None
        started = _epoch(normalize_ts(last.ts if last else self._started(seq)))
        if self.clock() - started < spec["interval_s"]:
            return None
        result = analyse(merge([o.payload for o in observed]), self.directions, spec, pkg.kpi.tolerance)
        passing = (last.payload["passing"] if last else 0) + 1 if result["verdict"] == "pass" else 0
        result.update(rollout=seq, interval=(last.payload["interval"] + 1) if last else 1, passing=passing,
                      needed=spec["intervals"], observations=[o.seq for o in observed], leader=self.replica,
                      replicas=sorted({o.payload["replica"] for o in observed}))
        figures = ", ".join(f"{k} {v['active']:.4g} -> {v['canary']:.4g}" for k, v in result["kpis"].items())
        ev = self.rt.ledger.append("analysis", cohort=info["cohort"], package=pkg.name, version=pkg.semver,
                                   actor="mdq-serve", reason=f"interval {result['interval']}: {result['verdict']}"
                                                             + (f" ({figures})" if figures else ""), payload=result)
        self._since[seq] = ev.seq - 1
        age = self.clock() - _epoch(normalize_ts(self._started(seq)))
        if result["verdict"] == "fail":
            return self.rt.conclude_rollout(seq, promote=False, actor="mdq-serve", figures={"analysis": ev.seq},
                                            reason=f"live canary failed interval {result['interval']}: "
                                                   + "; ".join(result["reasons"]))
        if passing >= spec["intervals"]:
            return self.rt.conclude_rollout(seq, promote=True, actor="mdq-serve", figures={"analysis": ev.seq},
                                            reason=f"live canary passed {passing} intervals in a row ({figures})")
        if age > spec["timeout_s"]:
            return self.rt.conclude_rollout(seq, promote=False, actor="mdq-serve", figures={"analysis": ev.seq},
                                            reason=f"no decision after {age:.0f} s (over {spec['timeout_s']:.0f} s): "
                                                   + ("; ".join(result["reasons"]) or result["verdict"]))
        return ev

    def _started(self, seq: int) -> str:
        return next(self.rt.ledger.events(seq - 1)).ts


def _epoch(ts: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
