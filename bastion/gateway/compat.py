"""The asyncssh private API bastion relies on for channel requests, in one place (asyncssh 2.24.0).

asyncssh does not implement OpenSSH's `eow@openssh.com` ("end of write"): when the agent's stdout closes
(`ssh bastion cmd | head`), OpenSSH sends it and keeps the channel open, waiting for the command to end.
Without a handler, the upstream command would run on forever. asyncssh dispatches a channel request to a
`_process_<name>_request` method of the channel, so the handler is added to the server channel class and
the bastion passes the request on upstream, where sshd closes the command's stdout (it gets SIGPIPE).

OpenSSH's client sends eow only to peers whose banner matches `OpenSSH*` (its SSH_NEW_OPENSSH compat flag),
so the bastion's banner starts with "OpenSSH" and names itself after it. That prefix matches none of the
patterns OpenSSH keeps for old releases' bugs, so no workaround is switched on.
"""

from __future__ import annotations

from typing import Any

import asyncssh
from asyncssh.channel import SSHClientChannel, SSHServerChannel
from asyncssh.packet import SSHPacket

if asyncssh.__version__ != "2.24.0":
    raise ImportError(f"bastion.gateway.compat is checked against asyncssh 2.24.0, not {asyncssh.__version__}")


SERVER_VERSION = "OpenSSH_compatible bastion"


def _process_eow_request(self: SSHServerChannel, packet: SSHPacket) -> bool:
    packet.check_end()
    handler = getattr(self._session, "eow_received", None)
    if handler is not None:
        handler()
    return True


def send_eow(chan: SSHClientChannel[Any]) -> None:
    """Tells the upstream sshd that nobody reads the command's output any more."""
    if chan._send_state not in {"close_pending", "closed"}:  # still open after write_eof() on stdin
        chan._send_request(b"eow@openssh.com")


SSHServerChannel._process_eow_at_openssh_dot_com_request = _process_eow_request  # type: ignore[attr-defined]
