"""A served replica in this process over a fresh SQLite ledger, with fast rollouts, and a traffic driver."""

from __future__ import annotations

import random
import threading
import time

import httpx
import pytest

FAST = {"allow_skip_shadow": False, "canary": {"fraction": 0.5, "interval_s": 0.6, "intervals": 2,
                                                "min_requests": 10, "timeout_s": 8.0, "margin": 0.05, "z": 1.645}}
ANSWERS = [
    ("奥司他韦为什么能治疗流感？", "奥司他韦是神经氨酸酶抑制剂，能抑制流感病毒从宿主细胞释放，阻止病毒扩散。"),
    ("阿司匹林有什么作用？", "阿司匹林是一种环氧合酶抑制剂，通过抑制前列腺素的合成发挥镇痛和退热作用。"),
    ("二甲双胍怎么降血糖？", "二甲双胍能减少肝脏葡萄糖输出，改善胰岛素敏感性，是治疗糖尿病的一线药物。"),
    ("高血压患者为什么要限盐？", "钠摄入过多会使血容量增加，血压升高，限盐可以减轻心脏负担并提高降压药的效果。"),
]
INPUTS = [{"key": f"r{i}", "question": q, "reference": a, "answer": a} for i, (q, a) in enumerate(ANSWERS)]


@pytest.fixture
def served(tmp_path, monkeypatch):
    """(runtime writer for the test, base URL): `mdq serve` in a thread on a fresh ledger with a fast policy."""
    from mdq_serve.commands import Background
    from mdq_serve.server import Pipelines, Server

    import mdqcore
    from mdqcore.ledger.sqlite import SQLiteLedger
    from mdqcore.runtime import Runtime

    reg = mdqcore.load_plugins(only=["core", "flexattn"])
    path = tmp_path / "ledger.sqlite"
    operator = Runtime(reg, SQLiteLedger(path), actor="operator")
    operator.set_policy(FAST, None, "tests: fast rollouts")
    server = Server(Runtime(reg, SQLiteLedger(path), actor="server"), Pipelines(reg), tick=0.05)
    bg = Background(server)
    yield operator, bg.url, server
    bg.stop()
    operator.ledger.close()


class Traffic:
    """Bounded reward traffic from a few threads until stopped (or `seconds` pass): counts and failures."""

    def __init__(self, url: str, threads: int = 3, seconds: float = 30.0) -> None:
        self.url, self.stop_at = url, time.monotonic() + seconds
        self.sent, self.failed, self.arms = 0, [], {"active": 0, "canary": 0}
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]
        for t in self._threads:
            t.start()

    def _run(self, i: int) -> None:
        rng = random.Random(i)
        with httpx.Client(timeout=10) as c:
            while not self._stop.is_set() and time.monotonic() < self.stop_at:
                q, a = rng.choice(ANSWERS)
                r = c.post(self.url + "/v1/reward", json={"items": [{"question": q, "answer": a}]},
                           headers={"X-MDQ-Key": f"user-{rng.random()}"})
                self.sent += 1
                if r.status_code != 200:
                    self.failed.append((r.status_code, r.text[:200]))
                else:
                    self.arms[r.headers["x-mdq-arm"]] += 1

    def stop(self) -> None:
        """Stop sending and wait for the threads."""
        self._stop.set()
        for t in self._threads:
            t.join(15)


@pytest.fixture
def traffic():
    """Start traffic to a URL; stopped at the end of the test whatever happens."""
    started = []

    def start(url: str, **kw) -> Traffic:
        t = Traffic(url, **kw)
        started.append(t)
        return t
    yield start
    for t in started:
        t.stop()
