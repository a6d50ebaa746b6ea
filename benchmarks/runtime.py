"""Runtime costs (issue #4), each beside its anchor in one run.

  snapshot read      `runtime.current` (the hot path) and `runtime.snapshot(cohort)` vs a plain
                     attribute read of an ordinary object                goal: <= 2x
  apply latency      one package of 1, 100 and 10,000 Idx atoms through check -> stage -> shadow
                     -> canary -> promote, no evaluators registered      goal: 10,000 atoms < 100 ms
  ledger appends/s   SQLiteLedger.append vs raw sqlite3 INSERTs with the same durability (WAL,
                     synchronous=FULL, one transaction each); PostgresLedger.append vs raw psycopg
                     INSERTs (one transaction each) on a local cluster, when PostgreSQL is installed
  replay             replay_ledger(ledger) over 1,000,000 promoted events in SQLite  goal: < 5 s

    python benchmarks/runtime.py [--events 1000000]
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
from mdqcore.ledger.base import GENESIS, make_event, replay_ledger
from mdqcore.ledger.sqlite import SQLiteLedger
from mdqcore.runtime.hotplug import Runtime
from mdqcore.testing import load_isolated


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
                rt.apply(pkg)
                times.append(time.perf_counter() - t0)
            if mode == "upgrade":
                times = times[1:]  # the first of the series is a fresh apply
            rows.append({"atoms": n, "mode": mode, "apply_ms_median": sorted(times)[len(times) // 2] * 1e3,
                         "goal_ms": 100 if n == 10_000 else None})
    return rows


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
    led = SQLiteLedger(path)
    led.close()
    db = sqlite3.connect(str(path), isolation_level=None)
    db.execute("PRAGMA synchronous=OFF")  # building the fixture fast; replay reads it like any ledger
    db.execute("BEGIN")
    prev = GENESIS
    t0 = time.perf_counter()
    for i in range(1, n + 1):
        ev = make_event(i, prev, f"2026-01-01T{i // 3600000:02d}:00:00.000000Z",
                        "promoted", "default" if i % 10 else "canary", f"p{i % 100}", "1.0.0", "bench", "",
                        {"diff": [[["index", "idf", f"t{i % 5000}"], None, i * 1e-6]]})
        db.execute("INSERT INTO events(seq, ts, kind, cohort, package, version, body, prev_hash, hash) "
                   "VALUES (?,?,?,?,?,?,?,?,?)", (i, ev.ts, ev.kind, ev.cohort, ev.package, ev.version, ev.text, prev, ev.hash))
        prev = ev.hash
    db.execute("COMMIT")
    build = time.perf_counter() - t0
    led = SQLiteLedger(path)
    t0 = time.perf_counter()
    states = replay_ledger(led)
    took = time.perf_counter() - t0
    assert states["default"].index("idf", "t1") > 0
    return {"events": n, "replay_s": took, "goal_s": 5.0, "fixture_build_s": build}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000, help="events to replay")
    ap.add_argument("--appends", type=int, default=500, help="appends per backend")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        rt = Runtime(load_isolated(builtin, "core"), SQLiteLedger(tmp / "rt.sqlite"))
        report("runtime_snapshot", "snapshot read on the hot path (ns per read, median of 7)", ["what", "ns", "ratio"],
               snapshot_rows(rt), {"goal": "ratio <= 2"})
        report("runtime_apply", "apply latency (no evaluators; SQLite ledger, synchronous=FULL)",
               ["atoms", "mode", "apply_ms_median", "goal_ms"], apply_rows(rt))
        rows = sqlite_append_rows(tmp, a.appends) + postgres_append_rows(a.appends)
        report("runtime_ledger", "ledger appends per second vs raw inserts at the same durability",
               ["backend", "ledger_appends_per_s", "raw_inserts_per_s", "ratio", "note"], rows)
        report("runtime_replay", "replay of promoted events (SQLite)", ["events", "replay_s", "goal_s", "fixture_build_s"],
               [replay_row(tmp, a.events)])


if __name__ == "__main__":
    main()
