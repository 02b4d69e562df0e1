"""The one place bastion reaches into asyncssh: handing the server the raw certificate during authentication.

Why: asyncssh parses certificates itself and keeps only the extensions it knows, so the `token@bastion`
extension never reaches the server object, and `validate_ca_key` sees only the CA key. Refusing a bad token
must happen *before* authentication succeeds (an async `auth_completed` does not hold back session requests),
so the certificate has to be seen while asyncssh validates it.

How: `install()` wraps the private `SSHServerConnection._validate_openssh_certificate`. For a server object
that defines `validate_certificate(username, cert_blob) -> bool` (sync or async), the wrapper calls it with
the certificate's SSH wire bytes *before* asyncssh's own checks, once per certificate per connection (asyncssh
validates twice per login: query, then signed request), and a False refuses the certificate. True means only
"this certificate and its token are acceptable": a client may show any number of (public) certificates in
unsigned queries before it signs. `install()` therefore also wraps `SSHServerConnection.validate_public_key`:
once a signature verifies it calls the server object's `certificate_authenticated(username, cert_blob)` with
the signing key's blob (the same bytes `validate_certificate` saw when it was a certificate), and only that
certificate may become the connection's identity. Server objects without the hooks are left exactly as
asyncssh behaves. Checked against asyncssh 2.24.0 only: any other version refuses to import.

asyncssh must also be told to accept certificates whose principals differ from the login name (the login name
is the target, not the agent): pass `authorized_client_keys=authorized_ca_keys(settings)` to the server. A
certificate that lists no principal matches no pattern and is refused (OpenSSH would take it as valid for
every login, which is never what a CA for agents means).
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Awaitable
from typing import Protocol

import asyncssh
from asyncssh.connection import SSHServerConnection

from bastion.identity.keys import ca_key_lines
from bastion.identity.settings import IdentitySettings

SUPPORTED_ASYNCSSH = ("2.24.0",)

if asyncssh.__version__ not in SUPPORTED_ASYNCSSH:
    raise ImportError(
        f"bastion.identity.certext relies on asyncssh internals checked against "
        f"{', '.join(SUPPORTED_ASYNCSSH)}, found {asyncssh.__version__}: "
        f"re-check SSHServerConnection._validate_openssh_certificate before widening the range"
    )

_original = SSHServerConnection._validate_openssh_certificate
_original_validate_public_key = SSHServerConnection.validate_public_key
# (username, certificate blob) → the server's verdict, per live connection.
_verdicts: weakref.WeakKeyDictionary[SSHServerConnection, dict[tuple[str, bytes], bool]] = (
    weakref.WeakKeyDictionary()
)


class CertificateValidator(Protocol):
    """What a server object implements to take part in certificate authentication."""

    def validate_certificate(self, username: str, cert_blob: bytes) -> bool | Awaitable[bool]:
        """Each certificate presented, before asyncssh's own checks; False refuses it."""
        ...

    def certificate_authenticated(self, username: str, cert_blob: bytes) -> None:
        """The key whose signature just verified: the only certificate that may become the identity."""
        ...


async def _validate_openssh_certificate(
    self: SSHServerConnection, username: str, cert: asyncssh.SSHCertificate
) -> asyncssh.SSHKey | None:
    hook = getattr(self.get_owner(), "validate_certificate", None)
    if hook is not None:
        verdicts = _verdicts.setdefault(self, {})
        seen = (username, bytes(cert.public_data))
        if seen not in verdicts:
            result = hook(username, seen[1])
            if inspect.isawaitable(result):
                result = await result
            verdicts[seen] = result is True
        if not verdicts[seen]:
            return None
    return await _original(self, username, cert)


async def _validate_public_key(
    self: SSHServerConnection, username: str, key_data: bytes, msg: bytes, signature: bytes
) -> bool:
    """After a *signed* request verifies, tell the server which certificate it was.

    Unsigned queries may show any certificate (certificates are public, and the verdicts above are cached per
    certificate); only the one whose key signed may become the connection's identity.
    """
    ok = await _original_validate_public_key(self, username, key_data, msg, signature)
    hook = getattr(self.get_owner(), "certificate_authenticated", None)
    if ok and msg and hook is not None:
        hook(username, bytes(key_data))
    return ok


def install() -> None:
    """Route OpenSSH certificates through the server object's hooks; safe to call twice."""
    current = SSHServerConnection._validate_openssh_certificate
    if current is _validate_openssh_certificate:
        return
    if current is not _original or (
        SSHServerConnection.validate_public_key is not _original_validate_public_key
    ):
        raise RuntimeError("asyncssh's certificate validation was replaced by someone else")
    setattr(SSHServerConnection, "_validate_openssh_certificate", _validate_openssh_certificate)  # noqa: B010
    setattr(SSHServerConnection, "validate_public_key", _validate_public_key)  # noqa: B010


def authorized_ca_keys(settings: IdentitySettings) -> asyncssh.SSHAuthorizedKeys:
    """The trusted CAs as `cert-authority` entries whose `principals=` patterns come from the settings.

    With a `principals` option asyncssh matches the certificate's principals against the patterns instead of
    comparing them with the login name, which here is the target.
    """
    patterns = ",".join(settings.principals)
    return asyncssh.import_authorized_keys(
        "".join(f'cert-authority,principals="{patterns}" {line}\n' for line in ca_key_lines(settings))
    )
