"""Ed25519 signatures and the trust policy (issue #4)."""

from __future__ import annotations

import attrs
import pytest

import mdqcore
from mdqcore.runtime.signing import SignatureError, TrustPolicy, generate, load_private, load_public, sign


def _pkg():
    return mdqcore.load_package({"name": "p", "semver": "1.0.0",
                                 "atoms": [{"type": "Idx", "feature": "idf", "seg": "x", "delta": 0.1}]})


def test_sign_verify_and_tamper(tmp_path):
    key, pub = generate(tmp_path)
    pol = TrustPolicy.load(tmp_path / "trust.json")
    assert not pol.enforced
    pol.check(_pkg())  # no policy: anything goes
    pol.trust(pub)
    assert TrustPolicy.load(tmp_path / "trust.json").enforced
    signed = sign(_pkg(), load_private(key))
    pol.check(signed)
    assert mdqcore.load_package(mdqcore.model.unstructure(signed)).signature == signed.signature
    with pytest.raises(SignatureError, match="does not match the content"):
        pol.check(attrs.evolve(signed, scope=["MED"]))
    with pytest.raises(SignatureError, match="malformed signature"):
        pol.check(attrs.evolve(signed, signature="garbage"))
    assert oct((key).stat().st_mode & 0o777) == "0o600"


def test_bad_keys_and_policies(tmp_path):
    with pytest.raises(SignatureError, match="not an ed25519 public key"):
        load_public("not-base64!")
    (tmp_path / "p.json").write_text("{bad")
    with pytest.raises(SignatureError, match="unreadable"):
        TrustPolicy.load(tmp_path / "p.json")
    (tmp_path / "k.pem").write_text("nope")
    with pytest.raises(SignatureError, match="cannot read private key"):
        load_private(tmp_path / "k.pem")
