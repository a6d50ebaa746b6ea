"""`mdq serve` (issue #14), each figure beside its anchor in one run.

  reward endpoint   POST /v1/reward through `mdq serve` (a separate process, one worker) at
                    concurrency 1, 8 and 32, one short answer per request (the HTTP cost alone) and
                    16 two-sentence answers (a trainer's batch): requests/s, p50 / p99 latency, against calling the
                    reward pipeline in this process on the same requests    goal: >= 0.5x at 8
  hot-plug          1,000+ requests in flight on two replicas (SQLite: two servers on one file;
                    PostgreSQL: two servers on one database) while a package is promoted and then
                    rolled back: failed requests (goal 0), answers computed from a mixed state
                    (goal 0: a probe pipeline reads its snapshot twice), and the time from
                    `promoted` / `rolled_back` being written to the first answer served under it on
                    every replica (goal < 1 s)

    python benchmarks/serve.py [--requests 3000] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

import mdqcore
from _common import report

ANSWERS = [
    ("奥司他韦为什么能治疗流感？", "奥司他韦是神经氨酸酶抑制剂，能抑制流感病毒从宿主细胞释放，阻止病毒扩散。发病48小时内服用效果最好。"),
    ("阿司匹林有什么作用？", "阿司匹林是一种环氧合酶抑制剂，通过抑制前列腺素的合成发挥镇痛和退热作用，小剂量可以抑制血小板聚集。"),
    ("二甲双胍怎么降血糖？", "二甲双胍能减少肝脏葡萄糖输出，改善胰岛素敏感性，是治疗二型糖尿病的一线药物。"),
    ("高血压患者为什么要限盐？", "钠摄入过多会使血容量增加，血压升高，限盐可以减轻心脏负担并提高降压药的效果。"),
]


SHAPES = (1, 16)  # items per request: one short answer (HTTP cost alone), a trainer's batch of 16


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _body(i: int, items: int = 1) -> dict:
    """One request: `items` question/answer pairs (a trainer sends its rollouts in batches; answers of two sentences)."""
    out = []
    for j in range(i, i + items):
        q, a = ANSWERS[j % len(ANSWERS)]
        out.append({"question": q, "answer": a if items == 1 else a + ANSWERS[(j + 1) % len(ANSWERS)][1]})
    return {"items": out}


async def _load(url: str, n: int, concurrency: int, items: int) -> tuple[float, list[float], int]:
    latencies: list[float] = []
    failed = 0
    queue = iter(range(n))

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal failed
        for i in queue:
            t0 = time.perf_counter()
            r = await client.post(url + "/v1/reward", json=_body(i, items), headers={"X-MDQ-Key": f"k{i}"})
            latencies.append(time.perf_counter() - t0)
            failed += r.status_code != 200

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        took = time.perf_counter() - t0
    return n / took, latencies, failed


def endpoint_rows(n: int) -> list[dict]:
    """Throughput and latency of the served endpoint vs the pipeline in-process."""
    from mdq_flexattn.pipeline import RewardPipeline

    from mdqcore.ledger.sqlite import SQLiteLedger
    from mdqcore.runtime import Runtime

    d = Path(tempfile.mkdtemp())
    reg = mdqcore.load_plugins(only=["core", "flexattn"])
    state = Runtime(reg, SQLiteLedger(d / "l.sqlite")).current
    pipe = RewardPipeline()
    pipe.handle("/v1/reward", _body(0), state)  # warm: the engine and scorer load once
    inproc = {}
    for items in SHAPES:
        m = n if items == 1 else max(n // 8, 50)
        t0 = time.perf_counter()
        for i in range(m):
            pipe.handle("/v1/reward", _body(i, items), state)
        inproc[items] = m / (time.perf_counter() - t0)
    port = _port()
    env = {**os.environ, "MDQ_LEDGER": str(d / "l.sqlite"), "MDQ_PLUGINS": "flexattn,serve",
           "XDG_CONFIG_HOME": str(d / "cfg")}
    proc = subprocess.Popen([sys.executable, "-m", "mdqcore.cli", "serve", "--port", str(port)], env=env,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.post(url + "/v1/reward", json=_body(0), timeout=30)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        rows = []
        for items in SHAPES:
            m = n if items == 1 else max(n // 8, 50)
            rows.append({"what": "pipeline in-process (anchor)", "items": items, "concurrency": 1,
                         "requests_per_s": inproc[items], "ratio": 1.0})
            for c in (1, 8, 32):
                rps, lat, failed = asyncio.run(_load(url, m, c, items))
                lat.sort()
                rows.append({"what": "POST /v1/reward via mdq serve", "items": items, "concurrency": c,
                             "requests_per_s": rps, "ratio": rps / inproc[items], "p50_ms": lat[len(lat) // 2] * 1e3,
                             "p99_ms": lat[int(len(lat) * 0.99) - 1] * 1e3, "failed": failed,
                             "goal": ">= 0.5x in-process" if c == 8 else None})
        return rows
    finally:
        proc.terminate()
        proc.wait(15)


class _Probe:
    def handle(self, route, body, state):
        first = state.index("alias", "probe", -1.0)
        time.sleep(0.001)
        return {"seq": state.seq, "first": first, "second": state.index("alias", "probe", -1.0)}, [{"v": first}]


class _ProbePlugin:
    @mdqcore.hookimpl
    def register_pipelines(self, register):
        register("probe", lambda: _Probe(), routes=("/v1/probe",))


def hotplug_row(backend: str, make_ledger, reg, requests: int) -> dict:
    """Two replicas under load across a promote and a rollback: failures, mixed states, time to serve."""
    from mdq_serve.commands import Background
    from mdq_serve.server import Pipelines, Server

    from mdqcore.runtime import Runtime

    op = Runtime(reg, make_ledger(), actor="operator")
    op.set_policy({"allow_skip_shadow": True, "mandatory_gates": {"*": []}}, None, "benchmark: a probe has no KPI")
    servers = [Background(Server(Runtime(reg, make_ledger(), actor="replica"), Pipelines(reg), tick=0.05))
               for _ in range(2)]
    seen: list[tuple[float, int, int, float, float]] = []  # (time, replica, seq, first, second)
    stop, lock = threading.Event(), threading.Lock()
    failed = [0]

    def client(i: int) -> None:
        with httpx.Client(timeout=30) as c:
            while not stop.is_set():
                r = c.post(servers[i % 2].url + "/v1/probe", json={})
                if r.status_code != 200:
                    failed[0] += 1
                    continue
                b = r.json()
                with lock:
                    seen.append((time.monotonic(), i % 2, b["seq"], b["first"], b["second"]))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    marks = []
    try:
        while len(seen) < requests // 3:
            time.sleep(0.05)
        ev = op.apply(mdqcore.load_package({"name": "probe", "semver": "1.0.0", "atoms": [
            {"type": "Idx", "feature": "alias", "seg": "probe", "value": 1.0}]}))
        marks.append(("promoted", time.monotonic(), ev.seq))
        while len(seen) < 2 * requests // 3:
            time.sleep(0.05)
        seq = op.rollback("probe")
        marks.append(("rolled_back", time.monotonic(), seq))
        while len(seen) < requests:
            time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join()
        for s in servers:
            s.stop()
        op.ledger.close()
    mixed = sum(1 for _t, _r, _s, a, b in seen if a != b)
    lag = {}
    for what, at, seq in marks:
        for r in (0, 1):
            first = min((t for t, rr, s, _a, _b in seen if rr == r and s >= seq), default=None)
            lag[f"{what}_to_served_replica{r}_s"] = None if first is None else first - at
    worst = max(v for v in lag.values() if v is not None)
    return {"backend": backend, "requests": len(seen), "failed": failed[0], "mixed_state": mixed,
            "worst_promote_to_served_s": worst, "goal_s": 1.0, **lag}


def main() -> None:
    """Run both parts; write results/serve_endpoint.json and results/serve_hotplug.json."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--quick", action="store_true", help="300 requests per measurement")
    a = ap.parse_args()
    n = 300 if a.quick else a.requests
    report("serve_endpoint", "reward endpoint through mdq serve vs the pipeline in-process",
           ["what", "items", "concurrency", "requests_per_s", "ratio", "p50_ms", "p99_ms", "failed", "goal"], endpoint_rows(n),
           {"requests": n})
    from mdq_serve.traffic import Traffic  # noqa: F401 - the serve plugin must be installed

    from mdqcore.ledger.sqlite import SQLiteLedger
    from mdqcore.testing import load_isolated

    d = Path(tempfile.mkdtemp())
    reg = load_isolated(_ProbePlugin(), "probe", registry=mdqcore.load_plugins(only=["core"]))
    rows = [hotplug_row("sqlite", lambda: SQLiteLedger(d / "h.sqlite"), reg, max(n, 1200))]
    try:
        from mdq_ledger_postgres import LocalCluster, PostgresLedger

        cluster = LocalCluster()
    except Exception as exc:  # noqa: BLE001 - no PostgreSQL here: said in the table
        rows.append({"backend": "postgres", "note": f"skipped: {exc}"})
    else:
        try:
            url = cluster.fresh_url()
            pg = load_isolated(__import__("mdq_ledger_postgres.plugin", fromlist=["x"]), "ledger_postgres", registry=reg)
            rows.append(hotplug_row("postgres", lambda: PostgresLedger(url), pg, max(n, 1200)))
        finally:
            cluster.stop()
    report("serve_hotplug", "two replicas under load across a promote and a rollback",
           ["backend", "requests", "failed", "mixed_state", "worst_promote_to_served_s", "goal_s", "note"], rows)


if __name__ == "__main__":
    main()
