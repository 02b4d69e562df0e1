"""Checking the agent's OpenSSH certificate ourselves, then the token in it, then revocation.

asyncssh validates the certificate too, but the gateway must not depend on how it was configured to: this
module re-checks type, CA and validity from bastion's own settings with `cryptography`, which also gives the
raw extension value asyncssh throws away.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import SSHCertificate, SSHCertificateType

from bastion.identity.keys import ca_keys, openssh_fingerprint, ssh_public_bytes
from bastion.identity.model import Identity, IdentityRefused
from bastion.identity.settings import IdentitySettings
from bastion.identity.token import verify_token

# Critical options asyncssh enforces itself; any other one must make the certificate unusable (as in OpenSSH).
KNOWN_CRITICAL_OPTIONS = frozenset({b"force-command", b"source-address"})


class RevocationCheck(Protocol):
    """Whether a token id, certificate serial or key is revoked; the gateway backs it with the store."""

    def is_revoked(self, jti: str | None, serial: int, key_fingerprint: str) -> bool: ...


@dataclass(frozen=True)
class CertInfo:
    """A user certificate signed by a trusted CA and valid now.

    `token` is the raw extension value, kept out of repr because it is a credential.
    """

    public_key: Any
    key_fingerprint: str
    serial: int
    key_id: str
    principals: tuple[str, ...]
    valid_after: int
    valid_before: int
    critical_options: dict[str, str]
    token: bytes | None = field(repr=False)

    def context(self) -> dict[str, str | int]:
        """What an audit event may say about this certificate."""
        return {
            "key_fingerprint": self.key_fingerprint,
            "cert_serial": self.serial,
            "cert_key_id": self.key_id,
        }


def verify_certificate(
    cert_blob: bytes, settings: IdentitySettings, *, now: datetime | None = None
) -> CertInfo:
    """Check a certificate (SSH wire blob or OpenSSH `type base64` line) and extract what bastion needs."""
    cert = _parse(cert_blob)
    info = _info(cert, settings.token_extension)
    refuse = _first_problem(cert, settings, now)
    if refuse:
        raise IdentityRefused(refuse, info.context())
    return info


def authenticate(
    cert_blob: bytes,
    settings: IdentitySettings,
    revocations: RevocationCheck,
    now: datetime | None = None,
) -> Identity:
    """The whole decision for one presented certificate: certificate, then token, then revocation."""
    cert = verify_certificate(cert_blob, settings, now=now)
    try:
        token = verify_token(_token_text(cert.token), settings, cert_public_key=cert.public_key, now=now)
    except IdentityRefused as refused:
        raise refused.with_context(cert.context()) from None
    context = {**cert.context(), "subject": token.subject, "issuer": token.issuer}
    if token.jti:
        context["jti"] = token.jti
    if revocations.is_revoked(token.jti, cert.serial, cert.key_fingerprint):
        raise IdentityRefused("revoked", context)
    return Identity(
        subject=token.subject,
        display_name=token.display_name,
        roles=token.roles,
        expires=datetime.fromtimestamp(min(cert.valid_before, token.expires.timestamp()), UTC),
        jti=token.jti,
        issuer=token.issuer,
        key_fingerprint=cert.key_fingerprint,
        cert_serial=cert.serial,
        cert_key_id=cert.key_id,
    )


def _parse(cert_blob: bytes) -> SSHCertificate:
    line = _as_line(cert_blob)
    try:
        cert = serialization.load_ssh_public_identity(line)
    except (ValueError, TypeError, IndexError, UnsupportedAlgorithm):
        raise IdentityRefused("bad-certificate") from None
    if not isinstance(cert, SSHCertificate):
        raise IdentityRefused("not-a-certificate")
    return cert


def _as_line(cert_blob: bytes) -> bytes:
    """The OpenSSH text form `cryptography` parses; the SSH wire form starts with a length, not a name."""
    if not cert_blob.startswith(b"\x00"):
        return cert_blob.strip()
    name_length = int.from_bytes(cert_blob[:4], "big")
    if name_length > 64 or len(cert_blob) < 4 + name_length:
        raise IdentityRefused("bad-certificate")
    return cert_blob[4 : 4 + name_length] + b" " + base64.b64encode(cert_blob)


def _info(cert: SSHCertificate, token_extension: str) -> CertInfo:
    public_key = cert.public_key()
    return CertInfo(
        public_key=public_key,
        key_fingerprint=openssh_fingerprint(public_key),
        serial=cert.serial,
        key_id=_text(cert.key_id),
        principals=tuple(_text(p) for p in cert.valid_principals),
        valid_after=cert.valid_after,
        valid_before=cert.valid_before,
        critical_options={_text(k): _text(v) for k, v in cert.critical_options.items()},
        token=cert.extensions.get(token_extension.encode()),
    )


def _text(value: bytes) -> str:
    return value.decode("utf-8", "replace")


def _token_text(raw: bytes | None) -> str:
    """The extension's value as text; a JWT is ASCII, so anything else is refused before pyjwt sees it."""
    if raw is None:
        raise IdentityRefused("no-token")
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        raise IdentityRefused("bad-token") from None


def _first_problem(cert: SSHCertificate, settings: IdentitySettings, now: datetime | None) -> str | None:
    if cert.type is not SSHCertificateType.USER:
        return "not-user-cert"
    if ssh_public_bytes(cert.signature_key()) not in ca_keys(settings):
        return "untrusted-ca"
    try:
        cert.verify_cert_signature()
    except InvalidSignature:
        return "bad-cert-signature"
    t = now.timestamp() if now is not None else time.time()
    if t < cert.valid_after:
        return "cert-not-yet-valid"
    if t >= cert.valid_before:
        return "cert-expired"
    if set(cert.critical_options) - KNOWN_CRITICAL_OPTIONS:
        return "unknown-critical-option"
    return None
