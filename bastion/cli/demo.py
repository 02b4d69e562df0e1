"""`bastion demo [--script] [--dir DIR] [--port N]`: a whole bastion with a demo target in one process.

Makes a bastion with `bastion init`, starts the embedded demo target, registers it (pinned host key) as
demo-web and staging-demo, gives reader, operator, two approvers and an auditor keys and certificates, writes
DIR/ssh_config, and serves on 127.0.0.1 with the same code as `bastion serve`. Without --script it prints what
to try and runs until Ctrl-C or SIGTERM; with --script it runs the walkthrough itself and exits with its verdict.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import sys
import tempfile
from pathlib import Path

import asyncssh

from bastion.cli.serve import serve
from bastion.demo.setup import DemoDir
from bastion.demo.target import BANNER, DemoTarget
from bastion.demo.walkthrough import Walkthrough, guide
from bastion.errors import BastionError


def register(verbs: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = verbs.add_parser(
        "demo", help="run a complete demo: a bastion, a demo target, identities, and what to try",
        description="Runs a bastion and an embedded demo target in this process, with identities for two agents, "
                    "two approvers and an auditor, and prints the ssh commands to try. Ctrl-C stops it.")
    parser.add_argument("--dir", type=Path, metavar="DIR",
                        help="keep everything in DIR (new or empty); default: a temporary directory, removed at exit")
    parser.add_argument("--port", type=int, default=2222, help="bastion port on 127.0.0.1 (default 2222; 0: any free)")
    parser.add_argument("--script", action="store_true",
                        help="run the walkthrough with the ssh client and exit 0 only if every step behaved as shown")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.port < 65536:
        raise BastionError(f"--port {args.port} is not a port number")
    if args.script and shutil.which("ssh") is None:
        raise BastionError("--script drives the OpenSSH client, and ssh is not on PATH")
    root = args.dir or Path(tempfile.mkdtemp(prefix="bastion-demo-"))
    try:
        return asyncio.run(_demo(DemoDir(root), args.port, args.script))
    finally:
        if args.dir is None:
            shutil.rmtree(root, ignore_errors=True)
            print(f"bastion demo: removed {root} (use --dir to keep it)", file=sys.stderr)


async def _demo(demo: DemoDir, port: int, script: bool) -> int:
    config = demo.create()
    credential = asyncssh.generate_private_key("ssh-ed25519", comment="bastion-demo-credential")
    target = DemoTarget(demo.target_root, credential.export_public_key("openssh").decode().strip())
    target_port = await target.start()
    print(f"bastion demo: demo target {BANNER} listening on 127.0.0.1:{target_port} (embedded in this process), "
          f"host key {target.host_key.get_fingerprint()}", file=sys.stderr)
    demo.register_targets(config, target_port, target.host_public_key, credential)
    stop = asyncio.Event()
    verdict: list[int] = []

    async def walk() -> None:
        try:
            verdict.append(await Walkthrough(demo).run())
        finally:
            stop.set()

    tasks: set[asyncio.Task[None]] = set()

    def ready(bound: int) -> None:
        demo.write_ssh_config(bound)
        if script:
            tasks.add(asyncio.ensure_future(walk()))
        else:
            print(guide(demo, bound, target_port), flush=True)

    try:
        await serve(config, "127.0.0.1", port, stop=stop, ready=ready)
    finally:
        target.close()
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if script and not verdict:
        print("demo script: stopped before it finished", flush=True)
        return 1
    return verdict[0] if script else 0
