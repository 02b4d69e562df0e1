"""`bastion serve`: run the gateway until SIGTERM or SIGINT, then drain."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import logging
import os
import signal
import sys
from collections.abc import Callable

from bastion.audit.log import AuditLog
from bastion.cli import workers
from bastion.cli.common import open_config
from bastion.config import Config, config_path, parse_listen
from bastion.errors import BastionError
from bastion.gateway.context import Gateway
from bastion.gateway.server import start_server
from bastion.identity.certificate import authenticate
from bastion.store.revocations import StoreRevocations

log = logging.getLogger("bastion.serve")
POLICY_FILES = ("policy.yaml", "commands.yaml", "masking.yaml")


def register(verbs: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = verbs.add_parser("serve", parents=[common], help="run the gateway")
    parser.add_argument("--listen", metavar="HOST:PORT", help="default: server.listen from the config")
    parser.add_argument("--workers", type=int, metavar="N",
                        help="serving processes sharing the socket (default: server.workers, 1)")
    parser.add_argument("--verbose", "-v", action="count", default=0, help="log more (-vv: asyncssh too)")
    parser.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)  # a worker of --workers N
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = open_config(args)
    logging.getLogger("bastion").setLevel(logging.INFO if args.verbose else logging.WARNING)
    if args.verbose > 1:
        logging.getLogger("asyncssh").setLevel(logging.INFO)
    try:
        host, port = parse_listen(args.listen or config.server.listen)
    except ValueError as exc:
        raise BastionError(f"--listen: {exc}") from None
    count = args.workers if args.workers is not None else config.server.workers
    if count < 1:
        raise BastionError("--workers: at least 1")
    if count == 1 or args.reuse_port:
        return asyncio.run(serve(config, host, port, parent=os.getppid() if args.reuse_port else None))
    try:
        reserved = workers.reserve(host, port)
    except OSError as exc:
        raise BastionError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    with reserved:
        listen = f"[{host}]:{reserved.getsockname()[1]}" if ":" in host else f"{host}:{reserved.getsockname()[1]}"
        return workers.supervise(listen, count, config_path(args.config).resolve(), args.verbose)


async def serve(config: Config, host: str, port: int, *, parent: int | None = None,
                stop: asyncio.Event | None = None, ready: Callable[[int], None] | None = None) -> int:
    """Serves until SIGTERM, SIGINT or `stop`; `ready` gets the bound port once the listener accepts.
    `parent`: this is a worker of `serve --workers N` (SO_REUSEPORT) and stops when that process is gone."""
    audit = AuditLog(signing_key_path=config.path(config.audit_key))
    revocations = StoreRevocations()
    gateway = Gateway(config, lambda blob: authenticate(blob, config.identity, revocations), audit)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        acceptor = await start_server(gateway, host, port, reuse_port=parent is not None)
    except OSError as exc:
        raise BastionError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    bound = acceptor.sockets[0].getsockname()
    await gateway.event("server.start", details={"listen": f"{bound[0]}:{bound[1]}", "pid": gateway.pid})
    policies = config.path(config.policies_dir)
    await gateway.event("policy.loaded", details={
        name: hashlib.sha256((policies / name).read_bytes()).hexdigest() if (policies / name).exists() else None
        for name in POLICY_FILES})
    print(f"bastion: listening on {bound[0]}:{bound[1]}", file=sys.stderr, flush=True)
    background = [
        asyncio.ensure_future(gateway.run_background()),
        asyncio.ensure_future(gateway.watch_decisions()),
        *([asyncio.ensure_future(_orphaned(parent, stop))] if parent is not None else []),
        asyncio.ensure_future(_checkpoints(gateway, audit)),
    ]
    if ready is not None:
        ready(bound[1])
    await stop.wait()
    print("bastion: stopping; draining live sessions", file=sys.stderr, flush=True)
    acceptor.close()
    await gateway.drain(config.server.grace_period_s)
    for task in background:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await gateway.event("server.stop", details={"pid": gateway.pid})
    await gateway.db(audit.close)
    gateway.close()
    return 0


async def _orphaned(parent: int, stop: asyncio.Event) -> None:
    """A worker whose supervisor is gone (its parent changes) stops, as if it had been told to."""
    while os.getppid() == parent:
        await asyncio.sleep(1)
    print("bastion: the supervising process is gone; stopping", file=sys.stderr, flush=True)
    stop.set()


async def _checkpoints(gateway: Gateway, audit: AuditLog) -> None:
    while True:
        await asyncio.sleep(5)
        try:
            await gateway.db(audit.maybe_checkpoint)
        except BastionError as exc:
            log.error("audit checkpoint failed: %s", exc)
