"""The operator policy: in the ledger, signed once keys are trusted, strict about its own shape (issue #16)."""

from __future__ import annotations

import json

import pytest

import mdqcore
from mdqcore.errors import PolicyError, Rejected, SignatureError
from mdqcore.ledger import replay_ledger
from mdqcore.ledger.sqlite import SQLiteLedger
from mdqcore.runtime import Policy, Runtime
from mdqcore.signing import TrustPolicy, generate, load_private, sign


def test_defaults_fail_closed():
    p = Policy()
    assert p.gates_for("default") == ["legal", "budget", "blacklist"]
    assert p.min_shadow_inputs == 1 and not p.allow_skip_shadow and p.ceiling("anything") == 0.05


@pytest.mark.parametrize("doc, fragment", [
    ({"mandatory_gate": {}}, "unknown key 'mandatory_gate'"),
    ({"min_shadow_inputs": "one"}, "expected an integer"),
    ({"kpi_ceiling": {"x": "high"}}, "expected a number"),
    ({"canary": {"fraction": 0.1, "speed": 2}}, "unknown key 'speed'"),
    ({"limits": {"max_depth": True}}, "expected an integer"),
    ([1, 2], "expected an object"),
])
def test_a_malformed_policy_is_refused_with_its_path(doc, fragment):
    with pytest.raises(PolicyError) as exc:
        Policy.from_json(doc)
    assert fragment in str(exc.value)


def test_policy_is_recorded_replayed_and_shared_by_every_cohort(core_registry, tmp_path):
    led = SQLiteLedger(tmp_path / "l.sqlite")
    rt = Runtime(core_registry, led)
    rt.set_policy({"min_shadow_inputs": 3, "mandatory_gates": {"*": ["budget"]}}, None, "fewer gates in the lab")
    assert rt.policy.min_shadow_inputs == 3 and rt.policy.gates_for("canary") == ["budget"]
    states = replay_ledger(led)
    assert states["default"].get(("policy",))["doc"]["min_shadow_inputs"] == 3
    fresh = Runtime(core_registry, led)
    assert fresh.policy == rt.policy
    event = [e for e in led.events() if e.kind == "policy"][0]
    assert event.reason == "fewer gates in the lab"


def test_once_keys_are_trusted_the_policy_must_be_signed(core_registry, tmp_path):
    key, pub = generate(tmp_path / "k")
    trust = TrustPolicy()
    trust.trust(pub)
    led = SQLiteLedger(tmp_path / "l.sqlite")
    rt = Runtime(core_registry, led)
    rt.set_policy({"min_shadow_inputs": 2}, None, "set before any key was trusted")
    rt.trust = trust
    with pytest.raises(PolicyError, match="the policy in effect is unsigned"):
        rt.policy
    with pytest.raises(PolicyError, match="unsigned"):
        rt.set_policy({"min_shadow_inputs": 2}, None, "still unsigned")  # refused before it is recorded
    other, _ = generate(tmp_path / "other")
    with pytest.raises(PolicyError, match="does not list"):
        rt.set_policy({"min_shadow_inputs": 2}, load_private(other), "signed by a stranger")
    rt.set_policy({"min_shadow_inputs": 2}, load_private(key), "signed")
    assert rt.policy.min_shadow_inputs == 2


def test_a_tampered_policy_in_the_ledger_refuses_every_package(core_registry, tmp_path):
    key, pub = generate(tmp_path / "k")
    trust = TrustPolicy()
    trust.trust(pub)
    led = SQLiteLedger(tmp_path / "l.sqlite")
    rt = Runtime(core_registry, led, trust=trust)
    rt.set_policy({"min_shadow_inputs": 2}, load_private(key), "signed")
    # an adversary rewrites the recorded policy document (keeping the old signature)
    led._execute("DROP TRIGGER events_no_update")
    led._execute("UPDATE events SET body = replace(body, '\"min_shadow_inputs\":2', '\"min_shadow_inputs\":0') "
                 "WHERE kind = 'policy'")
    fresh = Runtime(core_registry, SQLiteLedger(tmp_path / "l.sqlite"), trust=trust)
    with pytest.raises(PolicyError, match="does not match the content"):
        fresh.policy
    with pytest.raises(Rejected, match="does not match the content"):
        fresh.apply(sign(mdqcore.load_package({"name": "p", "semver": "1.0.0", "atoms": [
            {"type": "Idx", "feature": "idf", "seg": "x", "delta": 0.1}]}), load_private(key)))


def test_delegations_bind_name_prefixes_to_keys(core_registry, tmp_path):
    a, pub_a = generate(tmp_path / "a")
    b, pub_b = generate(tmp_path / "b")
    trust = TrustPolicy()
    kid_a, kid_b = trust.trust(pub_a), trust.trust(pub_b)

    class Neutral:
        @mdqcore.hookimpl
        def register_evaluators(self, register):
            register("neutral", lambda state, inputs: {"ok": 1.0})

    from mdqcore.testing import load_isolated
    rt = Runtime(load_isolated(Neutral(), "n", registry=core_registry), SQLiteLedger(tmp_path / "l.sqlite"),
                 trust=trust)
    rt.set_policy({"delegations": {"med": [kid_a]}}, load_private(a), "team A owns med.*")

    def signed(name, key):
        return sign(mdqcore.load_package({"name": name, "semver": "1.0.0", "atoms": [
            {"type": "Idx", "feature": "idf", "seg": name, "delta": 0.1}]}), load_private(key))
    inputs = [{"key": "k"}]
    with pytest.raises(Rejected, match="the policy delegates 'med' to"):
        rt.apply(signed("med.idf", b), inputs=inputs)
    rt.apply(signed("med.idf", a), inputs=inputs)
    rt.apply(signed("other.idf", b), inputs=inputs)  # no delegation: the first signer owns the name
    with pytest.raises(Rejected, match="has been signed by key"):
        rt.apply(sign(mdqcore.load_package({"name": "other.idf", "semver": "2.0.0", "atoms": [
            {"type": "Idx", "feature": "idf", "seg": "q", "delta": 0.1}]}), load_private(a)), inputs=inputs)


def test_policy_show_and_set_from_the_cli(tmp_path, mdq_cli_plugins):
    from click.testing import CliRunner

    from mdqcore.cli import main

    mdq_cli_plugins("core")
    env = {"MDQ_LEDGER": str(tmp_path / "l.sqlite"), "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    r = CliRunner().invoke(main, ["policy", "show", "--json"], env=env)
    assert r.exit_code == 0 and json.loads(r.output)["min_shadow_inputs"] == 1
    assert not (tmp_path / "l.sqlite").exists()  # showing the defaults created nothing
    f = tmp_path / "p.json"
    f.write_text('{"min_shadow_inputs": 5, "min_shadow_inputs": 1}')
    r = CliRunner().invoke(main, ["policy", "set", str(f), "--reason", "x"], env=env)
    assert r.exit_code == 2 and "duplicate key 'min_shadow_inputs'" in r.output
    f.write_text('{"min_shadow_inputs": 5}')
    assert CliRunner().invoke(main, ["policy", "set", str(f), "--reason", "five inputs"], env=env).exit_code == 0
    assert json.loads(CliRunner().invoke(main, ["policy", "show", "--json"], env=env).output)["min_shadow_inputs"] == 5


def test_signature_errors_are_mdq_errors():
    assert issubclass(SignatureError, mdqcore.MdqError) and issubclass(PolicyError, mdqcore.MdqError)
