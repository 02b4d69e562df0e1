"""Credentials encrypted at rest with AES-256-GCM under secrets.key (kept outside the database).

The target's name is the associated data, so a ciphertext copied onto another target's row does not decrypt.
Messages never carry the plaintext or the key.
"""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bastion.errors import ConfigError, StoreError

_NONCE = 12


def create_key(path: Path) -> None:
    """Writes a new random 256-bit key, base64 text, mode 0600."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(base64.b64encode(AESGCM.generate_key(bit_length=256)).decode() + "\n")


class SecretBox:
    def __init__(self, key_path: Path) -> None:
        try:
            mode = key_path.stat().st_mode
            raw = base64.b64decode(key_path.read_text().strip(), validate=True)
        except (OSError, ValueError):
            raise ConfigError(f"secrets key {key_path} is missing or unreadable") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(f"secrets key {key_path} must not be readable by group or others (chmod 600)")
        if len(raw) != 32:
            raise ConfigError(f"secrets key {key_path} is not a 256-bit key")
        self._aead = AESGCM(raw)

    def seal(self, plaintext: bytes, context: str) -> str:
        nonce = os.urandom(_NONCE)
        sealed = self._aead.encrypt(nonce, plaintext, context.encode())
        return base64.b64encode(nonce + sealed).decode()

    def open(self, token: str, context: str) -> bytes:
        try:
            raw = base64.b64decode(token)
            return self._aead.decrypt(raw[:_NONCE], raw[_NONCE:], context.encode())
        except (InvalidTag, ValueError):
            raise StoreError(f"stored credential for {context} cannot be decrypted with this secrets key") from None
