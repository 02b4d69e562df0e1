"""The identity matrix at the unit level: real `ssh-keygen -s` certificates, tokens made here with pyjwt."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from bastion.identity import (
    IdentityRefused,
    IdentitySettings,
    authenticate,
    verify_certificate,
)

ISS = "https://idp.example"
JWKS_ISS = "https://jwks.example"


def keygen(path: Path, kind: str = "ed25519", bits: int | None = None) -> Path:
    """A fresh OpenSSH key pair; returns the private key path (`path.pub` is beside it)."""
    args = ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "", "-f", str(path)]
    if bits:
        args += ["-b", str(bits)]
    subprocess.run(args, check=True)
    return path


def pem_private(key: Any) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def pem_public(key: Any) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def ssh_public(path: Path) -> Any:
    return serialization.load_ssh_public_key(Path(f"{path}.pub").read_bytes())


@dataclass
class Allow:
    """A RevocationCheck that revokes what it is told to, and remembers what it was asked."""

    jtis: set[str] = field(default_factory=set)
    serials: set[int] = field(default_factory=set)
    keys: set[str] = field(default_factory=set)
    asked: list[tuple[str | None, int, str]] = field(default_factory=list)

    def is_revoked(self, jti: str | None, serial: int, key_fingerprint: str) -> bool:
        self.asked.append((jti, serial, key_fingerprint))
        return jti in self.jtis or serial in self.serials or key_fingerprint in self.keys


class Pki:
    """A CA, an untrusted CA, an RSA token issuer (PEM), a JWKS issuer with two EC keys, and an agent key."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ca = keygen(root / "ca")
        self.rogue_ca = keygen(root / "rogue_ca")
        self.agent = keygen(root / "agent")
        self.issuer_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        (root / "issuer.pub").write_bytes(pem_public(self.issuer_key))
        (root / "issuer.key").write_bytes(pem_private(self.issuer_key))
        self.jwks_keys = {kid: ec.generate_private_key(ec.SECP256R1()) for kid in ("k1", "k2")}
        jwks = {"keys": [self._jwk(kid, key) for kid, key in self.jwks_keys.items()]}
        (root / "jwks.json").write_text(json.dumps(jwks))
        self.settings = self.make_settings()

    @staticmethod
    def _jwk(kid: str, key: Any) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
        return {**jwk, "kid": kid, "use": "sig", "alg": "ES256"}

    def make_settings(self, **changes: Any) -> IdentitySettings:
        raw: dict[str, Any] = {
            "trusted_user_cas": ["ca.pub"],
            "issuers": [
                {"issuer": ISS, "public_keys": ["issuer.pub"]},
                {"issuer": JWKS_ISS, "algorithms": ["ES256"], "jwks_file": "jwks.json"},
            ],
            **changes,
        }
        return IdentitySettings.model_validate(raw).resolve(self.root)

    def claims(self, **changes: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {
            "iss": ISS,
            "aud": "bastion",
            "sub": "agent-7",
            "email": "agent-7@example.com",
            "roles": ["ops"],
            "iat": now,
            "nbf": now,
            "exp": now + 600,
            "jti": "jti-1",
        }
        claims.update(changes)
        return {k: v for k, v in claims.items() if v is not None}

    def token(
        self, key: Any = None, alg: str = "RS256", headers: dict[str, Any] | None = None, **changes: Any
    ) -> str:
        return jwt.encode(self.claims(**changes), key or self.issuer_key, algorithm=alg, headers=headers)

    def cert(
        self,
        token: str | None,
        *,
        ca: Path | None = None,
        key: Path | None = None,
        validity: str = "+1h",
        options: tuple[str, ...] = (),
        host: bool = False,
        serial: int = 42,
    ) -> bytes:
        """A certificate made by `ssh-keygen -s`, exactly as the SPEC's example command makes it."""
        key = key or self.agent
        args = ["ssh-keygen", "-q", "-s", str(ca or self.ca), "-I", "agent-7-key", "-n", "agent-7"]
        args += ["-V", validity, "-z", str(serial)]
        if host:
            args.append("-h")
        if token is not None:
            args += ["-O", f"extension:token@bastion={token}"]
        for option in options:
            args += ["-O", option]
        subprocess.run([*args, f"{key}.pub"], check=True)
        return Path(f"{key}-cert.pub").read_bytes()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


def refused(pki: Pki, cert: bytes, settings: IdentitySettings | None = None, **kw: Any) -> IdentityRefused:
    with pytest.raises(IdentityRefused) as info:
        authenticate(cert, settings or pki.settings, kw.pop("revocations", Allow()), **kw)
    return info.value


def test_valid_ssh_keygen_certificate_gives_the_identity(pki: Pki) -> None:
    token = pki.token()
    identity = authenticate(pki.cert(token), pki.settings, Allow())
    fingerprint = subprocess.run(
        ["ssh-keygen", "-l", "-f", f"{pki.agent}.pub"], check=True, capture_output=True, text=True
    ).stdout.split()[1]
    assert identity.subject == "agent-7"
    assert identity.display_name == "agent-7@example.com"
    assert identity.roles == frozenset({"ops"})
    assert identity.issuer == ISS
    assert identity.jti == "jti-1"
    assert identity.key_fingerprint == fingerprint
    assert (identity.cert_serial, identity.cert_key_id) == (42, "agent-7-key")
    assert identity.expires == datetime.fromtimestamp(pki.claims()["exp"], UTC)


def test_certificate_end_caps_the_identity_expiry(pki: Pki) -> None:
    cert = pki.cert(pki.token(exp=int(time.time()) + 7200), validity="+5m")
    identity = authenticate(cert, pki.settings, Allow())
    assert identity.expires == datetime.fromtimestamp(
        verify_certificate(cert, pki.settings).valid_before, UTC
    )


def test_wire_blob_and_text_line_are_the_same_certificate(pki: Pki) -> None:
    line = pki.cert(pki.token())
    blob = base64.b64decode(line.split()[1])
    assert verify_certificate(blob, pki.settings) == verify_certificate(line, pki.settings)


def test_name_claim_is_the_display_name_without_email(pki: Pki) -> None:
    cert = pki.cert(pki.token(email=None, name="Agent Seven"))
    assert authenticate(cert, pki.settings, Allow()).display_name == "Agent Seven"


def hs256_with_public_key(pki: Pki) -> str:
    """The classic confusion attack: HMAC keyed with the issuer's public PEM (pyjwt refuses to make it)."""
    segments = [
        base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=")
        for part in ({"alg": "HS256", "typ": "JWT"}, pki.claims())
    ]
    signing_input = b".".join(segments)
    mac = hmac.new(pem_public(pki.issuer_key), signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + base64.urlsafe_b64encode(mac).rstrip(b"=")).decode()


TOKEN_REFUSALS = {
    "unknown signing key": (lambda p: p.token(key=rsa.generate_private_key(65537, 2048)), "bad-signature"),
    "expired": (lambda p: p.token(exp=int(time.time()) - 120), "token-expired"),
    "not yet valid": (lambda p: p.token(nbf=int(time.time()) + 120), "token-not-yet-valid"),
    "issued in the future": (lambda p: p.token(iat=int(time.time()) + 120), "token-issued-in-future"),
    "no exp": (lambda p: p.token(exp=None), "no-exp"),
    "wrong iss": (lambda p: p.token(iss="https://evil.example"), "wrong-issuer"),
    "no iss": (lambda p: p.token(iss=None), "wrong-issuer"),
    "wrong aud": (lambda p: p.token(aud="elsewhere"), "wrong-audience"),
    "no aud": (lambda p: p.token(aud=None), "wrong-audience"),
    "no sub": (lambda p: p.token(sub=None), "no-sub"),
    "empty sub": (lambda p: p.token(sub=""), "no-sub"),
    "alg none": (lambda p: jwt.encode(p.claims(), None, algorithm="none"), "alg-not-allowed"),
    "HS256 with the issuer's public key": (hs256_with_public_key, "alg-not-allowed"),
    "ES256 token, issuer has no EC key": (
        lambda p: p.token(key=p.jwks_keys["k1"], alg="ES256", headers={"kid": "k1"}),
        "bad-signature",
    ),
    "RS256 not allowed for the JWKS issuer": (lambda p: p.token(iss=JWKS_ISS), "alg-not-allowed"),
    "unknown kid": (
        lambda p: p.token(key=p.jwks_keys["k1"], alg="ES256", iss=JWKS_ISS, headers={"kid": "k3"}),
        "unknown-kid",
    ),
    "kid of the other key": (
        lambda p: p.token(key=p.jwks_keys["k1"], alg="ES256", iss=JWKS_ISS, headers={"kid": "k2"}),
        "bad-signature",
    ),
    "garbage extension": (lambda p: "not-a-jwt", "bad-token"),
    "empty extension": (lambda p: "", "no-token"),
    "numeric exp as text": (lambda p: p.token(exp="tomorrow"), "bad-token"),
    "cnf.jkt of another key": (lambda p: p.token(cnf={"jkt": "x" * 43}), "key-binding-mismatch"),
    "cnf not an object": (lambda p: p.token(cnf="x"), "bad-token"),
}


@pytest.mark.parametrize("case", sorted(TOKEN_REFUSALS))
def test_bad_token_is_refused_with_its_reason(pki: Pki, case: str) -> None:
    make, reason = TOKEN_REFUSALS[case]
    token = make(pki)
    error = refused(pki, pki.cert(token))
    assert error.reason == reason
    assert error.context["cert_serial"] == 42
    assert error.context["key_fingerprint"].startswith("SHA256:")
    if token:
        assert token not in f"{error} {error!r} {dict(error.context)}"


def test_missing_extension_is_no_token(pki: Pki) -> None:
    assert refused(pki, pki.cert(None)).reason == "no-token"


def test_expiry_within_clock_skew_is_accepted(pki: Pki) -> None:
    cert = pki.cert(pki.token(exp=int(time.time()) - 30, nbf=int(time.time()) + 30))
    assert authenticate(cert, pki.settings, Allow()).subject == "agent-7"


def test_jwks_key_selected_by_kid_or_tried_without_one(pki: Pki) -> None:
    for headers in ({"kid": "k2"}, None):
        token = pki.token(key=pki.jwks_keys["k2"], alg="ES256", iss=JWKS_ISS, headers=headers)
        assert authenticate(pki.cert(token), pki.settings, Allow()).issuer == JWKS_ISS


def test_hmac_only_with_the_configured_shared_secret(pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BASTION_TEST_SECRET", "s" * 32)
    settings = pki.make_settings(
        issuers=[
            {
                "issuer": ISS,
                "algorithms": ["HS256", "RS256"],
                "public_keys": ["issuer.pub"],
                "shared_secret_env": "BASTION_TEST_SECRET",
            }
        ]
    )
    good = pki.token(key="s" * 32, alg="HS256")
    assert authenticate(pki.cert(good), settings, Allow()).subject == "agent-7"
    assert refused(pki, pki.cert(hs256_with_public_key(pki)), settings).reason == "bad-signature"
    monkeypatch.delenv("BASTION_TEST_SECRET")
    assert refused(pki, pki.cert(good), settings).reason == "issuer-key-unavailable"


@pytest.mark.parametrize(("kind", "bits"), [("ed25519", None), ("ecdsa", 256), ("ecdsa", 384), ("rsa", 2048)])
def test_key_binding_matches_the_certified_key(pki: Pki, tmp_path: Path, kind: str, bits: int | None) -> None:
    from bastion.identity import jwk_thumbprint

    key = keygen(tmp_path / kind, kind, bits)
    token = pki.token(cnf={"jkt": jwk_thumbprint(ssh_public(key))})
    settings = pki.make_settings(require_key_binding=True)
    assert authenticate(pki.cert(token, key=key), settings, Allow()).subject == "agent-7"
    other = pki.cert(token)  # the same token in a certificate for the agent's usual key
    assert refused(pki, other, settings).reason == "key-binding-mismatch"


def test_key_binding_can_be_required(pki: Pki) -> None:
    settings = pki.make_settings(require_key_binding=True)
    assert refused(pki, pki.cert(pki.token()), settings).reason == "key-binding-required"


CERT_REFUSALS = {
    "expired certificate": ({"validity": "20200101:20200102"}, "cert-expired"),
    "certificate not yet valid": ({"validity": "+1d:+2d"}, "cert-not-yet-valid"),
    "untrusted CA": ({"ca": "rogue_ca"}, "untrusted-ca"),
    "host certificate": ({"host": True}, "not-user-cert"),
    "unknown critical option": (
        {"options": ("critical:bastion-test@example.com=x",)},
        "unknown-critical-option",
    ),
}


@pytest.mark.parametrize("case", sorted(CERT_REFUSALS))
def test_bad_certificate_is_refused_with_its_reason(pki: Pki, case: str) -> None:
    kwargs, reason = CERT_REFUSALS[case]
    if "ca" in kwargs:
        kwargs = {**kwargs, "ca": pki.root / kwargs["ca"]}
    assert refused(pki, pki.cert(pki.token(), **kwargs)).reason == reason


def test_tampered_certificate_signature_is_refused(pki: Pki) -> None:
    blob = bytearray(base64.b64decode(pki.cert(pki.token()).split()[1]))
    blob[-1] ^= 1
    assert refused(pki, bytes(blob)).reason == "bad-cert-signature"


@pytest.mark.parametrize("data", [b"", b"garbage", b"\x00\x00\x00\x05hello", b"ssh-ed25519 AAAA"])
def test_unparseable_certificate_is_refused(pki: Pki, data: bytes) -> None:
    assert refused(pki, data).reason in {"bad-certificate", "not-a-certificate"}


def test_plain_public_key_is_not_a_certificate(pki: Pki) -> None:
    assert refused(pki, Path(f"{pki.agent}.pub").read_bytes()).reason == "not-a-certificate"


@pytest.mark.parametrize("what", ["jti", "serial", "key"])
def test_revoked_jti_serial_or_key_is_refused(pki: Pki, what: str) -> None:
    cert = pki.cert(pki.token(), serial=7)
    fingerprint = verify_certificate(cert, pki.settings).key_fingerprint
    revocations = Allow(
        jtis={"jti-1"} if what == "jti" else set(),
        serials={7} if what == "serial" else set(),
        keys={fingerprint} if what == "key" else set(),
    )
    error = refused(pki, cert, revocations=revocations)
    assert error.reason == "revoked"
    assert error.context["subject"] == "agent-7"
    assert revocations.asked == [("jti-1", 7, fingerprint)]


@pytest.mark.parametrize(
    ("settings_changes", "claims", "roles"),
    [
        ({}, {"roles": ["ops", "dev"]}, {"ops", "dev"}),
        (
            {"role_map": {"sre-team": ["operator", "approver"]}},
            {"roles": ["sre-team", "ops"]},
            {"operator", "approver"},
        ),
        ({"roles_claim": "groups", "role_map": {"g1": ["reader"]}}, {"groups": ["g1", "g2"]}, {"reader"}),
        ({"roles_claim": "realm_access.roles"}, {"realm_access": {"roles": ["ops"]}}, {"ops"}),
        ({"roles_claim": "https://example.com/roles"}, {"https://example.com/roles": "ops"}, {"ops"}),
        ({}, {"roles": None}, set()),
        ({}, {"roles": [1, "ops", None]}, {"ops"}),
    ],
)
def test_role_mapping(pki: Pki, settings_changes: dict, claims: dict, roles: set[str]) -> None:
    settings = pki.make_settings(**settings_changes)
    identity = authenticate(pki.cert(pki.token(**claims)), settings, Allow())
    assert identity.roles == frozenset(roles)


def test_fixed_clock_is_honoured(pki: Pki) -> None:
    cert = pki.cert(pki.token())
    later = datetime.now(UTC) + timedelta(minutes=30)
    assert refused(pki, cert, now=later).reason == "token-expired"
    assert refused(pki, cert, now=later + timedelta(hours=1)).reason == "cert-expired"
