"""Issuing tokens and certificates for demos, tests and `bastion token issue` / `bastion cert issue`.

Production tokens come from the organisation's IdP; these helpers exist so a fresh install and the test suite
can make the same artefacts an IdP and `ssh-keygen -s` would.

Certificates carry the five `permit-*` extensions `ssh-keygen` adds by default: asyncssh enforces them before
bastion's policy runs, so leaving one out would make the certificate, not the policy, decide what an agent may
do, and bastion-made certificates would behave differently from `ssh-keygen`-made ones.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from bastion.errors import ConfigError
from bastion.identity.settings import IdentitySettings
from bastion.identity.token import jwk_thumbprint, verify_token

PERMIT_EXTENSIONS = (
    b"permit-X11-forwarding",
    b"permit-agent-forwarding",
    b"permit-port-forwarding",
    b"permit-pty",
    b"permit-user-rc",
)
# Certificates start a little in the past so a gateway whose clock lags slightly still accepts them.
BACKDATE = timedelta(seconds=60)
_EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}


def issue_token(
    issuer_key_pem_path: Path,
    *,
    iss: str,
    sub: str,
    roles: Iterable[str],
    ttl: timedelta,
    aud: str = "bastion",
    pubkey: PublicKeyTypes | None = None,
    extra: Mapping[str, Any] | None = None,
    roles_claim: str = "roles",
    kid: str | None = None,
) -> str:
    """A signed JWT; `pubkey` binds it to that key through `cnf.jkt`, `extra` adds or overrides claims."""
    key = _load_private_key(issuer_key_pem_path)
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": iss,
        "sub": sub,
        "aud": aud,
        "iat": now,
        "nbf": now,
        "exp": now + int(ttl.total_seconds()),
        "jti": secrets.token_hex(16),
        roles_claim: sorted(roles),
    }
    if pubkey is not None:
        claims["cnf"] = {"jkt": jwk_thumbprint(pubkey)}
    claims.update(extra or {})
    return jwt.encode(claims, key, algorithm=_algorithm(key), headers={"kid": kid} if kid else None)


def issue_certificate(
    ca_private_key: Any,
    user_public_key: PublicKeyTypes,
    token: str,
    *,
    settings: IdentitySettings,
    validity: timedelta,
    key_id: str,
    principals: Iterable[str] | None = None,
    serial: int | None = None,
) -> bytes:
    """An OpenSSH user certificate line carrying `token`, valid for `validity` and never past its `exp`.

    The token is verified first (raising IdentityRefused), with the user key as the certified key, so a
    certificate is never made for a token the gateway would refuse. `principals` default to the token's
    subject; a random serial makes `bastion revoke --serial` target exactly this certificate.
    """
    verified = verify_token(token, settings, cert_public_key=user_public_key)
    now = datetime.now(UTC)
    not_after = min(now + validity, verified.expires)
    builder = (
        serialization.SSHCertificateBuilder()
        .public_key(user_public_key)
        .serial(serial if serial is not None else secrets.randbits(63))
        .type(serialization.SSHCertificateType.USER)
        .key_id(key_id.encode())
        .valid_principals([p.encode() for p in (principals or [verified.subject])])
        .valid_after(int((now - BACKDATE).timestamp()))
        .valid_before(int(not_after.timestamp()))
        .add_extension(settings.token_extension.encode(), token.encode())
    )
    for name in PERMIT_EXTENSIONS:
        builder = builder.add_extension(name, b"")
    return builder.sign(ca_private_key).public_bytes()


def load_public_key(path: Path) -> PublicKeyTypes:
    """An OpenSSH public key file (`KEY.pub`), as `--pubkey` names it."""
    try:
        return serialization.load_ssh_public_key(path.read_bytes())
    except (OSError, ValueError, UnsupportedAlgorithm) as exc:
        raise ConfigError(f"{path}: not a readable OpenSSH public key ({exc.__class__.__name__})") from None


def load_ca_key(path: Path) -> Any:
    """The user CA's OpenSSH private key (`user_ca`), unencrypted as `bastion init` writes it."""
    try:
        return serialization.load_ssh_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ConfigError(f"{path}: not a readable OpenSSH private key ({exc.__class__.__name__})") from None


def _load_private_key(path: Path) -> Any:
    try:
        return serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ConfigError(f"{path}: not a readable PEM private key ({exc.__class__.__name__})") from None


def _algorithm(key: Any) -> str:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "EdDSA"
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name in _EC_ALGORITHMS:
        return _EC_ALGORITHMS[key.curve.name]
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256"
    raise ConfigError(f"cannot sign tokens with a {type(key).__name__}")
