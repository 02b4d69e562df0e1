"""Interactive use through the bastion: pty shells, window changes in the cast, signals, exit signals."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import pty
import signal
import struct
import subprocess
import termios

import asyncssh

from tests.harness import Bastion, Sshd, asciinema_cat, wait_for


def _cast_events(bastion: Bastion, marker: str) -> list[list[object]]:
    for cast in reversed(bastion.casts()):
        lines = cast.read_text().splitlines()
        if marker in lines[0]:
            return [json.loads(line) for line in lines[1:]]
    return []


def test_tty_shell_driven_with_input_shows_output(bastion: Bastion) -> None:
    agent = bastion.agent("agent-shell", ["tester"])
    result = bastion.ssh(agent, "web-1", None, "-tt", input=b"echo shell-$((6*7))\nexit 0\n")
    assert result.returncode == 0, result.stderr
    assert b"shell-42" in result.stdout
    cast = bastion.casts()[-1]
    header = json.loads(cast.read_text().splitlines()[0])
    assert header["title"] == "agent-shell@web-1: shell"
    assert header["env"]["TERM"]
    text = asciinema_cat(cast)
    assert "shell-42" in text
    events = [json.loads(line) for line in cast.read_text().splitlines()[1:]]
    assert any(e[1] == "i" and "echo shell" in e[2] for e in events)


def test_exec_with_pty_gets_a_terminal(bastion: Bastion) -> None:
    agent = bastion.agent("agent-ptyexec", ["tester"])
    result = bastion.ssh(agent, "web-1", "tty -s && echo has-tty", "-tt")
    assert result.returncode == 0
    assert b"has-tty" in result.stdout


def test_window_change_is_forwarded_and_lands_in_the_cast(bastion: Bastion) -> None:
    agent = bastion.agent("agent-resize", ["tester"])
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    proc = subprocess.Popen([*bastion.ssh_args(agent, "web-1", "-tt"), "read go; stty size"],
                            stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    os.close(slave)
    try:
        wait_for(lambda: any("agent-resize" in c.read_text().splitlines()[0] for c in bastion.casts()),
                  "the session to start")
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))

        def resized() -> bool:
            # ssh acts on SIGWINCH only once its channel is open, so a signal sent earlier is lost: send again.
            if any(e[1] == "r" for e in _cast_events(bastion, "agent-resize")):
                return True
            proc.send_signal(signal.SIGWINCH)
            return False

        wait_for(resized, "the resize event")
        os.write(master, b"\n")
        out, err = proc.communicate(timeout=60)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    assert b"40 120" in out, (out, err)
    resizes = {e[2] for e in _cast_events(bastion, "agent-resize") if e[1] == "r"}
    assert resizes == {"120x40"}


async def test_exit_signal_comes_back(bastion: Bastion) -> None:
    """OpenSSH's ssh exits 255 with or without an exit signal, so asyncssh reads the signal itself."""
    agent = bastion.agent("agent-sig", ["tester"])
    key, cert = asyncssh.read_private_key(str(agent.key)), asyncssh.read_certificate(str(agent.cert))
    async with asyncssh.connect("127.0.0.1", bastion.port, username="web-1", client_keys=[(key, cert)],
                                known_hosts=str(bastion.root / "known_hosts"), agent_path=None,
                                config=None) as conn:
        completed = await conn.run("kill -KILL $$", encoding=None)
    assert completed.exit_signal is not None and completed.exit_signal[0] == "KILL"
    assert completed.exit_status == -1


async def test_signal_request_reaches_the_target(bastion: Bastion, sshd: Sshd) -> None:
    """asyncssh as a second real SSH client, since OpenSSH's ssh cannot send signal requests.

    sshd acts on a signal request only for a non-root login; for root (as in CI) it logs that it refused
    it. Either way the request must have crossed the bastion and reached the real sshd.
    """
    agent = bastion.agent("agent-signal", ["tester"])
    key = asyncssh.read_private_key(str(agent.key))
    cert = asyncssh.read_certificate(str(agent.cert))
    log = sshd.root / "sshd.log"
    before = log.read_text(errors="replace").count("session_signal_req")
    async with asyncssh.connect("127.0.0.1", bastion.port, username="web-1", client_keys=[(key, cert)],
                                known_hosts=str(bastion.root / "known_hosts"), agent_path=None,
                                config=None) as conn:
        process = await conn.create_process("echo started; exec sleep 60", encoding=None)
        assert await process.stdout.readline() == b"started\n"
        process.send_signal("TERM")
        deadline = asyncio.get_running_loop().time() + 30
        while process.exit_signal is None and log.read_text(errors="replace").count("session_signal_req") == before:
            assert asyncio.get_running_loop().time() < deadline, "the signal never reached sshd"
            await asyncio.sleep(0.05)
        if process.exit_signal is not None:
            assert process.exit_signal[0] == "TERM"
        process.close()
