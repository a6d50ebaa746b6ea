"""A served replica in this process over a fresh SQLite ledger, with fast rollouts, and a traffic driver."""

from __future__ import annotations

import pytest
from mdq_serve.traffic import Traffic

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


@pytest.fixture
def traffic():
    """Start traffic to a URL; stopped at the end of the test whatever happens."""
    started = []

    def start(url: str, **kw) -> Traffic:
        t = Traffic(url, ANSWERS, **{"threads": 3, "seconds": 30.0, **kw})
        started.append(t)
        return t
    yield start
    for t in started:
        t.stop()
