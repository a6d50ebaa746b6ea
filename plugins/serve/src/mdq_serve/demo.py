"""`mdq demo`: the mission in one minute. A reward service runs; its control plane changes twice, live.

1. `mdq serve` starts in this process on a free loopback port, serving the Flex-Attn reward an
   RL trainer would call; built-in medical question/answer traffic flows to it.
2. A good package (an IDF boost for a key term) is hot-plugged as a live canary: a share of
   the live requests is scored under it, each also measured under the active state (paired),
   and after its analysis intervals pass it is promoted, with the figures in the ledger.
3. A bad package (one that pays for general words like 可以 and 需要) goes the same way and is
   rolled back automatically, the measured reason in the ledger: nobody had to watch.
4. The ledger tail says who changed what, when and why.
With --generate, the OpenAI-compatible generation pipeline (mdq-generate, SmolLM2-135M) is served
too: one chat request is answered, a package turning on best-of-2 reranking by the reward and
the L_h window attention is promoted, and the same request is answered under the new state.
"""

from __future__ import annotations

import json
import sys
import time
from importlib.resources import files
from pathlib import Path
from typing import Any

import click

POLICY = {"canary": {"fraction": 0.3, "interval_s": 2.0, "intervals": 3, "min_requests": 25, "timeout_s": 40.0,
                     "margin": 0.05, "z": 1.645}}
BAD = {"name": "mdq.op.flexattn.general-words", "semver": "1.0.0",
       "atoms": [{"type": "Op", "op": "flexattn", "param": "general_weight", "value": 1.0}],
       "provenance": {"author": "demo", "reason": "reward fluent connective words too (a plausible-looking mistake)",
                      "created_at": "2026-12-01T00:00:00Z"}}
GENERATE = {"name": "mdq.op.generate.window-best-of", "semver": "1.0.0", "tests": ["legal", "budget"],
            "atoms": [{"type": "Op", "op": "generate", "param": "window", "value": True},
                      {"type": "Op", "op": "generate", "param": "best_of", "value": 2}],
            "provenance": {"author": "demo", "reason": "rerank two candidates by the reward; window attention on",
                           "created_at": "2026-12-01T00:00:00Z"}}
CHAT = {"model": "smollm2-135m", "messages": [{"role": "user", "content": "What is aspirin used for?"}],
        "max_tokens": 32, "temperature": 0.7, "seed": 7}


def _questions() -> list[tuple[str, str]]:
    base = Path(str(files("mdq_flexattn"))).parents[1] / "data" / "eval"
    rows = []
    for name in ("dev.jsonl", "test.jsonl"):
        path = base / name
        if path.exists():
            rows += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not rows:  # an installed (non-editable) plugin ships the scenario, not the evaluation set
        spec = json.loads((files("mdq_flexattn") / "data" / "scenario.json").read_text(encoding="utf-8"))
        return [(r["question"], r["answer"]) for r in spec["inputs"]]
    return [(r["question"], r["good"]) for r in rows]


def _scenario() -> tuple[Any, list[dict[str, Any]]]:
    from mdqcore.model import load_package

    data = files("mdq_flexattn") / "data"
    spec = json.loads((data / "scenario.json").read_text(encoding="utf-8"))
    return load_package(Path(str(data / spec["package"]))), spec["inputs"]


def _wait(rt: Any, rollout: int, show: Any, timeout: float) -> Any:
    """Follow the ledger until the rollout ends, showing each analysis; return the closing event."""
    deadline, seen = time.monotonic() + timeout, rollout
    while time.monotonic() < deadline:
        for ev in rt.ledger.events(seen):
            seen = ev.seq
            if ev.payload.get("rollout") != rollout:
                continue
            if ev.kind == "canary_started":
                rollout = ev.seq
            elif ev.kind == "analysis":
                show(f"  analysis #{ev.seq}: {ev.reason}")
            elif ev.kind in ("promoted", "rolled_back", "aborted"):
                return ev
        time.sleep(0.1)
    return None


@click.command("demo")
@click.option("--ledger", "ledger_path", type=click.Path(dir_okay=False),
              help="A new SQLite ledger for the demo (default: demo/ledger.sqlite in the user data directory, "
                   "recreated each run).")
@click.option("--threads", default=2, show_default=True, type=click.IntRange(1, 16), help="Client threads.")
@click.option("--generate", is_flag=True, help="Also serve text generation (mdq-generate, SmolLM2-135M) and change "
              "its control plane live.")
def demo(ledger_path: str | None, threads: int, generate: bool) -> None:
    """Serve the Flex-Attn reward and change its control plane twice, live: a good package is promoted
    after its canary passes, a bad one is rolled back on its own; then the ledger says who, what, why.

    Everything runs in this process on 127.0.0.1, on an embedded SQLite ledger of its own, in
    about half a minute (about a minute with --generate, more the first time SmolLM2 is converted).
    Exit status 0 only if the good package was promoted, the bad one rolled back, and no request failed. See docs/serving.md to run the same with `mdq serve`.

    \b
    Example:
      mdq demo
      mdq demo --generate
    """
    from rich.console import Console
    from rich.panel import Panel

    from mdqcore.cli.console import registry
    from mdqcore.errors import MdqError, Rejected
    from mdqcore.ledger.sqlite import SQLiteLedger
    from mdqcore.model import load_package
    from mdqcore.runtime import Runtime

    from .commands import Background
    from .server import Pipelines, Server
    from .traffic import Traffic

    con = Console(width=120)
    reg = registry()
    if reg.find("pipeline", "reward") is None:
        con.print("mdq demo needs the reward pipeline of mdq-flexattn: pip install -e plugins/flexattn")
        sys.exit(2)
    if generate and reg.find("pipeline", "generate") is None:
        con.print("mdq demo --generate needs the generation pipeline of mdq-generate: pip install -e plugins/generate")
        sys.exit(2)
    path = Path(ledger_path) if ledger_path else _default()
    if ledger_path and path.exists():
        con.print(f"{path} exists: the demo writes a ledger of its own; give a new path")
        sys.exit(2)
    if not ledger_path:  # the demo's own ledger under the user data directory: start it afresh
        import glob

        for p in [path.with_name(path.name + x) for x in ("", "-wal", "-shm", "-journal")] + \
                [Path(f) for f in glob.glob(glob.escape(str(path)) + ".*.lock")]:
            p.unlink(missing_ok=True)
    con.print(Panel(__doc__.split("\n\n", 1)[1].strip(), title="mdq demo: a control plane changed live", width=110))
    operator = Runtime(reg, SQLiteLedger(path), actor="operator")
    operator.set_policy(POLICY, None, "demo: 30% canaries, three 2-second intervals")
    server = Server(Runtime(reg, SQLiteLedger(path), actor="mdq-serve"), Pipelines(reg, ("reward", "generate") if generate else ("reward",)), tick=0.1)
    t0 = time.monotonic()
    bg = Background(server)
    good, inputs = _scenario()
    questions = _questions()
    con.print(f"serving {bg.url} (POST /v1/reward, /get_reward) on ledger {path}; {threads} clients send "
              f"{len(questions)} medical question/answer pairs")
    traffic = Traffic(bg.url, questions, threads=threads, seconds=120)
    expected = {good.name: "promoted", BAD["name"]: "rolled_back"}
    outcome: dict[str, str] = {}
    try:
        for pkg, what in ((good, "a good package"), (load_package(BAD), "a bad package")):
            why = (pkg.provenance.reason if pkg.provenance else None) or "raise the IDF weight of key medical terms"
            con.print(f"\n[bold]{what}[/]: {pkg.ref} — {why}")
            try:
                seq = operator.begin_rollout(pkg, inputs=inputs)
            except (Rejected, MdqError) as exc:
                con.print(f"[red]refused before any traffic saw it[/]: {exc}")
                continue
            con.print(f"  shadow passed on {len(inputs)} recorded inputs; canary live (entry {seq}): "
                      f"{POLICY['canary']['fraction']:.0%} of requests, {traffic.rate:.0f} requests/s so far")
            end = _wait(operator, seq, lambda s: con.print(s, markup=False), POLICY["canary"]["timeout_s"] + 10)
            outcome[pkg.name] = end.kind if end is not None else "undecided"
            colour = "green" if end is not None and end.kind == "promoted" else "red"
            con.print(f"  [{colour}]{end.kind if end else 'undecided'}[/] by {end.actor if end else '-'} "
                      f"(entry {end.seq if end else '-'}): ", end="")
            con.print(end.reason if end else "no decision in time", markup=False)
        traffic.stop()
        if generate and not _generation(con, bg.url, operator, inputs):
            outcome["generation"] = "failed"
    finally:
        traffic.stop()
        bg.stop()
    _tail(con, operator)
    con.print("\nWhat you saw: both packages passed the checks and shadow analysis on recorded inputs; the bad one's "
              "flaw (general words earning reward) showed only on live traffic, where the paired canary caught it in "
              "its first interval and the server rolled it back by itself. Every step above is a hashed ledger entry.")
    con.print(f"{traffic.sent:,} requests in {time.monotonic() - t0:.0f} s ({traffic.arms['canary']:,} to canaries), "
              f"{len(traffic.failed)} failed. Replay any moment: mdq ledger replay --ledger {path} --at <time>")
    operator.ledger.close()
    wrong = {k: outcome.get(k, "refused") for k in [*expected, "generation"] if outcome.get(k) != expected.get(k)}
    if wrong:
        con.print(f"[red]the demo did not go as it should[/]: {wrong} (expected {expected})")
    sys.exit(1 if traffic.failed or wrong else 0)


def _generation(con: Any, url: str, operator: Any, inputs: list[dict[str, Any]]) -> bool:
    """Answer one chat request, promote a package changing how generation runs, answer it again; say if all went well."""
    import httpx

    from mdqcore.errors import MdqError
    from mdqcore.model import load_package

    con.print("\n[bold]generation[/]: POST /v1/chat/completions (the first request loads SmolLM2-135M)")
    for turn in (0, 1):
        if turn:
            try:
                ev = operator.apply(load_package(GENERATE), inputs=inputs)
            except MdqError as exc:
                con.print(f"  [red]refused[/]: {exc}", markup=True)
                return False
            con.print(f"  promoted {GENERATE['name']} (entry {ev.seq}): {GENERATE['provenance']['reason']}")
            t0 = time.monotonic()
            while httpx.get(url + "/v1/state", timeout=10).json()["ledger"]["head"] < ev.seq:
                if time.monotonic() - t0 > 10:  # the server follows the ledger every tick (0.1 s here)
                    con.print("  [red]the server did not see the promotion within 10 s[/]")
                    return False
                time.sleep(0.02)
            con.print(f"  the server follows the ledger: serving entry {ev.seq} after {time.monotonic() - t0:.2f} s")
        r = httpx.post(url + "/v1/chat/completions", json=CHAT, timeout=300)
        if r.status_code != 200:
            con.print(f"  [red]{r.status_code}[/]: {r.text[:300]}", markup=True)
            return False
        b = r.json()
        m = b["mdq"]
        con.print(f"  state {m['state']}: best_of {m['best_of']}, window {'on' if m['window'] else 'off'}, "
                  f"{m['candidates']} candidate(s), {b['usage']['completion_tokens']} tokens generated")
        con.print("  " + b["choices"][0]["message"]["content"].strip().replace("\n", " ")[:160], markup=False)
    return True


def _default() -> Path:
    from platformdirs import user_data_dir

    p = Path(user_data_dir("mdq")) / "demo" / "ledger.sqlite"
    p.parent.mkdir(parents=True, exist_ok=True)
    return p


def _tail(con: Any, rt: Any, n: int = 14) -> None:
    from rich.table import Table

    events = [e for e in rt.ledger.events() if e.kind not in ("observed",)][-n:]
    t = Table(title=f"ledger tail (of {rt.ledger.head()} entries; `observed` counts left out)")
    for c in ("#", "time", "event", "package", "actor", "why"):
        t.add_column(c, no_wrap=c != "why", overflow="ellipsis")
    for e in events:
        t.add_row(str(e.seq), e.ts[11:23], e.kind, f"{e.package}@{e.version}" if e.package else "-", e.actor,
                  (e.reason or "")[:90])
    con.print(t)
