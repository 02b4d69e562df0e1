"""Loading the Ed25519 audit key and its public half.

The private key file (`audit.key` from `bastion init`) may be PEM PKCS#8 (`-----BEGIN PRIVATE KEY-----`) or
OpenSSH (`-----BEGIN OPENSSH PRIVATE KEY-----`), unencrypted, since the server must sign unattended. Public
keys given to the verifier may be PEM SubjectPublicKeyInfo or an OpenSSH `ssh-ed25519 AAAA…` line.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
    load_pem_public_key,
    load_ssh_private_key,
    load_ssh_public_key,
)

from bastion.errors import ConfigError


def load_signing_key(path: str | Path) -> Ed25519PrivateKey:
    """The audit signing key; a ConfigError names the file when it is missing or not Ed25519."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise ConfigError(f"cannot read audit key {path}: {err.strerror}") from err
    try:
        if b"OPENSSH PRIVATE KEY" in data:
            key = load_ssh_private_key(data, password=None)
        else:
            key = load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"audit key {path} is not an unencrypted PEM or OpenSSH private key") from err
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"audit key {path} is not an Ed25519 key")
    return key


def audit_public_key_text(key_path: str | Path) -> str:
    """The public half of the audit key as PEM, for `bastion audit pubkey` and for keeping elsewhere."""
    public = load_signing_key(key_path).public_key()
    return public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


def load_public_key(text: str) -> Ed25519PublicKey:
    """An auditor's copy of the public key: PEM or an OpenSSH public key line."""
    data = text.strip().encode()
    try:
        key = load_ssh_public_key(data) if data.startswith(b"ssh-") else load_pem_public_key(data)
    except (ValueError, TypeError) as err:
        raise ConfigError("audit public key is not PEM or an OpenSSH public key line") from err
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError("audit public key is not an Ed25519 key")
    return key
