"""`bastion replay SESSION_ID`: play a session's recording here with asciinema (or print it with `--cat`)."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from bastion.cli.common import open_config
from bastion.errors import BastionError, NotFound
from bastion.store import sessions


def register(verbs: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = verbs.add_parser("replay", parents=[common], help="play a session's recording with asciinema")
    parser.add_argument("session_id", metavar="SESSION_ID")
    parser.add_argument("--cat", action="store_true", help="print the output at once (asciinema cat)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = open_config(args)
    session = sessions.get(args.session_id)
    root = config.path(config.recordings_dir).resolve()
    path = (root / session.recording).resolve()
    if not path.is_relative_to(root):
        raise BastionError(f"session {session.id}: its recording path leaves the recordings directory")
    if not path.is_file():
        raise NotFound(f"session {session.id}: recording {session.recording} is missing")
    command = [asciinema(), "cat" if args.cat else "play", str(path)]
    sys.stdout.flush()
    return subprocess.run(command, check=False).returncode


def asciinema() -> str:
    """asciinema on PATH, else the one installed beside this Python (a virtualenv's bin)."""
    found = shutil.which("asciinema") or shutil.which("asciinema", path=str(Path(sys.executable).parent))
    if found is None:
        raise BastionError("asciinema is not installed; install it (pip install asciinema) to replay recordings")
    return found
