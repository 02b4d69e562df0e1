"""Reading the key files the identity settings name.

Files are parsed once and cached by (path, mtime, size): authentication does not re-read them on every login,
yet replacing a file (key rotation) takes effect without a restart.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from bastion.errors import ConfigError

if TYPE_CHECKING:
    from bastion.identity.settings import IdentitySettings, IssuerSettings


@dataclass(frozen=True)
class VerificationKey:
    """One public key a token may be signed with; `kid` and `alg` only when a JWKS names them."""

    key: Any
    kid: str | None = None
    alg: str | None = None


def ssh_public_bytes(key: PublicKeyTypes) -> bytes:
    """The SSH wire encoding of a public key: what OpenSSH fingerprints and what identifies a CA."""
    line = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return base64.b64decode(line.split()[1])


def openssh_fingerprint(key: PublicKeyTypes) -> str:
    """`SHA256:…` exactly as `ssh-keygen -l` prints it, so audit entries match what administrators see."""
    digest = hashlib.sha256(ssh_public_bytes(key)).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def ca_keys(settings: IdentitySettings) -> list[bytes]:
    """Wire encodings of every trusted user CA key."""
    return [blob for path in settings.trusted_user_cas for blob in _read_ca_file(*_stamp(path))]


def ca_key_lines(settings: IdentitySettings) -> list[str]:
    """`TYPE BASE64` lines of every trusted user CA key (for asyncssh's authorized-keys form)."""
    return [_line(blob) for path in settings.trusted_user_cas for blob in _read_ca_file(*_stamp(path))]


def issuer_keys(issuer: IssuerSettings) -> list[VerificationKey]:
    """Every asymmetric key the issuer's tokens may be signed with, JWKS keys first."""
    keys: list[VerificationKey] = []
    if issuer.jwks_file is not None:
        keys.extend(_read_jwks(*_stamp(issuer.jwks_file)))
    keys.extend(VerificationKey(_read_pem(*_stamp(path))) for path in issuer.public_keys)
    return keys


def check_keys(settings: IdentitySettings) -> None:
    """Parse every configured key now; raises ConfigError naming the file."""
    ca_keys(settings)
    for issuer in settings.issuers:
        issuer_keys(issuer)
        if issuer.shared_secret_env:
            issuer.shared_secret()


def _stamp(path: Path) -> tuple[Path, int, int]:
    try:
        st = path.stat()
    except OSError as exc:
        raise ConfigError(f"cannot read key file {path}: {exc.strerror}") from None
    return path, st.st_mtime_ns, st.st_size


def _line(blob: bytes) -> str:
    algorithm = blob[4 : 4 + int.from_bytes(blob[:4], "big")].decode()
    return f"{algorithm} {base64.b64encode(blob).decode()}"


@lru_cache(maxsize=64)
def _read_ca_file(path: Path, _mtime: int, _size: int) -> tuple[bytes, ...]:
    blobs = []
    for raw in path.read_bytes().splitlines():
        line = raw.strip()
        if not line or line.startswith(b"#"):
            continue
        try:
            key = serialization.load_ssh_public_key(line)
        except (ValueError, TypeError, IndexError, UnsupportedAlgorithm):
            raise ConfigError(f"{path}: not an OpenSSH public key") from None
        blobs.append(ssh_public_bytes(key))
    if not blobs:
        raise ConfigError(f"{path}: no CA public key in the file")
    return tuple(blobs)


@lru_cache(maxsize=64)
def _read_pem(path: Path, _mtime: int, _size: int) -> Any:
    try:
        return serialization.load_pem_public_key(path.read_bytes())
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ConfigError(f"{path}: not a PEM public key") from None


@lru_cache(maxsize=16)
def _read_jwks(path: Path, _mtime: int, _size: int) -> tuple[VerificationKey, ...]:
    try:
        entries = json.loads(path.read_text())["keys"]
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"{path}: not a JWKS document") from None
    found = []
    for entry in entries if isinstance(entries, list) else ():
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        if entry.get("kty") == "oct":
            raise ConfigError(f"{path}: symmetric keys do not belong in a JWKS file; use shared_secret_env")
        try:
            jwk = jwt.PyJWK.from_dict(entry)
        except jwt.PyJWTError:
            # An IdP may publish key types pyjwt cannot use; they simply never verify anything here.
            continue
        found.append(VerificationKey(jwk.key, jwk.key_id, entry.get("alg")))
    if not found:
        raise ConfigError(f"{path}: no usable signing key in the JWKS")
    return tuple(found)
