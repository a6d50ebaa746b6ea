"""Ed25519 signatures over a package's canonical JSON, and the trust policy that requires them.

A signature reads `ed25519:KEYID:BASE64`, where KEYID is the first 16 hex digits of the
SHA-256 of the raw public key. It signs the canonical JSON of the package without its
`signature` field, so any change to any other field invalidates it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path

import attrs
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .errors import SignatureError
from .model import MdqPackage, canonical_json


def _raw(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public: Ed25519PublicKey) -> str:
    """Return the short id of a public key."""
    return hashlib.sha256(_raw(public)).hexdigest()[:16]


def public_text(public: Ed25519PublicKey) -> str:
    """Return a public key as base64 of its 32 raw bytes (what a trust policy lists)."""
    return base64.b64encode(_raw(public)).decode()


def load_public(text: str) -> Ed25519PublicKey:
    """Read a public key from base64 raw bytes."""
    try:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(text.strip(), validate=True))
    except ValueError as exc:
        raise SignatureError(f"not an ed25519 public key (base64 of 32 bytes): {exc}") from None


def generate(directory: str | Path) -> tuple[Path, str]:
    """Write a new private key (PEM, mode 600) into `directory`; return its path and the public key text."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    priv = Ed25519PrivateKey.generate()
    path, text = d / f"mdq-{key_id(priv.public_key())}.pem", public_text(priv.public_key())
    pem = priv.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    # created 0600, never readable by others for a moment; an existing file of that name is refused, not overwritten
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
        f.write(pem)
    path.with_suffix(".pub").write_text(text + "\n")
    return path, text


def _bad_key(path: Path, key: object) -> Ed25519PublicKey:
    raise SignatureError(f"trust file {path}: {key!r} is not a base64 public key string")


def load_private(path: str | Path) -> Ed25519PrivateKey:
    """Read a PEM private key."""
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise SignatureError(f"cannot read private key {path}: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureError(f"{path} is not an ed25519 private key")
    return key


def signed_bytes(pkg: MdqPackage) -> bytes:
    """Return the bytes a signature covers: canonical JSON without the signature field."""
    return canonical_json(attrs.evolve(pkg, signature=None)).encode("utf-8")


def sign_bytes(data: bytes, private: Ed25519PrivateKey) -> str:
    """Return `ed25519:KEYID:BASE64`, a signature of `data` by `private`."""
    return f"ed25519:{key_id(private.public_key())}:{base64.b64encode(private.sign(data)).decode()}"


def signer(signature: str | None) -> str | None:
    """Return the key id a signature names (not verified), or None."""
    parts = (signature or "").split(":", 2)
    return parts[1] if len(parts) == 3 and parts[0] == "ed25519" else None


def sign(pkg: MdqPackage, private: Ed25519PrivateKey) -> MdqPackage:
    """Return the package with a signature by `private`."""
    return attrs.evolve(pkg, signature=sign_bytes(signed_bytes(pkg), private))


@attrs.define
class TrustPolicy:
    """Trusted public keys by id; with at least one key, every package must carry a valid signature."""

    keys: dict[str, Ed25519PublicKey] = attrs.field(factory=dict)
    path: Path | None = None

    @classmethod
    def load(cls, path: str | Path) -> TrustPolicy:
        """Read a trust file ({"trusted": [base64 public keys, at least one]}); anything else is an error."""
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise SignatureError(f"trust file {p} cannot be read ({exc.strerror}): a trust file that is named must "
                                 f"exist; create it with `mdq keys trust KEY --trust {p}`") from None
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise SignatureError(f"trust file {p} is not JSON ({exc}); expected {{\"trusted\": [KEY, ...]}}") from None
        if not isinstance(data, dict) or set(data) != {"trusted"} or not isinstance(data["trusted"], list):
            extra = sorted(set(data) - {"trusted"}) if isinstance(data, dict) else []
            raise SignatureError(f"trust file {p} must be exactly {{\"trusted\": [KEY, ...]}}"
                                 + (f"; unknown key(s): {', '.join(map(repr, extra))}" if extra else ""))
        if not data["trusted"]:
            raise SignatureError(f"trust file {p} trusts no key: an empty trust file would turn signature checks "
                                 f"off; add a key with `mdq keys trust KEY --trust {p}` or remove the file")
        keys = [load_public(k) if isinstance(k, str) else _bad_key(p, k) for k in data["trusted"]]
        return cls({key_id(k): k for k in keys}, p)

    @classmethod
    def load_default(cls, path: Path) -> TrustPolicy:
        """Read the default trust file if it exists (strictly, as `load`); its absence means no trusted keys."""
        return cls.load(path) if path.exists() else cls(path=path)

    def trust(self, public_text_: str) -> str:
        """Add a public key and save; return its id."""
        k = load_public(public_text_)
        self.keys[key_id(k)] = k
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps({"trusted": sorted(public_text(v) for v in self.keys.values())}, indent=2))
        return key_id(k)

    @property
    def enforced(self) -> bool:
        """Tell whether signatures are required."""
        return bool(self.keys)

    def check(self, pkg: MdqPackage, *, required: bool = False) -> str | None:
        """Verify the package's signature (required when keys are trusted, or when asked); return its key id."""
        if not (self.enforced or required):
            return signer(pkg.signature)
        if not self.keys:
            raise SignatureError(f"{pkg.ref}: the policy requires signatures but no key is trusted; "
                                 f"add one with `mdq keys trust`")
        if not pkg.signature:
            raise SignatureError(f"{pkg.ref} is unsigned and the trust policy requires signatures; "
                                 f"sign it with `mdq keys sign`")
        return self.verify_bytes(pkg.signature, signed_bytes(pkg), what=pkg.ref)

    def verify_bytes(self, signature: str, data: bytes, *, what: str) -> str:
        """Check that `signature` over `data` is by a trusted key; return the key id, else raise SignatureError."""
        try:
            scheme, kid, sig = signature.split(":", 2)
            raw = base64.b64decode(sig, validate=True)
        except (ValueError, AttributeError):
            raise SignatureError(f"{what}: malformed signature; expected ed25519:KEYID:BASE64") from None
        if scheme != "ed25519" or kid not in self.keys:
            raise SignatureError(f"{what} is signed by key {kid!r}, which the trust file does not list; "
                                 f"add it with `mdq keys trust` if you trust it")
        try:
            self.keys[kid].verify(raw, data)
        except InvalidSignature:
            raise SignatureError(f"{what}: the signature does not match the content (altered after signing?)") from None
        return kid
