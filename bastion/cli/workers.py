"""`bastion serve --workers N`: N serving processes sharing one listening socket.

One Python process runs its event loop and its database thread on one core at a time, and key exchange and
authentication are CPU work, so a busy bastion on a multi-core host runs one worker per core. The parent binds
the socket and starts each worker as `bastion serve --listen-fd FD`; the workers accept from the same socket (an
idle worker takes the next connection) and share everything else through the database, as separate `bastion
serve` processes on one data directory always could: the audit chain, approvals (a decision made through one
worker releases a request held by another at its next poll), session kills, revocations.

The parent only supervises. SIGTERM or SIGINT is passed to every worker, each drains its own sessions, and the
parent exits when they all have. A worker that exits by itself takes the others down with it (and the parent
exits non-zero): a service manager restarting the whole gateway is simpler to reason about than a gateway
running with fewer workers than it was given.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from types import FrameType

from bastion.gateway.server import LISTEN_BACKLOG


def bind(host: str, port: int) -> socket.socket:
    """The listening socket the workers share; OSError when it cannot be bound."""
    family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    sock = socket.create_server(address[:2], family=family, backlog=LISTEN_BACKLOG)
    sock.set_inheritable(True)
    return sock


def supervise(sock: socket.socket, workers: int, config: Path, verbose: int) -> int:
    """Runs `workers` serving processes on `sock` until they have all exited; returns the exit status."""
    argv = [sys.executable, "-m", "bastion", "serve", "--config", str(config), "--listen-fd", str(sock.fileno())]
    if verbose:
        argv.append("-" + "v" * verbose)
    children: dict[int, subprocess.Popen[bytes]] = {}
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for child in children.values():
            if child.returncode is None:
                child.send_signal(signal.SIGTERM)

    previous = {signum: signal.signal(signum, stop) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        for _ in range(workers):
            child = subprocess.Popen(argv, pass_fds=(sock.fileno(),))
            children[child.pid] = child
        sock.close()
        if stopping:  # a signal that came while the workers were starting has not reached the later ones
            stop(signal.SIGTERM, None)
        print(f"bastion: {workers} workers started", file=sys.stderr, flush=True)
        status = 0
        while any(child.returncode is None for child in children.values()):
            pid, wait_status = os.wait()
            child = children.get(pid)
            if child is None:
                continue
            child.returncode = os.waitstatus_to_exitcode(wait_status)
            if not stopping:
                print(f"bastion: worker {pid} exited ({child.returncode}); stopping the others",
                      file=sys.stderr, flush=True)
                status = 1
                stop(signal.SIGTERM, None)
            elif child.returncode != 0:
                status = status or 1
        return status
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
