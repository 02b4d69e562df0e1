"""The asyncssh hooks in bastion.gateway.compat, checked without the network (their effect is in the bench)."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from asyncssh.connection import SSHConnection

from bastion.gateway import compat

pytestmark = pytest.mark.skipif(not hasattr(socket, "TCP_QUICKACK"), reason="TCP_QUICKACK is Linux only")


class _Socket:
    def __init__(self, fails: bool = False) -> None:
        self.options: list[tuple[int, int, int]] = []
        self.fails = fails

    def setsockopt(self, level: int, option: int, value: int) -> None:
        self.options.append((level, option, value))
        if self.fails:
            raise OSError("not a TCP socket")


class _Transport:
    def __init__(self, sock: _Socket) -> None:
        self.sock = sock

    def get_extra_info(self, name: str) -> Any:
        return self.sock if name == "socket" else None


class _Connection:
    def __init__(self, sock: _Socket) -> None:
        self._transport = _Transport(sock)


def test_every_read_asks_for_an_immediate_ack_then_hands_the_data_on(monkeypatch: pytest.MonkeyPatch) -> None:
    received: list[bytes] = []
    monkeypatch.setattr(compat, "_data_received", lambda conn, data, datatype: received.append(data))
    sock = _Socket()
    conn = _Connection(sock)
    assert SSHConnection.data_received is compat._data_received_quick_ack
    SSHConnection.data_received(conn, b"one")  # type: ignore[arg-type]
    SSHConnection.data_received(conn, b"two")  # type: ignore[arg-type]
    assert received == [b"one", b"two"]
    assert sock.options == [(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)] * 2


def test_a_socket_that_refuses_the_option_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    received: list[bytes] = []
    monkeypatch.setattr(compat, "_data_received", lambda conn, data, datatype: received.append(data))
    sock = _Socket(fails=True)
    conn = _Connection(sock)
    SSHConnection.data_received(conn, b"one")  # type: ignore[arg-type]
    SSHConnection.data_received(conn, b"two")  # type: ignore[arg-type]
    assert received == [b"one", b"two"]
    assert len(sock.options) == 1
