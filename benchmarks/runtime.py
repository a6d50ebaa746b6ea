"""Runtime costs (issues #4, #15, #16), each beside its anchor in one run.

  snapshot read      `runtime.current` (the hot path) and `runtime.snapshot(cohort)` vs a plain
                     attribute read of an ordinary object                goal: <= 2x
  apply latency      one package of 1, 100 and 10,000 Idx atoms through check (the policy's
                     mandatory gates) -> stage -> shadow (one evaluator, one input) -> canary ->
                     promote (compare-and-swap)                          goal: 10,000 atoms < 100 ms
  rollback           one package among 100 active ones (exact recomputation)
  ledger appends/s   SQLiteLedger.append vs raw sqlite3 INSERTs with the same durability (WAL,
                     synchronous=FULL, one transaction each)              goal: >= 0.6x
                     PostgresLedger.append vs raw psycopg INSERTs (one transaction each) on a local
                     cluster, when PostgreSQL is installed
  replay             replay_ledger(ledger) over 1,000,000 promoted events in SQLite  goal: < 5 s
  checkpoint+verify  make_checkpoint + verify(ledger, [checkpoint]) over the same 1,000,000 events
  writers            4 processes x 50 rounds each adding 0.001 to one entry: updates lost (goal 0)
                     and applies/s against 1 process doing all 200, on SQLite and PostgreSQL

    python benchmarks/runtime.py [--events 1000000] [--rounds 50]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import time
from pathlib import Path

import mdqcore
from _common import per_call_ns, report
from mdqcore import builtin
from mdqcore.ledger import make_checkpoint, make_event, replay_ledger, verify
from mdqcore.ledger.sqlite import SQLiteLedger
from mdqcore.runtime import Runtime
from mdqcore.testing import load_isolated


class Neutral:
    """One evaluator, so that shadow analysis has something to measure (it refuses to pass on nothing)."""

    @mdqcore.hookimpl
    def register_evaluators(self, register):
        register("neutral", lambda state, inputs: {"ok": 1.0})


INPUTS = [{"key": "bench"}]


def snapshot_rows(rt: Runtime) -> list[dict]:
    class Plain:
        def __init__(self):
            self.current = rt.current
    plain = Plain()
    base = per_call_ns(lambda: plain.current, number=1_000_000)
    hot = per_call_ns(lambda: rt.current, number=1_000_000)
    cohort = per_call_ns(lambda: rt.snapshot("default"), number=1_000_000)
    return [{"what": "plain attribute read (anchor)", "ns": base, "ratio": 1.0},
            {"what": "runtime.current", "ns": hot, "ratio": hot / base},
            {"what": "runtime.snapshot(cohort)", "ns": cohort, "ratio": cohort / base}]


def apply_rows(rt: Runtime, reps: int = 5) -> list[dict]:
    """Fresh packages (new names) and upgrades (a new version replaces the old: undo + apply)."""
    rows = []
    for n in (1, 100, 10_000):
        for mode in ("fresh", "upgrade"):
            times = []
            for rep in range(reps):
                name = f"bench.{mode}.n{n}" + (f".r{rep}" if mode == "fresh" else "")
                pkg = mdqcore.load_package({"name": name, "semver": f"1.0.{rep}", "atoms": [
                    {"type": "Idx", "feature": "idf", "seg": f"{mode}{i}", "delta": 0.001} for i in range(n)]})
                t0 = time.perf_counter()
                rt.apply(pkg, inputs=INPUTS)
                times.append(time.perf_counter() - t0)
            if mode == "upgrade":
                times = times[1:]  # the first of the series is a fresh apply
            rows.append({"atoms": n, "mode": mode, "apply_ms_median": sorted(times)[len(times) // 2] * 1e3,
                         "goal_ms": 100 if n == 10_000 else None})
    return rows


def rollback_rows(rt: Runtime, active: int = 100, atoms: int = 100) -> list[dict]:
    """Roll back the first of `active` packages that all touch one shared entry (the exact recomputation's worst case)."""
    for k in range(active):
        rt.apply(mdqcore.load_package({"name": f"bench.rb{k}", "semver": "1.0.0", "atoms": [
            {"type": "Idx", "feature": "idf", "seg": "shared", "delta": 0.0001}] + [
            {"type": "Idx", "feature": "idf", "seg": f"rb{k}.{i}", "delta": 0.001} for i in range(atoms - 1)]}),
            inputs=INPUTS)
    t0 = time.perf_counter()
    rt.rollback("bench.rb0")
    took = time.perf_counter() - t0
    return [{"active_packages": len(rt.current.packages()) + 1, "atoms_each": atoms, "rollback_ms": took * 1e3}]


def sqlite_append_rows(tmp: Path, n: int) -> list[dict]:
    led = SQLiteLedger(tmp / "bench.sqlite")
    t0 = time.perf_counter()
    for i in range(n):
        led.append("promoted", cohort="default", package="p", version="1.0.0", actor="bench",
                   payload={"diff": [[["index", "idf", f"t{i}"], None, 0.1]]})
    ours = n / (time.perf_counter() - t0)
    db = sqlite3.connect(str(tmp / "raw.sqlite"), isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE events (seq INTEGER PRIMARY KEY, body TEXT)")
    body = json.dumps({"diff": [[["index", "idf", "t"], None, 0.1]]})
    t0 = time.perf_counter()
    for i in range(n):
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO events(seq, body) VALUES (?, ?)", (i + 1, body))
        db.execute("COMMIT")
    raw = n / (time.perf_counter() - t0)
    return [{"backend": "sqlite", "ledger_appends_per_s": ours, "raw_inserts_per_s": raw, "ratio": ours / raw}]


def postgres_append_rows(n: int) -> list[dict]:
    from mdq_ledger_postgres import LocalCluster

    from mdqcore.errors import LedgerError

    try:
        cluster = LocalCluster()
    except LedgerError as exc:
        return [{"backend": "postgres", "note": f"skipped: {exc}"}]
    try:
        import psycopg

        from mdq_ledger_postgres import PostgresLedger
        led = PostgresLedger(cluster.fresh_url())
        t0 = time.perf_counter()
        for i in range(n):
            led.append("promoted", cohort="default", package="p", version="1.0.0", actor="bench",
                       payload={"diff": [[["index", "idf", f"t{i}"], None, 0.1]]})
        ours = n / (time.perf_counter() - t0)
        conn = psycopg.connect(cluster.fresh_url(), autocommit=True)
        conn.execute("CREATE TABLE raw (seq BIGINT PRIMARY KEY, body TEXT)")
        body = json.dumps({"diff": [[["index", "idf", "t"], None, 0.1]]})
        t0 = time.perf_counter()
        for i in range(n):
            with conn.transaction():
                conn.execute("INSERT INTO raw VALUES (%s, %s)", (i + 1, body))
        raw = n / (time.perf_counter() - t0)
        return [{"backend": "postgres", "ledger_appends_per_s": ours, "raw_inserts_per_s": raw, "ratio": ours / raw}]
    finally:
        cluster.stop()


def replay_row(tmp: Path, n: int) -> dict:
    path = tmp / "replay.sqlite"
    led = SQLiteLedger(path)  # a real ledger: schema, triggers, its genesis entry
    genesis = next(iter(led.raw_rows()))
    prev, ts, first = genesis[8], genesis[1], 2  # every fixture event at the genesis's time: time never goes back
    led.close()
    db = sqlite3.connect(str(path), isolation_level=None)
    db.execute("PRAGMA synchronous=OFF")  # building the fixture fast; replay reads it like any ledger
    db.execute("BEGIN")
    t0 = time.perf_counter()
    for i in range(first, n + 1):
        ev = make_event(i, prev, ts,
                        "promoted", "default" if i % 10 else "canary", f"p{i % 100}", "1.0.0", "bench", "",
                        {"diff": [[["index", "idf", f"t{i % 5000}"], None, i * 1e-6]]})
        db.execute("INSERT INTO events(seq, ts, kind, cohort, package, version, body, prev_hash, hash) "
                   "VALUES (?,?,?,?,?,?,?,?,?)", (i, ev.ts, ev.kind, ev.cohort, ev.package, ev.version, ev.text, prev, ev.hash))
        prev = ev.hash
    db.execute("COMMIT")
    build = time.perf_counter() - t0
    led = SQLiteLedger(path, readonly=True)
    t0 = time.perf_counter()
    states = replay_ledger(led)
    took = time.perf_counter() - t0
    assert states["default"].index("idf", "t1") > 0
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from mdqcore.signing import TrustPolicy, public_text
    key, trust = Ed25519PrivateKey.generate(), TrustPolicy()
    trust.trust(public_text(key.public_key()))
    t0 = time.perf_counter()
    cp = make_checkpoint(led, key)
    t_cp = time.perf_counter() - t0
    t0 = time.perf_counter()
    rep = verify(led, [cp])
    t_verify = time.perf_counter() - t0
    assert rep.ok and rep.anchored == n
    return {"events": n, "replay_s": took, "goal_s": 5.0, "checkpoint_s": t_cp, "verify_with_checkpoint_s": t_verify,
            "fixture_build_s": build}


WRITER = """
import sys, mdqcore
from mdqcore import builtin
from mdqcore.ledger import open_ledger
from mdqcore.runtime import Runtime
from mdqcore.testing import load_isolated
url, wid, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
reg = load_isolated(builtin, "core")
if url.startswith("postgresql"):
    import mdq_ledger_postgres.plugin
    reg = load_isolated(mdq_ledger_postgres.plugin, "ledger_postgres", registry=reg)
rt = Runtime(reg, open_ledger(url, reg), actor=f"writer-{wid}")
for k in range(rounds):
    rt.apply(mdqcore.load_package({"name": f"w{wid}.r{k}", "semver": "1.0.0", "atoms": [
        {"type": "Idx", "feature": "idf", "seg": "shared", "delta": 0.001}]}))
"""


def writer_rows(backend: str, urls: tuple[str, str], reg: mdqcore.Registry, rounds: int) -> list[dict]:
    """4 writer processes x `rounds`, then 1 process x 4*rounds on a fresh ledger: lost updates and throughput."""
    import subprocess
    import sys

    from mdqcore.ledger import open_ledger

    out = []
    for (procs, per), u in zip(((4, rounds), (1, 4 * rounds)), urls):
        led = open_ledger(u, reg)
        Runtime(reg, led).set_policy({"allow_skip_shadow": True}, None, "benchmark: core loads no evaluator")
        t0 = time.perf_counter()
        ps = [subprocess.Popen([sys.executable, "-c", WRITER, u, str(i), str(per)]) for i in range(procs)]
        assert all(p.wait() == 0 for p in ps)
        took = time.perf_counter() - t0
        expected = 0.0
        for _ in range(procs * per):
            expected += 0.001
        got = replay_ledger(led)["default"].index("idf", "shared")
        lost = round((expected - got) / 0.001)
        out.append({"backend": backend, "writers": procs, "applies": procs * per, "lost_updates": lost,
                    "applies_per_s": procs * per / took, "seconds": took})
        led.close()
    out[0]["vs_one_writer"] = out[0]["applies_per_s"] / out[1]["applies_per_s"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000, help="events to replay")
    ap.add_argument("--appends", type=int, default=500, help="appends per backend")
    ap.add_argument("--rounds", type=int, default=50, help="rounds per writer process")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        reg = load_isolated(Neutral(), "neutral", registry=load_isolated(builtin, "core"))
        rt = Runtime(reg, SQLiteLedger(tmp / "rt.sqlite"))
        report("runtime_snapshot", "snapshot read on the hot path (ns per read, median of 7)", ["what", "ns", "ratio"],
               snapshot_rows(rt), {"goal": "ratio <= 2"})
        rt.set_policy({"mandatory_gates": {"*": ["legal", "budget", "blacklist"]}, "kpi_ceiling": {"*": 0.05},
                       "max_atoms": 100_000}, None, "benchmark: the default gates, written out")
        rt.apply(mdqcore.load_package({"name": "bench.budget", "semver": "1.0.0", "atoms": [  # 10,000 x 0.001 = 10
            {"type": "Gate", "gate": "budget", "param": "ceiling", "value": 100.0}]}), inputs=INPUTS)
        report("runtime_apply", "apply latency (mandatory gates + policy, one evaluator; SQLite, synchronous=FULL)",
               ["atoms", "mode", "apply_ms_median", "goal_ms"], apply_rows(rt))
        report("runtime_rollback", "rollback of one package among 100 active ones (exact recomputation)",
               ["active_packages", "atoms_each", "rollback_ms"], rollback_rows(rt))
        rows = sqlite_append_rows(tmp, a.appends) + postgres_append_rows(a.appends)
        report("runtime_ledger", "ledger appends per second vs raw inserts at the same durability",
               ["backend", "ledger_appends_per_s", "raw_inserts_per_s", "ratio", "note"], rows)
        report("runtime_replay", "replay, checkpoint and verify of promoted events (SQLite)",
               ["events", "replay_s", "goal_s", "checkpoint_s", "verify_with_checkpoint_s", "fixture_build_s"],
               [replay_row(tmp, a.events)])
        rows = writer_rows("sqlite", (str(tmp / "w4.sqlite"), str(tmp / "w1.sqlite")), load_isolated(builtin, "core"),
                           a.rounds)
        rows += _pg_writer_rows(a.rounds)
        report("runtime_writers", "concurrent writer processes on one ledger (compare-and-swap, re-planning)",
               ["backend", "writers", "applies", "lost_updates", "applies_per_s", "vs_one_writer"], rows)


def _pg_writer_rows(rounds: int) -> list[dict]:
    try:
        import mdq_ledger_postgres.plugin as plugin
        from mdq_ledger_postgres import LocalCluster

        cluster = LocalCluster()
    except Exception as exc:  # noqa: BLE001 - no PostgreSQL here: reported in the table instead
        return [{"backend": "postgres", "note": f"skipped: {exc}"}]
    try:
        reg = load_isolated(plugin, "ledger_postgres", registry=load_isolated(builtin, "core"))
        return writer_rows("postgres", (cluster.fresh_url(), cluster.fresh_url()), reg, rounds)
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
