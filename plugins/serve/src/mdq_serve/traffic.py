"""Bounded request traffic against a server on loopback (the demo, the tests and the benchmark use it)."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any


class Traffic:
    """A few client threads posting reward requests until stopped or `seconds` pass; counts what came back."""

    def __init__(self, url: str, questions: Sequence[tuple[str, str]], *, threads: int = 2, seconds: float = 60.0,
                 route: str = "/v1/reward", body: Callable[[str, str], Any] | None = None) -> None:
        if not url.startswith(("http://127.0.0.1", "http://localhost", "http://[::1]")):
            raise ValueError(f"traffic goes to loopback only, not {url}")
        self.url, self.questions, self.route = url, list(questions), route
        self.body = body or (lambda q, a: {"items": [{"question": q, "answer": a}]})
        self.stop_at = time.monotonic() + seconds
        self.sent = 0
        self.failed: list[tuple[int, str]] = []
        self.arms = {"active": 0, "canary": 0}
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]
        for t in self._threads:
            t.start()

    def _run(self, i: int) -> None:
        import httpx

        rng = random.Random(i)
        with httpx.Client(timeout=30) as c:
            while not self._stop.is_set() and time.monotonic() < self.stop_at:
                q, a = rng.choice(self.questions)
                try:
                    r = c.post(self.url + self.route, json=self.body(q, a), headers={"X-MDQ-Key": f"user-{rng.random()}"})
                    status, arm, text = r.status_code, r.headers.get("x-mdq-arm"), r.text
                except Exception as exc:  # noqa: BLE001 - a refused connection counts as a failed request
                    status, arm, text = 0, None, f"{type(exc).__name__}: {exc}"
                with self._lock:
                    self.sent += 1
                    if status != 200:
                        self.failed.append((status, text[:200]))
                    elif arm in self.arms:
                        self.arms[arm] += 1

    @property
    def rate(self) -> float:
        """Requests per second so far."""
        return self.sent / max(time.monotonic() - self.started, 1e-9)

    def stop(self) -> None:
        """Stop sending and wait for the threads."""
        self._stop.set()
        for t in self._threads:
            t.join(30)
