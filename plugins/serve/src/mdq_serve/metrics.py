"""Prometheus metrics of one replica: requests and latency by pipeline, cohort and arm; KPI sums by arm;
active package versions and the ledger head, read from the runtime at scrape time."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, Summary
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import generate_latest


class Metrics:
    """The replica's own registry (not the process-global one: several servers may share a process in tests)."""

    def __init__(self, server: Any) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("mdq_requests", "Requests answered", ["pipeline", "route", "cohort", "arm", "status"],
                                registry=self.registry)
        self.latency = Histogram("mdq_request_seconds", "Time to answer a request", ["pipeline", "cohort", "arm"],
                                 registry=self.registry,
                                 buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30))
        self.kpi = Summary("mdq_kpi", "KPI observations (mean per arm = mdq_kpi_sum / mdq_kpi_count)",
                           ["kpi", "cohort", "arm"], registry=self.registry)
        self.registry.register(_StateCollector(server))

    def request(self, pipeline: str, route: str, cohort: str, arm: str, status: int, seconds: float) -> None:
        """Count one answered request and its latency."""
        self.requests.labels(pipeline, route, cohort, arm, str(status)).inc()
        self.latency.labels(pipeline, cohort, arm).observe(seconds)

    def observe(self, cohort: str, arm: str, observations: list[Mapping[str, float]]) -> None:
        """Add KPI observations (their running mean per arm is sum / count)."""
        for obs in observations:
            for k, v in obs.items():
                if isinstance(v, (int, float)) and math.isfinite(v):
                    self.kpi.labels(k, cohort, arm).observe(v)

    def text(self) -> bytes:
        """Return the Prometheus text exposition."""
        return generate_latest(self.registry)


class _StateCollector:
    """Reads the live state at scrape time, so the figures cannot drift from it."""

    def __init__(self, server: Any) -> None:
        self.server = server

    def collect(self) -> Iterator[Any]:
        """Yield the ledger head, ledger reachability, active package versions and live rollouts."""
        rt = self.server.rt
        head = GaugeMetricFamily("mdq_ledger_head", "Last ledger entry this replica has folded in")
        head.add_metric([], rt.head)
        up = GaugeMetricFamily("mdq_ledger_up", "1 if the ledger was reachable at the last refresh")
        up.add_metric([], 1.0 if self.server.ledger_ok else 0.0)
        pkgs = GaugeMetricFamily("mdq_active_package", "Active package versions", labels=["cohort", "package", "version"])
        for c in rt.cohorts():
            for name, version in rt.snapshot(c).packages().items():
                pkgs.add_metric([c, name, version], 1.0)
        live = GaugeMetricFamily("mdq_canary_fraction", "Live canary share of requests", labels=["cohort", "package"])
        for c, r in dict(rt.rollouts).items():
            live.add_metric([c, r["package"].ref], r["fraction"])
        yield from (head, up, pkgs, live)
