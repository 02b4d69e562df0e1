"""Keep secrets out of audit details.

The audit log is exported to SIEMs and kept for years, so a credential written into it leaks for good. This is
a simple tripwire, not a scanner: a details key (at any depth) whose name contains one of SECRET_WORDS is
refused unless what it holds is plainly not a secret:

- the key names a derived value: it ends in one of SAFE_SUFFIXES (`token_sha256`, `credential_fingerprint`,
  `token_id`, `password_set`…), or
- the value is not text (None, a bool or a number), or is a hex digest (32 to 128 hex digits) or an OpenSSH
  fingerprint (`SHA256:…`).

Callers wanting to record which credential was involved record its hash or fingerprint under such a key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from bastion.errors import StoreError

SECRET_WORDS = (
    "token",
    "password",
    "passwd",
    "passphrase",
    "secret",
    "private_key",
    "privatekey",
    "credential",
)
SAFE_SUFFIXES = ("_sha256", "_hash", "_fingerprint", "_id", "_set", "_kind", "_type")
_DIGEST_RE = re.compile(r"^(?:[0-9a-fA-F]{32,128}|SHA256:[A-Za-z0-9+/]{43})$")


class SecretInDetails(StoreError):
    """An event's details named a secret: the event is not written, so its action must not happen."""


def check_details(details: Mapping[str, Any], path: str = "") -> None:
    """Raise SecretInDetails naming the offending key (never its value)."""
    for key, value in details.items():
        where = f"{path}.{key}" if path else str(key)
        if _looks_secret(str(key)) and not _plainly_not_secret(str(key), value):
            raise SecretInDetails(
                f"audit details key {where!r} looks like a secret; record a hash of it instead"
            )
        _check_nested(value, where)


def _check_nested(value: Any, where: str) -> None:
    if isinstance(value, Mapping):
        check_details(value, where)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_nested(item, f"{where}[{index}]")


def _looks_secret(key: str) -> bool:
    name = key.lower().replace("-", "_")
    return any(word in name for word in SECRET_WORDS)


def _plainly_not_secret(key: str, value: Any) -> bool:
    if key.lower().replace("-", "_").endswith(SAFE_SUFFIXES):
        return True
    if value is None or isinstance(value, bool | int | float):
        return True
    return isinstance(value, str) and bool(_DIGEST_RE.match(value))
