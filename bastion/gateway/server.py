"""The asyncssh server: who may connect, and what each channel request turns into.

Authentication is by OpenSSH user certificate only. The trusted CAs are given to asyncssh as `cert-authority`
entries with `principals="…"` patterns (identity.principals, default "*"): the certificate must name at least
one principal matching them, and the login name is *not* compared with the principals, because the login name
selects the target while the certificate is per agent. A certificate with no principals at all is refused
(OpenSSH would take it as valid for every login). Who the agent is comes from the token inside the certificate,
checked by `bastion.identity` before authentication succeeds. Passwords, keyboard-interactive and plain keys
are refused; forwarding of every kind is refused and logged.
"""

from __future__ import annotations

import asyncio
import logging

import asyncssh

from bastion.errors import StoreError
from bastion.gateway import compat
from bastion.gateway.context import Gateway
from bastion.gateway.relay import AgentChannelSession
from bastion.gateway.sessions import start_channel
from bastion.identity import certext
from bastion.identity.model import Identity, IdentityRefused

log = logging.getLogger("bastion.server")
# Agents connecting at once queue here until the loop accepts them; asyncio's default (100) drops the rest.
LISTEN_BACKLOG = 1024

# What agents may use. OpenSSH clients pick chacha20-poly1305 first whenever it is offered, and asyncssh encrypts
# it about three times slower than AES-GCM (it builds a cipher per packet): offering AES-GCM (and CTR for old
# clients) only makes default clients take the fast, equally sound choice.
SERVER_CIPHERS = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "aes128-ctr",
    "aes192-ctr",
    "aes256-ctr",
)


class AgentConnection(asyncssh.SSHServer):
    """One agent's SSH connection: authentication state and channel requests."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.conn: asyncssh.SSHServerConnection | None = None
        self.login = ""
        self.peer = "?"
        self.identity: Identity | None = None
        self._verified: dict[bytes, Identity] = {}
        self.channels: set[AgentChannelSession] = set()
        self._expiry: asyncio.TimerHandle | None = None
        self.audit_failure: str | None = None  # auth.success could not be written: every channel is refused
        self.audited: asyncio.Future[None] | None = None  # the auth.success write

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.conn = conn
        peer = conn.get_extra_info("peername") or ("?", 0)
        self.peer = f"{peer[0]}:{peer[1]}"
        self.gateway.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.gateway.connections.discard(self)
        if self._expiry is not None:
            self._expiry.cancel()

    def begin_auth(self, username: str) -> bool:
        self.login = username
        return True

    def password_auth_supported(self) -> bool:
        return False

    def kbdint_auth_supported(self) -> bool:
        return False

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        log.info("refused plain public key from %s for %s: only certificates are accepted", self.peer, username)
        return False

    def validate_ca_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return False

    async def validate_certificate(self, username: str, cert_blob: bytes) -> bool:
        """Called by `certext` for each certificate presented, before authentication can succeed."""
        try:
            self._verified[cert_blob] = await self.gateway.verify(cert_blob, peer=self.peer, login=username)
        except IdentityRefused:
            return False
        return True

    def certificate_authenticated(self, username: str, cert_blob: bytes) -> None:
        """Called by `certext` once a signature by this certificate's key has verified.

        Only this certificate's identity counts: a client may show other (public) certificates in queries
        before it signs with its own, and none of those may lend it their identity.
        """
        self.identity = self._verified.get(cert_blob)

    def auth_completed(self) -> None:
        if self.identity is None or self.conn is None:
            log.error("authentication completed without a verified certificate; closing %s", self.peer)
            if self.conn is not None:
                self.conn.close()
            return
        self._verified.clear()
        # asyncssh has already told the client; channels wait for this write before they start (fail closed).
        self.audited = asyncio.ensure_future(self._audit_auth(self.identity))
        self._expiry = self.gateway.schedule_expiry(self)

    async def _audit_auth(self, identity: Identity) -> None:
        try:
            await self.gateway.authenticated(identity, peer=self.peer, login=self.login)
        except StoreError as exc:
            log.error("authentication of %s from %s could not be audited: %s", identity.subject, self.peer, exc)
            self.audit_failure = str(exc)

    def session_requested(self) -> AgentChannelSession:
        return AgentChannelSession(lambda session: start_channel(self, session))

    def connection_requested(self, dest_host: str, dest_port: int, orig_host: str, orig_port: int) -> bool:
        self._refused(f"port forwarding to {dest_host}:{dest_port}")
        return False

    def server_requested(self, listen_host: str, listen_port: int) -> bool:
        self._refused(f"remote port forwarding on {listen_host}:{listen_port}")
        return False

    def unix_connection_requested(self, dest_path: str) -> bool:
        self._refused("unix socket forwarding")
        return False

    def unix_server_requested(self, listen_path: str) -> bool:
        self._refused("remote unix socket forwarding")
        return False

    def tun_requested(self, unit: int | None) -> bool:
        self._refused("layer 3 tunnel (ssh -w)")
        return False

    def tap_requested(self, unit: int | None) -> bool:
        self._refused("layer 2 tunnel (ssh -w)")
        return False

    def forwarding_refused(self, what: str) -> None:
        """X11 or agent forwarding, which asyncssh refuses before the bastion sees the request (compat.py)."""
        self._refused(what)

    def _refused(self, what: str) -> None:
        subject = self.identity.subject if self.identity else "?"
        log.warning("refused %s for %s on %s from %s", what, subject, self.login, self.peer)
        self.gateway.event_soon(
            "request.refused", subject=subject, target=self.login, details={"request": what, "peer": self.peer}
        )


async def start_server(gateway: Gateway, host: str, port: int, *, reuse_port: bool = False
                       ) -> asyncssh.SSHAcceptor:
    """Listens on host:port; `reuse_port` for a worker of `bastion serve --workers N`."""
    certext.install()
    server = gateway.config.server
    return await asyncssh.create_server(
        lambda: AgentConnection(gateway),
        host,
        port,
        reuse_port=reuse_port or None,
        backlog=LISTEN_BACKLOG,
        # asyncssh rebuilds its options for every connection when authentication begins: a key object (not a
        # path) and no GSS host spare each connection a re-read of the host key and a DNS lookup of our name.
        server_host_keys=[asyncssh.read_private_key(gateway.config.path(server.host_key))],
        gss_host=None,
        authorized_client_keys=certext.authorized_ca_keys(gateway.config.identity),
        agent_forwarding=False,
        x11_forwarding=False,
        allow_pty=True,
        line_editor=False,
        encoding=None,
        login_timeout=server.login_timeout_s,
        keepalive_interval=server.keepalive_interval_s,
        encryption_algs=list(SERVER_CIPHERS),
        server_version=compat.SERVER_VERSION,
    )
