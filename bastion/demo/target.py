"""The demo target: a small SSH server inside the `bastion demo` process, standing in for a real server's sshd.

It accepts one key (the credential the bastion holds) for any login that has a home under its root, and runs
what it is sent the way sshd does: the exec command through `/bin/sh -c` (the bastion sends
`exec env -i … bash --noprofile --norc -c '<text>'`), with HOME and the working directory in that login's home
under the demo directory. Without a pty the command gets pipes; with one (`ssh -t`, or a shell request) it gets a
pseudo-terminal, and a shell request starts `bash --noprofile --norc -i`. Signals and window changes are passed on.
It is not a sandbox in the security sense: the commands run as the user running the demo.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import pty
import shutil
import signal
import struct
import termios
from collections.abc import Callable
from pathlib import Path

import asyncssh

BANNER = "bastion_demo_target"
READ_CHUNK = 65536


class DemoTarget:
    """An asyncssh server on 127.0.0.1 whose logins are the directories under `root / "home"`."""

    def __init__(self, root: Path, authorized_key: str) -> None:
        self.root = root
        self.host_key = asyncssh.generate_private_key("ssh-ed25519", comment="bastion-demo-target")
        self._authorized = asyncssh.import_authorized_keys(authorized_key + "\n")
        self._acceptor: asyncssh.SSHAcceptor | None = None
        self.port = 0

    @property
    def host_public_key(self) -> str:
        return " ".join(self.host_key.export_public_key("openssh").decode().split()[:2])

    def home(self, login: str) -> Path:
        return self.root / "home" / login

    async def start(self) -> int:
        self._acceptor = await asyncssh.create_server(
            asyncssh.SSHServer, "127.0.0.1", 0,
            server_host_keys=[self.host_key],
            authorized_client_keys=self._authorized,
            process_factory=self._session,
            encoding=None,
            allow_pty=True,
            line_editor=False,
            agent_forwarding=False,
            x11_forwarding=False,
            server_version=BANNER,
        )
        self.port = self._acceptor.sockets[0].getsockname()[1]
        return self.port

    def close(self) -> None:
        if self._acceptor is not None:
            self._acceptor.close()

    async def _session(self, process: asyncssh.SSHServerProcess[bytes]) -> None:
        login = process.get_extra_info("username") or ""
        home = self.home(login)
        if process.subsystem is not None or not login or not home.is_dir():
            process.stderr.write(f"{BANNER}: no such login or subsystem here\n".encode())
            process.exit(1)
            return
        env = {"HOME": str(home), "USER": login, "LOGNAME": login, "SHELL": "/bin/sh",
               "PATH": "/usr/local/bin:/usr/bin:/bin"}
        command = process.command
        try:
            if process.get_terminal_type():
                status = await _run_pty(process, command, home, env)
            else:
                status = await _run_pipes(process, command or "exec bash --noprofile --norc -i", home, env)
        except OSError as exc:
            process.stderr.write(f"{BANNER}: cannot run the command: {exc.strerror}\n".encode())
            status = 1
        if status < 0:
            process.exit_with_signal(signal.Signals(-status).name.removeprefix("SIG"))
        else:
            process.exit(status)


async def _run_pipes(process: asyncssh.SSHServerProcess[bytes], command: str, home: Path,
                     env: dict[str, str]) -> int:
    proc = await asyncio.create_subprocess_exec(
        "/bin/sh", "-c", command, cwd=home, env=env, start_new_session=True,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    writer = proc.stdin

    def deliver(data: bytes) -> None:
        if data:
            writer.write(data)
        else:
            writer.close()

    feeding = asyncio.ensure_future(_feed(process, proc.pid, deliver, None))
    await asyncio.gather(_copy(proc.stdout, process.stdout), _copy(proc.stderr, process.stderr))
    status = await proc.wait()
    feeding.cancel()
    return status


async def _run_pty(process: asyncssh.SSHServerProcess[bytes], command: str | None, home: Path,
                   env: dict[str, str]) -> int:
    master, slave = pty.openpty()
    _resize(master, process.get_terminal_size())
    argv = ["/bin/sh", "-c", command] if command else ["bash", "--noprofile", "--norc", "-i"]
    setsid = shutil.which("setsid")
    if setsid:  # a session of its own with the pty as controlling terminal, so ^C and job control work
        argv = [setsid, "--ctty", "--wait", *argv]
    term_env = {**env, "TERM": process.get_terminal_type() or "xterm", "PS1": r"demo-target:\w\$ "}
    try:
        proc = await asyncio.create_subprocess_exec(*argv, cwd=home, env=term_env, stdin=slave, stdout=slave,
                                                    stderr=slave)
    finally:
        os.close(slave)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader),
                                                os.fdopen(os.dup(master), "rb", buffering=0))

    def deliver(data: bytes) -> None:
        if data:
            os.write(master, data)

    feeding = asyncio.ensure_future(_feed(process, proc.pid, deliver, master))
    await _copy(reader, process.stdout)
    status = await proc.wait()
    feeding.cancel()
    transport.close()
    os.close(master)
    return status


async def _feed(process: asyncssh.SSHServerProcess[bytes], pid: int, deliver: Callable[[bytes], None],
                tty: int | None) -> None:
    """The client's input to the command (b"" at its end); signals to its process group, window changes to its tty."""
    while True:
        try:
            data = await process.stdin.read(READ_CHUNK)
        except asyncssh.TerminalSizeChanged as change:
            if tty is not None:
                _resize(tty, (change.width, change.height, change.pixwidth, change.pixheight))
            continue
        except asyncssh.SignalReceived as received:
            with contextlib.suppress(KeyError, ProcessLookupError, PermissionError):
                os.killpg(pid, signal.Signals["SIG" + received.signal])
            continue
        except asyncssh.BreakReceived:
            continue
        try:
            deliver(data)
        except OSError:
            return
        if not data:
            return


async def _copy(source: asyncio.StreamReader, sink: asyncssh.SSHWriter[bytes]) -> None:
    while True:
        try:
            data = await source.read(READ_CHUNK)
        except OSError:  # EIO on the pty once every process holding the terminal is gone
            return
        if not data:
            return
        sink.write(data)
        with contextlib.suppress(asyncssh.Error, OSError):
            await sink.drain()


def _resize(tty: int, size: tuple[int, int, int, int]) -> None:
    width, height, pixwidth, pixheight = size
    if width and height:
        fcntl.ioctl(tty, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, pixwidth, pixheight))
