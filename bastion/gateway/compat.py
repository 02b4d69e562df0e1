"""The asyncssh private API bastion relies on, in one place (asyncssh 2.24.0): eow, quick ACKs, and the X11
and agent forwarding requests asyncssh refuses by itself.

asyncssh does not implement OpenSSH's `eow@openssh.com` ("end of write"): when the agent's stdout closes
(`ssh bastion cmd | head`), OpenSSH sends it and keeps the channel open, waiting for the command to end.
Without a handler, the upstream command would run on forever. asyncssh dispatches a channel request to a
`_process_<name>_request` method of the channel, so the handler is added to the server channel class and
the bastion passes the request on upstream, where sshd closes the command's stdout (it gets SIGPIPE).

OpenSSH's client sends eow only to peers whose banner matches `OpenSSH*` (its SSH_NEW_OPENSSH compat flag),
so the bastion's banner starts with "OpenSSH" and names itself after it. That prefix matches none of the
patterns OpenSSH keeps for old releases' bugs, so no workaround is switched on.

Quick ACKs: OpenSSH's client leaves Nagle's algorithm on until a session asks for a terminal, and during key
exchange and authentication it sends two packets in a row without waiting for a reply (KEXINIT then
KEX_ECDH_INIT; NEWKEYS then SERVICE_REQUEST). Nagle holds the second packet until the first is acknowledged,
and Linux delays that ACK by up to 40 ms when it expects to piggyback it on a reply: two such stalls made up
80 of the 113 ms an `ssh bastion true` took. sshd does the same on the upstream leg (output, then EOF and
exit-status). So every asyncssh connection of the bastion asks the kernel for an immediate ACK (TCP_QUICKACK,
which Linux clears again by itself) each time data arrives: one setsockopt per read, and no stall.
"""

from __future__ import annotations

import socket
from typing import Any

import asyncssh
from asyncssh.channel import SSHClientChannel, SSHServerChannel
from asyncssh.connection import SSHConnection, SSHServerConnection
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


_QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux only; elsewhere nothing is changed
_data_received = SSHConnection.data_received


def _data_received_quick_ack(self: SSHConnection, data: bytes, datatype: Any = None) -> None:
    sock = getattr(self, "_bastion_ack_socket", None)
    if sock is None:
        sock = self._transport.get_extra_info("socket") if self._transport else None
        self._bastion_ack_socket = sock or False  # type: ignore[attr-defined]
    if sock:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
        except OSError:  # not TCP (a Unix socket in tests): nothing to acknowledge early
            self._bastion_ack_socket = False  # type: ignore[attr-defined]
    _data_received(self, data, datatype)


if _QUICKACK is not None:
    SSHConnection.data_received = _data_received_quick_ack  # type: ignore[method-assign]


# X11 and agent forwarding are off (`x11_forwarding=False`, `agent_forwarding=False`), so asyncssh refuses the
# channel requests itself and the bastion would not see them. Every refusal is told to the connection's server
# object (`forwarding_refused`), which logs and audits it like a refused port forward.
_attach_x11_listener = SSHServerConnection.attach_x11_listener
_create_agent_listener = SSHServerConnection.create_agent_listener


async def _attach_x11_listener_told(self: SSHServerConnection, *args: Any) -> str | None:
    display = await _attach_x11_listener(self, *args)
    if display is None:
        _tell_refused(self, "X11 forwarding")
    return display


async def _create_agent_listener_told(self: SSHServerConnection) -> bool:
    created = await _create_agent_listener(self)
    if not created:
        _tell_refused(self, "agent forwarding")
    return created


def _tell_refused(conn: SSHServerConnection, what: str) -> None:
    refused = getattr(conn.get_owner(), "forwarding_refused", None)
    if refused is not None:
        refused(what)


SSHServerConnection.attach_x11_listener = _attach_x11_listener_told  # type: ignore[method-assign]
SSHServerConnection.create_agent_listener = _create_agent_listener_told  # type: ignore[method-assign]
