"""What the rest of bastion knows about an authenticated agent, and the one way authentication says no."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType

from bastion.errors import Refused


@dataclass(frozen=True)
class Identity:
    """An agent proven by a trusted certificate and the token inside it.

    `expires` is the earlier of the token's `exp` and the certificate's end of validity: the session must not
    outlive either. Principals of the certificate are deliberately absent: the login name selects the target,
    and who the agent is comes from the token alone.
    """

    subject: str
    display_name: str | None
    roles: frozenset[str]
    expires: datetime
    jti: str | None
    issuer: str
    key_fingerprint: str
    cert_serial: int
    cert_key_id: str


class IdentityRefused(Refused):
    """Authentication refused, with a short machine `reason` for the audit log.

    `context` carries what was already established (certificate serial, key id, fingerprint, subject once the
    token verified) so a refusal can still be attributed. Neither the message nor the context ever holds the
    token, and the client is only ever told "Permission denied".
    """

    def __init__(self, reason: str, context: Mapping[str, str | int] | None = None) -> None:
        super().__init__(f"authentication refused: {reason}")
        self.reason = reason
        self.context: Mapping[str, str | int] = MappingProxyType(dict(context or {}))

    def with_context(self, context: Mapping[str, str | int]) -> IdentityRefused:
        """A copy whose context also holds `context` (earlier keys win: they were established first)."""
        return IdentityRefused(self.reason, {**context, **self.context})
