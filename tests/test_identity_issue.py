"""Issuing tokens and certificates, and the RFC 7638 thumbprints that bind one to the other."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from bastion.identity import (
    IdentityRefused,
    IdentitySettings,
    authenticate,
    jwk_thumbprint,
    verify_certificate,
    verify_token,
)
from bastion.identity.issue import (
    PERMIT_EXTENSIONS,
    issue_certificate,
    issue_token,
    load_ca_key,
    load_public_key,
)

ISS = "https://demo.bastion"


class NoRevocations:
    def is_revoked(self, jti: str | None, serial: int, key_fingerprint: str) -> bool:
        return False


def write_issuer(root: Path, key: Any, name: str) -> tuple[Path, Path]:
    private, public = root / f"{name}.key", root / f"{name}.pub"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


@pytest.fixture
def root(tmp_path: Path) -> Path:
    for name in ("user_ca", "agent", "other"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / name)], check=True
        )
    write_issuer(tmp_path, ed25519.Ed25519PrivateKey.generate(), "issuer")
    return tmp_path


def make_settings(root: Path, public_keys: list[str] | None = None) -> IdentitySettings:
    raw = {
        "trusted_user_cas": ["user_ca.pub"],
        "issuers": [{"issuer": ISS, "public_keys": public_keys or ["issuer.pub"]}],
    }
    return IdentitySettings.model_validate(raw).resolve(root)


@pytest.mark.parametrize(
    "key",
    [
        ed25519.Ed25519PrivateKey.generate(),
        ec.generate_private_key(ec.SECP256R1()),
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
    ],
    ids=["EdDSA", "ES256", "RS256"],
)
def test_issued_token_verifies(root: Path, key: Any) -> None:
    private, _ = write_issuer(root, key, "alt")
    settings = make_settings(root, ["alt.pub"])
    agent = load_public_key(root / "agent.pub")
    token = issue_token(
        private, iss=ISS, sub="agent-7", roles=["ops"], ttl=timedelta(minutes=5), pubkey=agent
    )
    verified = verify_token(token, settings, cert_public_key=agent)
    assert (verified.subject, verified.roles, verified.issuer) == ("agent-7", frozenset({"ops"}), ISS)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["cnf"] == {"jkt": jwk_thumbprint(agent)}
    assert claims["aud"] == "bastion"
    assert claims["exp"] - claims["iat"] == 300
    assert claims["jti"]


def test_extra_claims_and_kid(root: Path) -> None:
    token = issue_token(
        root / "issuer.key",
        iss=ISS,
        sub="agent-7",
        roles=[],
        ttl=timedelta(minutes=5),
        extra={"email": "a@example.com"},
        kid="demo-1",
    )
    assert jwt.get_unverified_header(token)["kid"] == "demo-1"
    assert verify_token(
        token, make_settings(root), cert_public_key=load_public_key(root / "agent.pub")
    ).display_name


def test_issued_certificate_carries_the_token_and_is_accepted(root: Path) -> None:
    settings = make_settings(root)
    agent = load_public_key(root / "agent.pub")
    token = issue_token(root / "issuer.key", iss=ISS, sub="agent-7", roles=["ops"], ttl=timedelta(hours=1))
    line = issue_certificate(
        load_ca_key(root / "user_ca"),
        agent,
        token,
        settings=settings,
        validity=timedelta(minutes=10),
        key_id="k7",
    )
    (root / "agent-cert.pub").write_bytes(line + b"\n")
    listing = subprocess.run(
        ["ssh-keygen", "-L", "-f", str(root / "agent-cert.pub")], check=True, capture_output=True, text=True
    ).stdout
    assert "user certificate" in listing
    for name in PERMIT_EXTENSIONS:
        assert name.decode() in listing
    info = verify_certificate(line, settings)
    assert info.token == token.encode()
    assert info.principals == ("agent-7",)
    assert info.key_id == "k7"
    assert info.valid_before - time.time() == pytest.approx(600, abs=5)
    identity = authenticate(line, settings, NoRevocations())
    assert (identity.subject, identity.cert_serial) == ("agent-7", info.serial)


def test_certificate_validity_is_capped_at_the_token_expiry(root: Path) -> None:
    settings = make_settings(root)
    token = issue_token(root / "issuer.key", iss=ISS, sub="a", roles=[], ttl=timedelta(minutes=2))
    line = issue_certificate(
        load_ca_key(root / "user_ca"),
        load_public_key(root / "agent.pub"),
        token,
        settings=settings,
        validity=timedelta(days=1),
        key_id="k",
        principals=["bastion-agent"],
    )
    info = verify_certificate(line, settings)
    exp = jwt.decode(token, options={"verify_signature": False})["exp"]
    assert info.valid_before == exp
    assert info.principals == ("bastion-agent",)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (
            lambda r: issue_token(r / "issuer.key", iss=ISS, sub="a", roles=[], ttl=timedelta(seconds=-120)),
            "token-expired",
        ),
        (
            lambda r: issue_token(
                r / "issuer.key", iss="https://x", sub="a", roles=[], ttl=timedelta(hours=1)
            ),
            "wrong-issuer",
        ),
        (
            lambda r: issue_token(
                r / "issuer.key",
                iss=ISS,
                sub="a",
                roles=[],
                ttl=timedelta(hours=1),
                pubkey=load_public_key(r / "other.pub"),
            ),
            "key-binding-mismatch",
        ),
    ],
)
def test_no_certificate_for_a_token_the_gateway_would_refuse(root: Path, make: Any, reason: str) -> None:
    with pytest.raises(IdentityRefused) as info:
        issue_certificate(
            load_ca_key(root / "user_ca"),
            load_public_key(root / "agent.pub"),
            make(root),
            settings=make_settings(root),
            validity=timedelta(hours=1),
            key_id="k",
        )
    assert info.value.reason == reason


def test_non_ascii_extension_value_is_a_bad_token(root: Path) -> None:
    settings = make_settings(root)
    now = int(time.time())
    cert = (
        serialization.SSHCertificateBuilder()
        .public_key(load_public_key(root / "agent.pub"))
        .serial(1)
        .type(serialization.SSHCertificateType.USER)
        .key_id(b"k")
        .valid_principals([b"a"])
        .valid_after(now - 60)
        .valid_before(now + 600)
        .add_extension(b"token@bastion", "jwt-ish-ünïcode".encode())
        .sign(load_ca_key(root / "user_ca"))
        .public_bytes()
    )
    with pytest.raises(IdentityRefused) as info:
        authenticate(cert, settings, NoRevocations())
    assert info.value.reason == "bad-token"


def test_rfc7638_rsa_example() -> None:
    n = (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3"
        "oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdA"
        "ZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-"
        "kEgU8awapJzKnqDKgw"
    )
    key = jwt.algorithms.RSAAlgorithm.from_jwk({"kty": "RSA", "n": n, "e": "AQAB"})
    assert jwk_thumbprint(key) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_rfc8037_ed25519_example() -> None:
    raw = base64.urlsafe_b64decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo=")
    key = ed25519.Ed25519PublicKey.from_public_bytes(raw)
    assert jwk_thumbprint(key) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1(), ec.SECP521R1()])
def test_ec_thumbprint_matches_the_jwk_pyjwt_writes(curve: ec.EllipticCurve) -> None:
    key = ec.generate_private_key(curve).public_key()
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key))
    canonical = json.dumps({k: jwk[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":")).encode()
    expected = base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()
    assert jwk_thumbprint(key) == expected


def test_thumbprint_refuses_keys_without_a_jwk_form() -> None:
    with pytest.raises(ValueError):
        jwk_thumbprint(ec.generate_private_key(ec.SECP256K1()).public_key())


def test_fixed_clock_makes_identity_expiry_exact(root: Path) -> None:
    settings = make_settings(root)
    token = issue_token(root / "issuer.key", iss=ISS, sub="a", roles=[], ttl=timedelta(minutes=30))
    line = issue_certificate(
        load_ca_key(root / "user_ca"),
        load_public_key(root / "agent.pub"),
        token,
        settings=settings,
        validity=timedelta(minutes=10),
        key_id="k",
    )
    identity = authenticate(line, settings, NoRevocations(), now=datetime.now(UTC))
    assert identity.expires == datetime.fromtimestamp(verify_certificate(line, settings).valid_before, UTC)
