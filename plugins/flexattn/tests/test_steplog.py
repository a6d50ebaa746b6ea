import json

import pytest

from mdq_flexattn.reward import Scorer
from mdq_flexattn.steplog import FIELDS, read_log, replay_log, write_log
from mdqcore.errors import DocumentError
from mdqcore.model.state import ControlState

Q, T = '请问什么是"奥司他韦"？', "磷酸奥司他韦是一种作用于神经氨酸酶的特异性抑制剂。"


def test_log_has_the_seed_fields_and_replays_exactly(tmp_path):
    steps = Scorer().score(Q, T)
    p = tmp_path / "s.jsonl"
    assert write_log(p, {"question": Q, "gate": "topic"}, steps) == len(T)
    first = json.loads(p.read_text(encoding="utf-8").splitlines()[1])
    for f in ("step", "Lh", "Lp", "a", "seg", "len", "idf", "sim", "delta", "ler", "len_cost"):
        assert f in first
    header, rows = read_log(p)
    assert replay_log(header, rows, None) == []


def test_replay_reports_a_tampered_reward_and_a_changed_state(tmp_path):
    p = tmp_path / "s.jsonl"
    write_log(p, {"question": Q}, Scorer().score(Q, T))
    header, rows = read_log(p)
    rows[0]["delta"] += 0.01
    diffs = replay_log(header, rows, None)
    assert len(diffs) == 1 and diffs[0].startswith("step 1 (磷): delta")
    rows[0]["delta"] -= 0.01
    boosted = ControlState({("index", "idf", "神经氨酸酶"): 0.05})
    assert any("idf" in d for d in replay_log(header, rows, boosted))


def test_malformed_logs(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text('{"step": 1}\nnot json\n', encoding="utf-8")
    with pytest.raises(DocumentError) as e:
        read_log(p)
    msg = str(e.value)
    assert "line 1" in msg and "line 2" in msg and "no header" in msg
    assert set(FIELDS) >= {"R", "chi", "P", "dup"}
