"""`mdq pkg apply|rollback`, `mdq state`, `mdq ledger`, `mdq keys` (issue #4)."""

from __future__ import annotations

import json
import sqlite3

import pytest

from .test_cli import run  # noqa: F401  (fixture)
from .test_model import MALFORMED, SEED


@pytest.fixture
def env(tmp_path):
    # no trust file is named: the (empty) user config directory decides, so no signature is required
    return {"MDQ_LEDGER": str(tmp_path / "ledger.sqlite"), "XDG_CONFIG_HOME": str(tmp_path / "config"),
            "MDQ_PLUGINS": "core"}


@pytest.fixture
def seed(tmp_path, run, env):
    """The seed package, and a ledger whose policy lets shadow analysis be skipped (core loads no evaluator)."""
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"allow_skip_shadow": True}))
    assert run("policy", "set", str(policy), "--reason", "tests without evaluators", env=env).exit_code == 0
    f = tmp_path / "seed.json"
    f.write_text(json.dumps(SEED, ensure_ascii=False), encoding="utf-8")
    return str(f)


def _events(run, env):
    return json.loads(run("ledger", "log", "--json", env=env).output)


def test_apply_show_replay_log_rollback(run, env, seed):
    r = run("pkg", "apply", seed, "--yes", env=env)
    assert r.exit_code == 0 and "promoted mdq.idx.ifu.idf-boost@1.4.2" in r.output
    shown = run("state", "show", "--json", env=env).output
    assert shown == run("ledger", "replay", "--json", env=env).output
    assert json.loads(shown)["index"]["idf"]["神经氨酸酶"] == 0.07
    log = _events(run, env)
    assert [e["kind"] for e in log] == ["genesis", "base", "policy", "received", "staged", "shadow_skipped",
                                        "canary_started", "promoted"]
    assert run("ledger", "log", "--package", "mdq.idx.ifu.idf-boost", env=env).exit_code == 0
    again = run("pkg", "apply", seed, "--yes", env=env)
    assert again.exit_code == 1 and "already active" in again.output
    assert run("pkg", "rollback", "mdq.idx.ifu.idf-boost", env=env).exit_code == 0
    assert "神经氨酸酶" not in run("state", "show", "--json", env=env).output
    assert run("ledger", "verify", env=env).exit_code == 0


def test_replay_at_a_past_moment(run, env, seed):
    run("pkg", "apply", seed, "--yes", env=env)
    promoted_at = [e for e in _events(run, env) if e["kind"] == "promoted"][0]["ts"]
    run("pkg", "rollback", "mdq.idx.ifu.idf-boost", env=env)
    past = json.loads(run("ledger", "replay", "--at", promoted_at, "--json", env=env).output)
    assert past["package"]["mdq.idx.ifu.idf-boost"]["version"] == "1.4.2"
    assert run("ledger", "replay", "--at", "not-a-time", env=env).exit_code == 2


@pytest.mark.parametrize("label, doc, message, path", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_every_malformed_package_leaves_one_rejected_event_and_no_change(run, env, tmp_path, seed, label, doc, message,
                                                                         path):
    assert run("pkg", "apply", seed, "--yes", env=env).exit_code == 0  # a ledger with state to keep unchanged
    before_state = run("state", "show", "--json", env=env).output
    before = _events(run, env)
    f = tmp_path / "bad.json"
    f.write_text(json.dumps(doc))
    r = run("pkg", "apply", str(f), "--yes", env=env)
    assert r.exit_code == 2 and f"@ {path}" in r.output and "Traceback" not in r.output
    after = _events(run, env)
    new = [e["kind"] for e in after[len(before):]]
    if label in ("non-finite number", "NaN"):  # as text, NaN and Infinity are refused already by the JSON reader
        message = "is not a JSON number"
    assert new == ["received", "rejected"] and message in after[-1]["reason"]
    assert "atoms" not in json.dumps(after[-2]["payload"])  # the malformed text is stored as its hash and size only
    assert run("state", "show", "--json", env=env).output == before_state


def test_verify_names_a_corrupted_row(run, env, seed):
    run("pkg", "apply", seed, "--yes", env=env)
    db = sqlite3.connect(env["MDQ_LEDGER"])
    db.execute("DROP TRIGGER events_no_update")  # an adversary with write access to the file
    db.execute("UPDATE events SET body = replace(body, '0.07', '0.7') WHERE kind = 'promoted'")
    db.commit()
    r = run("ledger", "verify", env=env)
    assert r.exit_code == 1 and "entry 8 (promoted mdq.idx.ifu.idf-boost)" in r.output


def test_keys_gen_trust_sign_apply(run, env, seed, tmp_path):
    env = {**env, "MDQ_TRUST": str(tmp_path / "trust.json")}  # `keys trust` creates the file it is told to
    out = run("keys", "gen", "--out", str(tmp_path / "k"), env=env).output
    pem = next((tmp_path / "k").glob("*.pem"))
    pub = next((tmp_path / "k").glob("*.pub"))
    assert "public key" in out
    assert run("keys", "trust", str(pub), env=env).exit_code == 0
    r = run("pkg", "apply", seed, "--yes", env=env)
    # the policy in effect was set unsigned before a key was trusted: fail closed until a trusted key signs it
    assert r.exit_code == 2 and "the policy in effect is unsigned" in r.output
    policy = tmp_path / "policy.json"
    assert run("policy", "set", str(policy), "--reason", "signed now", env=env).exit_code == 2  # unsigned: refused
    assert run("policy", "set", str(policy), "--key", str(pem), "--reason", "signed now", env=env).exit_code == 0
    r = run("pkg", "apply", seed, "--yes", env=env)
    assert r.exit_code == 1 and "unsigned" in r.output
    assert run("keys", "sign", seed, "--key", str(pem), env=env).exit_code == 0
    assert json.loads(open(seed, encoding="utf-8").read())["signature"].startswith("ed25519:")
    assert run("pkg", "apply", seed, "--yes", env=env).exit_code == 0


def test_keys_gen_into_a_path_under_a_file_is_a_clear_error(run, env, tmp_path):
    (tmp_path / "afile").write_text("x")
    r = run("keys", "gen", "--out", str(tmp_path / "afile" / "keys"), env=env)
    assert r.exit_code == 2 and "cannot write a key into" in r.output and "Traceback" not in r.output


@pytest.mark.parametrize("args", [["pkg", "apply"], ["pkg", "rollback"], ["state", "show"], ["ledger", "log"],
                                  ["ledger", "verify"], ["ledger", "replay"], ["keys", "gen"], ["keys", "sign"],
                                  ["keys", "trust"]])
def test_help_has_examples(run, args):
    r = run(*args, "--help")
    assert r.exit_code == 0 and "Example" in r.output
