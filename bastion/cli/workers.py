"""`bastion serve --workers N`: N serving processes on one port.

One Python process runs its event loop and its database thread on one core at a time, and key exchange and
authentication are CPU work, so a busy bastion on a multi-core host runs one worker per core. Each worker is
`bastion serve` listening on the same port with SO_REUSEPORT, so the kernel spreads new connections evenly over
them (a shared listening socket would not: asyncio accepts every pending connection at once, so the first worker
to wake takes a whole burst). Workers share everything else through the database, as separate `bastion serve`
processes on one data directory always could: the audit chain, approvals (a decision made through one worker
releases a request held by another within 50 ms), session kills, revocations. SO_REUSEPORT only joins sockets of
the same user, so only a process running as the bastion's own user could listen beside it.

The parent only supervises. It holds the port bound (not listening) so it stays reserved for the workers, and a
worker whose parent is gone (killed with SIGKILL, say) drains and exits by itself rather than serve on beside
the next gateway.
SIGTERM or SIGINT is passed to every worker, each drains its own sessions, and the parent exits when they all
have. A worker that exits by itself takes the others down with it (and the parent exits non-zero): a service
manager restarting the whole gateway is simpler to reason about than a gateway running with fewer workers than
it was given.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from types import FrameType


def reserve(host: str, port: int) -> socket.socket:
    """Binds host:port with SO_REUSEPORT without listening (port 0 picks one); OSError when it cannot.

    A first bind without SO_REUSEPORT makes sure nobody serves the port already: with it alone, a leftover
    worker of an earlier gateway (or another bastion on another database) would silently share the
    connections. SO_REUSEADDR, as asyncio sets it, lets a restart bind over connections still in TIME_WAIT.
    """
    family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(address)
        address = (address[0], probe.getsockname()[1], *address[2:])
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def supervise(listen: str, workers: int, config: Path, verbose: int) -> int:
    """Runs `workers` serving processes on `listen` (reserved) until they have all exited; returns the status."""
    argv = [sys.executable, "-m", "bastion", "serve", "--config", str(config), "--listen", listen, "--reuse-port"]
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
        try:
            for _ in range(workers):
                child = subprocess.Popen(argv)
                children[child.pid] = child
        except OSError:
            stop(signal.SIGTERM, None)
            raise
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
