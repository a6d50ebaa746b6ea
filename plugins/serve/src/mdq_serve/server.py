"""One serving replica: pipelines by hook, the live control state, its followers and its rollout work.

A request takes one snapshot (`Runtime.route`: the active state, or the staged one for the
canary's share of keys) and uses it to the end. A background ticker keeps the runtime current
(SQLite is polled, PostgreSQL also notifies), flushes this replica's canary observations to the
ledger, runs the rollout controller when this replica leads, and writes periodic checkpoints
when given a key. If the ledger cannot be reached, requests are still served from the last
known state; only the state endpoints report 503 until it is back.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Mapping
from typing import Any

from mdqcore.errors import LedgerError, MdqError, RequestError

from .metrics import Metrics
from .rollout import Controller, Recorder

log = logging.getLogger("mdq.serve")


class Pipelines:
    """The served pipelines: route -> (name, pipeline), and every KPI direction they declare."""

    def __init__(self, registry: Any, names: tuple[str, ...] = ()) -> None:
        caps = registry.of_kind("pipeline")
        known = [c.name for c in caps]
        missing = [n for n in names if n not in known]
        if missing:
            raise MdqError(f"no pipeline named {', '.join(map(repr, missing))} is registered "
                           f"(available: {', '.join(known) or 'none: install mdq-flexattn or another pipeline plugin'})")
        chosen = [c for c in caps if not names or c.name in names]
        if not chosen:
            raise MdqError("no pipeline to serve: install mdq-flexattn (reward) or another plugin registering one")
        self.routes: dict[str, tuple[str, Any]] = {}
        self.directions: dict[str, str] = {}
        self.inline = {c.name for c in chosen if c.meta.get("inline")}
        self._caps = {c.name: c for c in chosen}
        self._objs: dict[str, Any] = {}
        for c in chosen:
            for r in c.meta["routes"]:
                if r in self.routes:
                    raise MdqError(f"pipelines {self.routes[r][0]!r} and {c.name!r} both answer {r}")
                self.routes[r] = (c.name, None)
            self.directions.update(c.meta.get("kpis", {}))

    def build_all(self) -> None:
        """Construct every pipeline now: a misconfigured one stops `mdq serve` at start, not at its first request."""
        for route, (name, _) in list(self.routes.items()):
            try:
                self.get(route)
            except Exception as exc:  # noqa: BLE001 - any failure to construct is reported with the pipeline's name
                raise MdqError(f"pipeline {name!r} cannot start: {type(exc).__name__}: {exc}") from None

    def get(self, route: str) -> tuple[str, Any]:
        """Return (name, pipeline object) for a route, building the pipeline on first use."""
        name, _ = self.routes[route]
        obj = self._objs.get(name)
        if obj is None:
            obj = self._objs[name] = self._caps[name].obj()
        return name, obj


class Server:
    """A replica: runtime + pipelines + recorder + controller + metrics, and the ticker that drives them."""

    def __init__(self, runtime: Any, pipelines: Pipelines, *, tick: float = 0.25, checkpoint_key: Any = None,
                 checkpoint_every: int = 0, replica: str | None = None) -> None:
        self.rt, self.pipelines, self.tick = runtime, pipelines, tick
        self.replica = replica or f"{socket.gethostname()}:{os.getpid()}"
        self.recorder = Recorder()
        self.controller = Controller(runtime, pipelines.directions, replica=self.replica)
        self.metrics = Metrics(self)
        self.checkpoint_key, self.checkpoint_every = checkpoint_key, checkpoint_every
        self.ledger_ok, self.ledger_error, self.ledger_checked = True, "", time.time()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._follower: Any = None
        self._flushed = time.time()
        self._checkpointed = runtime.ledger.head()

    # -- requests -----------------------------------------------------------------------------
    def handle(self, route: str, body: Any, key: str, cohort: str) -> tuple[Any, dict[str, str]]:
        """Answer one request under one snapshot; return (response, headers saying which state answered)."""
        if cohort not in self.rt.cohorts() and cohort != "default":
            raise RequestError(404, f"unknown cohort {cohort!r} (cohorts: {', '.join(self.rt.cohorts())})")
        name, pipeline = self.pipelines.get(route)
        state, arm, rollout, active = self.rt.route(cohort, key)
        t0 = time.perf_counter()
        status = 200
        try:
            response, observations = pipeline.handle(route, body, state)
        except RequestError as exc:
            status = exc.status
            raise
        except Exception:
            status = 500
            raise
        finally:
            self.metrics.request(name, route, cohort, arm, status, time.perf_counter() - t0)
        observations = list(observations)
        self.metrics.observe(cohort, arm, observations)
        if rollout is not None:
            self.recorder.observe(rollout, arm, observations)
            if arm == "canary" and hasattr(pipeline, "observe"):
                try:  # the same request under the active state, not served: a paired comparison
                    self.recorder.pair(rollout, observations, list(pipeline.observe(route, body, active)))
                except Exception as exc:  # noqa: BLE001 - an unpaired canary still has its arms
                    log.warning("paired shadow failed: %s: %s", type(exc).__name__, exc)
        return response, {"X-MDQ-Arm": arm, "X-MDQ-State": str(state.seq), "X-MDQ-Cohort": cohort}

    def state(self) -> dict[str, Any]:
        """What the state endpoint shows: active packages per cohort, live rollouts, the ledger head."""
        if not self.ledger_ok:
            raise RequestError(503, f"the ledger is unreachable ({self.ledger_error}); requests are served from "
                                    f"the last known state (entry {self.rt.head})")
        return {"ledger": {"url": _redact(self.rt.ledger.url), "head": self.rt.head},
                "cohorts": {c: {"seq": self.rt.snapshot(c).seq, "packages": self.rt.snapshot(c).packages()}
                            for c in self.rt.cohorts()},
                "rollouts": {c: {"seq": r["seq"], "package": r["package"].ref, "fraction": r["fraction"],
                                 "parent": r["parent"], "spec": r["spec"]} for c, r in self.rt.rollouts.items()},
                "replica": self.replica, "pipelines": sorted({n for n, _ in self.pipelines.routes.values()})}

    # -- background work ----------------------------------------------------------------------
    def start(self) -> None:
        """Start following the ledger and the ticker (idempotent)."""
        if self._thread is not None:
            return
        try:
            self._follower = self.rt.ledger.follow(self._refresh, interval=max(self.tick, 0.05))
        except LedgerError as exc:
            log.warning("cannot follow the ledger yet (%s); polling", exc)
        self._thread = threading.Thread(target=self._run, name="mdq-serve-tick", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the background work, flushing what was observed."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        if self._follower is not None:
            self._follower.stop()
        self._flush(force=True)

    def _refresh(self) -> None:
        try:
            self.rt.refresh()
            self.ledger_ok, self.ledger_checked = True, time.time()
        except Exception as exc:  # keep serving the last known state; the state endpoints say why
            self.ledger_ok, self.ledger_error = False, f"{type(exc).__name__}: {str(exc).strip()[:200]}"

    def _run(self) -> None:
        while not self._stop.wait(self.tick):
            self._refresh()
            if not self.ledger_ok:
                continue
            try:
                self._flush()
                self.controller.step()
                self._checkpoint()
            except Exception as exc:  # noqa: BLE001 - a failed step is retried next tick, and logged
                log.warning("serve background step failed: %s: %s", type(exc).__name__, exc)

    def _flush(self, force: bool = False) -> None:
        """Write what this replica observed of each live rollout as one `observed` event per rollout."""
        specs = {r["seq"]: r for r in self.rt.rollouts.values()}
        every = min((r["spec"]["interval_s"] for r in specs.values()), default=10.0) / 4
        if not force and time.time() - self._flushed < every:
            return
        self._flushed = time.time()
        for rollout, arms in self.recorder.drain().items():
            info = specs.get(rollout)
            if info is None or not any(a["n"] for a in arms.values()):
                continue  # the rollout ended meanwhile: its late observations decide nothing
            pkg = info["package"]
            self.rt.ledger.append("observed", cohort=info["cohort"], package=pkg.name, version=pkg.semver,
                                  actor=f"mdq-serve {self.replica}", reason=f"{arms['active']['n']} active, "
                                                                           f"{arms['canary']['n']} canary observations",
                                  payload={"rollout": rollout, "replica": self.replica, "arms": arms})

    def _checkpoint(self) -> None:
        if not self.checkpoint_key or not self.checkpoint_every:
            return
        head = self.rt.ledger.head()
        if head - self._checkpointed >= self.checkpoint_every and self.controller.leader():
            from mdqcore.ledger import make_checkpoint

            doc = make_checkpoint(self.rt.ledger, self.checkpoint_key)
            self.rt.ledger.append("checkpoint", cohort="default", actor=f"mdq-serve {self.replica}",
                                  reason=f"checkpoint of entry {doc['seq']}", payload=doc)
            self._checkpointed = head


def _redact(url: str) -> str:
    """Hide a password in a database URL."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':')[0]}@{host}"
    return url

