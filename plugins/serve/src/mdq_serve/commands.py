"""`mdq serve` and `mdq rollout status|promote|abort`."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import Any

import click

from mdqcore.cli.console import LEDGER_OPT, TRUST_OPT, fail, open_ledger, open_runtime, out


def build(ledger_url: str | None, trust_path: str | None, pipelines: tuple[str, ...], **options: Any) -> Any:
    """Open a writing runtime and the pipelines; return the replica (exit 2 with the reason if either fails)."""
    from mdqcore.cli.console import registry
    from mdqcore.errors import MdqError

    from .server import Pipelines, Server

    try:
        chosen = Pipelines(registry(), pipelines)
        chosen.build_all()
    except MdqError as exc:
        fail(str(exc), 2)
    rt = open_runtime(ledger_url, trust_path, actor=os.environ.get("USER", "mdq-serve"))
    return Server(rt, chosen, **options)


class Background:
    """A uvicorn server in a thread of this process (the demo, tests and benchmarks use it); `stop()` ends it."""

    def __init__(self, server: Any, host: str = "127.0.0.1", port: int = 0, max_body: int | None = None) -> None:
        import socket

        import uvicorn

        from .app import MAX_BODY, create_app

        if port == 0:
            with socket.socket() as s:
                s.bind((host, 0))
                port = s.getsockname()[1]
        self.server, self.url = server, f"http://{host}:{port}"
        config = uvicorn.Config(create_app(server, max_body=max_body or MAX_BODY), host=host, port=port,
                                log_level="warning", access_log=False, lifespan="on")
        self._uv = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._uv.run, name="mdq-serve-http", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._uv.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"the server did not start on {self.url}")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop serving and wait for the thread (the replica's background work stops with the app)."""
        self._uv.should_exit = True
        self._thread.join(15)


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind (loopback by default; anything else exposes the service).")
@click.option("--port", default=8400, show_default=True, type=click.IntRange(0, 65535))
@click.option("--pipeline", "pipelines", multiple=True, help="Serve only this pipeline (repeatable; default: all).")
@click.option("--max-body", default=8 << 20, show_default=True, type=click.IntRange(1024),
              help="Largest request body in bytes (larger ones get 413).")
@click.option("--tick", default=0.25, show_default=True, type=click.FloatRange(0.02, 10),
              help="Seconds between ledger polls, observation flushes and rollout decisions.")
@click.option("--checkpoint-key", type=click.Path(dir_okay=False, exists=True),
              help="Sign a ledger checkpoint with this key every --checkpoint-every entries (the leader does).")
@click.option("--checkpoint-every", default=1000, show_default=True, type=click.IntRange(1))
@LEDGER_OPT
@TRUST_OPT
def serve(host: str, port: int, pipelines: tuple[str, ...], max_body: int, tick: float, checkpoint_key: str | None,
          checkpoint_every: int, ledger_url: str | None, trust_path: str | None) -> None:
    """Serve the registered pipelines over HTTP under the live control state.

    Every request takes one snapshot of the state; a package promoted from another terminal
    (or another machine sharing a PostgreSQL ledger) changes the very next request. A live
    rollout (`mdq pkg apply FILE --live`) routes its share of requests to the staged state,
    and the replicas decide it from what they measure: see docs/serving.md.

    \b
    Examples:
      mdq serve                                   # http://127.0.0.1:8400, every pipeline
      mdq serve --pipeline reward --port 9000 --ledger postgresql://mdq@db/mdq
      curl -s localhost:8400/v1/reward -d '{"items": [{"question": "什么是阿司匹林？", "answer": "阿司匹林是一种抑制剂。"}]}'
    """
    import uvicorn

    from .app import create_app

    key = None
    if checkpoint_key:
        from mdqcore.signing import load_private

        key = load_private(checkpoint_key)
    server = build(ledger_url, trust_path, pipelines, tick=tick, checkpoint_key=key,
                   checkpoint_every=checkpoint_every if key else 0, replica=f"{host}:{port}:{os.getpid()}")
    routes = ", ".join(sorted(server.pipelines.routes))
    click.echo(f"mdq serve on http://{host}:{port} (POST {routes}; GET /v1/state /healthz /metrics), ledger "
               f"{server.rt.ledger.url}, entry {server.rt.head}", err=True)
    uvicorn.run(create_app(server, max_body=max_body), host=host, port=port, log_level="warning", access_log=False)


@click.group("rollout")
def rollout() -> None:
    """Watch, promote or abort live canary rollouts (`mdq pkg apply FILE --live` starts one).

    \b
    Examples:
      mdq rollout status
      mdq rollout promote mdq.idx.ifu.idf-boost --reason "business sign-off"
      mdq rollout abort mdq.idx.ifu.idf-boost --reason "complaints from the on-call doctor"
    """


@rollout.command("status")
@click.option("--json", "as_json", is_flag=True)
@LEDGER_OPT
def status(as_json: bool, ledger_url: str | None) -> None:
    """Show every live rollout: package, cohort, share, and each analysis interval so far.

    \b
    Example:
      mdq rollout status --json
    """
    from mdqcore.cli.console import registry
    from mdqcore.errors import LedgerError
    from mdqcore.runtime import Runtime

    try:
        rt = Runtime(registry(), open_ledger(ledger_url, readonly=True))
        doc = []
        for cohort, info in sorted(rt.rollouts.items()):
            analyses = [e for e in rt.ledger.events(info["seq"]) if e.kind == "analysis"
                        and e.payload.get("rollout") == info["seq"]]
            doc.append({"cohort": cohort, "package": info["package"].ref, "started": info["seq"],
                        "fraction": info["fraction"], "spec": info["spec"],
                        "intervals": [{"seq": a.seq, "ts": a.ts, "verdict": a.payload["verdict"],
                                       "passing": a.payload["passing"], "n": a.payload["n"], "reason": a.reason}
                                      for a in analyses]})
    except LedgerError as exc:
        fail(str(exc), 2)
    if as_json:
        click.echo(json.dumps(doc, indent=2, ensure_ascii=False))
        return
    if not doc:
        out.print("no live rollout")
    for r in doc:
        out.print(f"[bold]{r['package']}[/] in cohort {r['cohort']}: {r['fraction']:.0%} of requests since entry "
                  f"{r['started']}; needs {r['spec']['intervals']} passing intervals of {r['spec']['interval_s']:g} s")
        for a in r["intervals"]:
            out.print(f"  #{a['seq']} {a['ts']}  {a['reason']}", markup=False)


def _conclude(name: str, cohort: str, promote: bool, reason: str, ledger_url: str | None, trust: str | None) -> None:
    from mdqcore.errors import LedgerError, MdqError

    rt = open_runtime(ledger_url, trust)
    try:
        info = rt.rollouts.get(cohort)
        if info is None or info["package"].name != name:
            live = ", ".join(f"{r['package'].ref} in {c}" for c, r in rt.rollouts.items()) or "none"
            fail(f"no live rollout of {name!r} in cohort {cohort!r} (live: {live})", 1)
        ev = rt.conclude_rollout(info["seq"], promote=promote, reason=f"{rt.actor}: {reason}",
                                 figures={"manual": True}, actor=rt.actor)
    except (MdqError, LedgerError) as exc:
        fail(str(exc), 2)
    finally:
        rt.ledger.close()
    if ev.kind == "canary_started":
        out.print(f"the cohort changed since the canary started: re-planned as a new canary (entry {ev.seq})")
    else:
        out.print(f"{ev.kind} {name} in cohort {cohort} (ledger #{ev.seq})")
    sys.exit(0 if ev.kind == ("promoted" if promote else "rolled_back") else 1)


@rollout.command("promote")
@click.argument("name")
@click.option("--cohort", default="default", show_default=True)
@click.option("--reason", required=True, help="Why, recorded with your name.")
@LEDGER_OPT
@TRUST_OPT
def promote(name: str, cohort: str, reason: str, ledger_url: str | None, trust_path: str | None) -> None:
    """Promote a live rollout now, whatever its analysis says (recorded as manual, with actor and reason).

    \b
    Example:
      mdq rollout promote mdq.idx.ifu.idf-boost --reason "approved by the clinical lead"
    """
    _conclude(name, cohort, True, reason, ledger_url, trust_path)


@rollout.command("abort")
@click.argument("name")
@click.option("--cohort", default="default", show_default=True)
@click.option("--reason", required=True, help="Why, recorded with your name.")
@LEDGER_OPT
@TRUST_OPT
def abort(name: str, cohort: str, reason: str, ledger_url: str | None, trust_path: str | None) -> None:
    """Roll a live rollout back now (recorded as manual, with actor and reason); nothing it staged stays.

    \b
    Example:
      mdq rollout abort mdq.idx.ifu.idf-boost --reason "complaints"
    """
    _conclude(name, cohort, False, reason, ledger_url, trust_path)
