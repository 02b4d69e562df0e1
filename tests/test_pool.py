"""Pooled upstream connections, counted on the target's side: sshd logs one `Accepted publickey` per connection."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.harness import SSHD, Agent, Bastion, Sshd, keygen, read_public, wait_port


class VerboseSshd(Sshd):
    """The harness's sshd at LogLevel VERBOSE, which can also be killed and restarted with all its connections."""

    max_sessions: int = 100

    def start(self) -> VerboseSshd:
        super().start()
        self.stop()
        config = self.root / "sshd_config"
        config.write_text(config.read_text().replace("LogLevel ERROR", "LogLevel VERBOSE"))
        self._run()
        return self

    def _run(self) -> None:
        with open(self.root / "sshd.log", "ab") as log:
            self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.root / "sshd_config")], stderr=log)
        wait_port(self.port)

    def restart(self) -> None:
        """Kills the listener and every connection it serves, then listens again with the same keys."""
        assert self.proc is not None
        config = self.root / "sshd_config"
        lines = [line for line in config.read_text().splitlines() if not line.startswith("MaxSessions ")]
        config.write_text("\n".join([*lines, f"MaxSessions {self.max_sessions}"]) + "\n")
        for pid in _descendants(self.proc.pid):
            os.kill(pid, signal.SIGKILL)
        self.proc.kill()
        self.proc.wait()
        self._run()

    def logins(self) -> int:
        return (self.root / "sshd.log").read_text(errors="replace").count("Accepted publickey")


def _descendants(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            found += [int(child), *_descendants(int(child))]
    return found


@pytest.fixture
def target_sshd(openssh: None, tmp_path: Path) -> Iterator[VerboseSshd]:
    server = VerboseSshd(tmp_path / "sshd").start()
    yield server
    if server.proc is not None:
        for pid in _descendants(server.proc.pid):
            os.kill(pid, signal.SIGKILL)
    server.stop()


def _bastion(root: Path, sshd: Sshd, **upstream: object) -> Iterator[Bastion]:
    b = Bastion(root).init()
    config = yaml.safe_load(b.config.read_text())
    config["upstream"] = {**config.get("upstream", {}), **upstream}
    b.config.write_text(yaml.safe_dump(config, sort_keys=False))
    b.add_target("web-1", sshd)
    b.serve()
    yield b
    b.stop()


@pytest.fixture
def pooled(target_sshd: VerboseSshd, tmp_path: Path) -> Iterator[Bastion]:
    yield from _bastion(tmp_path / "bastion", target_sshd, pool_max_channels=2)


def _run(bastion: Bastion, agent: Agent, command: str) -> bytes:
    result = bastion.ssh(agent, "web-1", command)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_sequential_sessions_share_one_upstream_connection(pooled: Bastion, target_sshd: VerboseSshd) -> None:
    first, second = pooled.agent("agent-a"), pooled.agent("agent-b")
    assert _run(pooled, first, "echo one") == b"one\n"
    assert _run(pooled, second, "echo two") == b"two\n"
    assert _run(pooled, first, "echo three") == b"three\n"
    assert target_sshd.logins() == 1
    assert pooled.log().count("upstream connection 1 to web-1 opened from 127.0.0.1:") == 1
    assert len(pooled.casts()) == 3


def test_more_sessions_than_the_cap_open_another_connection(pooled: Bastion, target_sshd: VerboseSshd) -> None:
    agent = pooled.agent("agent-many")
    procs = [subprocess.Popen([*pooled.ssh_args(agent, "web-1"), "cat"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(3)]
    try:
        for n, proc in enumerate(procs):
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(f"session {n}\n".encode())
            proc.stdin.flush()
        # Each session echoes its own line only: sessions share a connection, never a channel.
        for n, proc in enumerate(procs):
            assert proc.stdout is not None
            assert proc.stdout.readline() == f"session {n}\n".encode()
        assert target_sshd.logins() == 2
    finally:
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.close()
    assert [proc.wait(60) for proc in procs] == [0, 0, 0]
    assert _run(pooled, agent, "echo after") == b"after\n"
    assert target_sshd.logins() == 2


def test_a_killed_upstream_connection_is_replaced(pooled: Bastion, target_sshd: VerboseSshd) -> None:
    agent = pooled.agent("agent-restart")
    assert _run(pooled, agent, "echo before") == b"before\n"
    target_sshd.restart()
    assert _run(pooled, agent, "echo after") == b"after\n"
    assert target_sshd.logins() == 2


def test_a_refused_channel_on_a_pooled_connection_is_retried_on_a_fresh_one(target_sshd: VerboseSshd,
                                                                           tmp_path: Path) -> None:
    """The target allows fewer sessions per connection than the pool's cap: the overflow still gets served."""
    target_sshd.max_sessions = 1
    target_sshd.restart()
    for bastion in _bastion(tmp_path / "small", target_sshd, pool_max_channels=2):
        agent = bastion.agent("agent-small")
        holder = subprocess.Popen([*bastion.ssh_args(agent, "web-1"), "cat"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert holder.stdin is not None and holder.stdout is not None
        holder.stdin.write(b"held\n")
        holder.stdin.flush()
        assert holder.stdout.readline() == b"held\n"
        assert _run(bastion, agent, "echo overflow") == b"overflow\n"
        holder.stdin.close()
        assert holder.wait(60) == 0
        assert target_sshd.logins() == 2
        assert "upstream connection 1 to web-1 retired: channel open failed" in bastion.log()


def test_a_re_registered_target_with_another_host_key_is_refused(pooled: Bastion, target_sshd: VerboseSshd,
                                                                 tmp_path: Path) -> None:
    agent = pooled.agent("agent-rekey")
    assert _run(pooled, agent, "echo pooled") == b"pooled\n"
    pooled.cli("target", "remove", "web-1")
    other = read_public(keygen(tmp_path / "other_host_key"))
    pooled.add_target("web-1", target_sshd, host_key=other)
    result = pooled.ssh(agent, "web-1", "echo never")
    assert result.returncode == 255
    assert b"does not match the pinned key" in result.stderr
    assert b"never" not in result.stdout
    assert target_sshd.logins() == 1


def test_an_idle_connection_is_closed(target_sshd: VerboseSshd, tmp_path: Path) -> None:
    for bastion in _bastion(tmp_path / "idle", target_sshd, pool_idle_s=0):
        agent = bastion.agent("agent-idle")
        assert _run(bastion, agent, "echo one") == b"one\n"
        assert _run(bastion, agent, "echo two") == b"two\n"
        assert target_sshd.logins() == 2
        assert "upstream connection 1 to web-1 closed: idle for 0 s" in bastion.log()
