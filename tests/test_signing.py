"""Ed25519 signatures and the trust policy (issue #4)."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest

import mdqcore
from mdqcore.signing import SignatureError, TrustPolicy, generate, load_private, load_public, sign


def _pkg():
    return mdqcore.load_package({"name": "p", "semver": "1.0.0",
                                 "atoms": [{"type": "Idx", "feature": "idf", "seg": "x", "delta": 0.1}]})


def test_sign_verify_and_tamper(tmp_path, monkeypatch):
    monkeypatch.setattr(Path, "chmod", lambda *a, **k: None)  # only a file created private passes
    key, pub = generate(tmp_path)
    assert key.stat().st_mode & 0o777 == 0o600
    monkeypatch.undo()
    pol = TrustPolicy.load_default(tmp_path / "trust.json")  # the default file, absent: no trusted key
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
    with pytest.raises(SignatureError, match="is not JSON"):
        TrustPolicy.load(tmp_path / "p.json")
    (tmp_path / "k.pem").write_text("nope")
    with pytest.raises(SignatureError, match="cannot read private key"):
        load_private(tmp_path / "k.pem")


@pytest.mark.parametrize("content, fragment", [
    (None, "a trust file that is named must exist"),
    ('{"trusted": []}', "trusts no key"),
    ('{"trustd": ["x"]}', "unknown key(s): 'trustd'"),
    ('["x"]', "must be exactly"),
    ('{"trusted": [5]}', "is not a base64 public key string"),
    ("", "is not JSON"),
])
def test_a_named_trust_file_fails_closed(tmp_path, content, fragment):
    # issue #16: a missing, empty or misspelt trust file used to turn signature checks off silently
    f = tmp_path / "trust.json"
    if content is not None:
        f.write_text(content)
    with pytest.raises(SignatureError) as exc:
        TrustPolicy.load(f)
    assert fragment in str(exc.value)
    if content is not None:  # the default location is read just as strictly when the file exists
        with pytest.raises(SignatureError):
            TrustPolicy.load_default(f)
