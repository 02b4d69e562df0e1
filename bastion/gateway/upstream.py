"""Connections to targets with the credential the bastion holds and the host key it pinned.

The pinned key is the only trusted key: no known_hosts file, no CA, no prompt. asyncssh is told not to use
the bastion's own ssh-agent, ~/.ssh/config or default keys, so nothing of the host leaks into the upstream leg.
"""

from __future__ import annotations

import asyncio

import asyncssh

from bastion.errors import BastionError, Refused
from bastion.secrets import SecretBox
from bastion.store.targets import Target

# asyncssh encrypts AES-GCM about three times faster than chacha20-poly1305; as the client we choose.
CLIENT_CIPHERS = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
    "aes128-ctr",
    "aes256-ctr",
)


class UpstreamError(BastionError):
    """The target could not be reached or refused the bastion: the agent sees it with exit 255."""


def parse_host_key(text: str) -> asyncssh.SSHKey:
    try:
        return asyncssh.import_public_key(text.strip())
    except (asyncssh.KeyImportError, ValueError):
        raise BastionError("host key must be 'TYPE BASE64' as in a known_hosts line") from None


async def connect(
    target: Target, box: SecretBox, *, timeout: float, keepalive: float
) -> asyncssh.SSHClientConnection:
    options: dict[str, object] = {}
    secret = box.open(target.sealed_credential, target.name)
    if target.credential_kind == "key":
        try:
            options["client_keys"] = [asyncssh.import_private_key(secret)]
        except (asyncssh.KeyImportError, ValueError):
            raise UpstreamError(f"stored key for {target.name} cannot be loaded") from None
        options["preferred_auth"] = "publickey"
    else:
        options["client_keys"] = []
        options["password"] = secret.decode()
        options["preferred_auth"] = "password,keyboard-interactive"
    try:
        return await asyncssh.connect(
            target.host,
            target.port,
            username=target.user,
            known_hosts=([parse_host_key(target.host_key)], [], []),
            agent_path=None,
            agent_forwarding=False,
            config=None,
            ignore_encrypted=True,
            connect_timeout=timeout,
            keepalive_interval=keepalive,
            encryption_algs=list(CLIENT_CIPHERS),
            **options,
        )
    except asyncssh.HostKeyNotVerifiable:
        raise Refused(
            f"host key of target {target.name} does not match the pinned key; refusing to connect"
        ) from None
    except asyncssh.PermissionDenied:
        raise UpstreamError(f"target {target.name} refused the stored credential") from None
    except (OSError, asyncssh.Error, TimeoutError) as exc:
        reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or type(exc).__name__
        raise UpstreamError(f"cannot reach target {target.name}: {reason}") from None


async def scan_host_key(host: str, port: int, timeout: float = 10.0) -> str:
    """The key the host presents now, as 'TYPE BASE64' (for `target add --scan`)."""
    try:
        key = await asyncio.wait_for(asyncssh.get_server_host_key(host, port, config=None), timeout)
    except (OSError, asyncssh.Error, TimeoutError) as exc:
        raise BastionError(f"cannot scan {host}:{port}: {getattr(exc, 'strerror', None) or exc}") from None
    if key is None:
        raise BastionError(f"{host}:{port} presented no host key")
    return key.export_public_key("openssh").decode().strip()
