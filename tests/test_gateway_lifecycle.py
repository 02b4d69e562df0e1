"""Flow control, early readers, shutdown and crashes: the bastion neither hoards memory nor loses records."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import Bastion, Sshd, asciinema_cat, rss_kb, wait_for


@pytest.fixture
def own_bastion(sshd: Sshd, tmp_path: Path) -> Iterator[Bastion]:
    """A bastion of this test's own, for tests that stop or kill it."""
    b = Bastion(tmp_path / "own").init()
    b.add_target("web-1", sshd)
    yield b
    if b.proc is not None and b.proc.poll() is None:
        b.proc.kill()
        b.proc.wait()


def test_slow_reader_keeps_bastion_memory_bounded(bastion: Bastion) -> None:
    agent = bastion.agent("agent-slow", ["tester"])
    assert bastion.proc is not None
    total = 300 * 1024 * 1024
    proc = subprocess.Popen([*bastion.ssh_args(agent, "web-1"), f"head -c {total} /dev/zero"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    first = proc.stdout.read(1024 * 1024)
    baseline = rss_kb(bastion.proc.pid)
    # The reader stops; upstream could send 300 MB meanwhile. Sample while paused.
    peak = baseline
    for _ in range(30):
        time.sleep(0.1)
        peak = max(peak, rss_kb(bastion.proc.pid))
    received = len(first)
    while chunk := proc.stdout.read(1024 * 1024):
        received += len(chunk)
    assert proc.wait(120) == 0
    assert received == total
    assert peak - baseline < 64 * 1024, f"bastion grew {(peak - baseline) // 1024} MB while the reader paused"


def test_early_exit_of_the_reader_stops_the_command(bastion: Bastion) -> None:
    """`ssh bastion yes | head -1` must end: the agent's closed stdout reaches the target as eow."""
    agent = bastion.agent("agent-head", ["tester"])
    ssh = subprocess.Popen([*bastion.ssh_args(agent, "web-1"), "yes"], stdout=subprocess.PIPE,
                           stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
    head = subprocess.run(["head", "-1"], stdin=ssh.stdout, capture_output=True, timeout=60)
    assert ssh.stdout is not None
    ssh.stdout.close()
    ssh.wait(60)
    assert head.stdout == b"y\n"


def test_sigterm_lets_live_sessions_finish(own_bastion: Bastion) -> None:
    own_bastion.serve()
    agent = own_bastion.agent("agent-drain", ["tester"])
    proc = subprocess.Popen([*own_bastion.ssh_args(agent, "web-1"), "echo started; sleep 2; echo finished"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"started\n"
    assert own_bastion.stop(signal.SIGTERM) == 0
    rest, _ = proc.communicate(timeout=60)
    assert rest == b"finished\n"
    assert proc.returncode == 0
    row = sqlite3.connect(own_bastion.dir / "bastion.db").execute(
        "select exit_status, ended, recording_sha256 from sessions where subject = 'agent-drain'").fetchone()
    assert row[0] == 0 and row[1] is not None and row[2]


def test_sigterm_grace_ends_sessions_that_outlive_it(own_bastion: Bastion) -> None:
    config = own_bastion.config.read_text().replace("grace_period_s: 30", "grace_period_s: 0.5")
    own_bastion.config.write_text(config)
    own_bastion.serve()
    agent = own_bastion.agent("agent-cut", ["tester"])
    proc = subprocess.Popen([*own_bastion.ssh_args(agent, "web-1"), "echo started; exec sleep 120"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"started\n"
    assert own_bastion.stop(signal.SIGTERM) == 0
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 255
    assert err == b"bastion: the bastion is shutting down\n"
    row = sqlite3.connect(own_bastion.dir / "bastion.db").execute(
        "select ended, recording, recording_sha256 from sessions where subject = 'agent-cut'").fetchone()
    assert row[0] is not None and row[2]
    assert "shutting down" in asciinema_cat(own_bastion.dir / "recordings" / row[1])


def test_killed_bastion_leaves_a_readable_cast(own_bastion: Bastion) -> None:
    own_bastion.serve()
    agent = own_bastion.agent("agent-crash", ["tester"])
    proc = subprocess.Popen([*own_bastion.ssh_args(agent, "web-1"), "echo before-the-$((1+1))crash; exec sleep 120"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"before-the-2crash\n"

    def flushed() -> bool:
        casts = own_bastion.casts()
        return bool(casts) and "before-the-2crash" in casts[-1].read_text()

    wait_for(flushed, "the output to reach the cast file")
    own_bastion.stop(signal.SIGKILL)
    proc.wait(60)
    cast = own_bastion.casts()[-1]
    lines = cast.read_text().splitlines()
    assert all(json.loads(line) is not None for line in lines)
    assert "before-the-2crash" in asciinema_cat(cast)


def test_large_output_arrives_intact_and_recorded(bastion: Bastion) -> None:
    agent = bastion.agent("agent-big", ["tester"])
    result = bastion.ssh(agent, "web-1", "seq 1 200000")
    assert result.returncode == 0
    assert result.stdout == b"".join(f"{i}\n".encode() for i in range(1, 200001))
    assert "199999\n200000\n" in asciinema_cat(bastion.casts()[-1])


def test_non_utf8_output_reaches_the_agent_unchanged(bastion: Bastion) -> None:
    agent = bastion.agent("agent-bin", ["tester"])
    result = bastion.ssh(agent, "web-1", r"printf 'caf\xc3\xa9 \xff\xfe end\n'")
    assert result.stdout == b"caf\xc3\xa9 \xff\xfe end\n"
    text = asciinema_cat(bastion.casts()[-1])
    assert "café \ufffd\ufffd end" in text


def test_a_target_lost_mid_command_gives_the_agent_255_and_a_bastion_line(own_bastion: Bastion,
                                                                             tmp_path: Path) -> None:
    target = Sshd(tmp_path / "dying").start()
    own_bastion.add_target("dies-1", target)
    own_bastion.serve()
    agent = own_bastion.agent("agent-dies", ["tester"])
    command = subprocess.Popen([*own_bastion.ssh_args(agent, "dies-1"), "echo started; sleep 60"],
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert command.stdout is not None and command.stdout.readline() == b"started\n"
    assert target.proc is not None
    subprocess.run(["pkill", "-KILL", "-P", str(target.proc.pid)], check=False)
    target.proc.kill()
    out, err = command.communicate(timeout=60)
    assert (command.returncode, out) == (255, b"")
    assert err == b"bastion: the target ended the session without an exit status (connection lost?)\n"
    assert "the target ended the session" in asciinema_cat(own_bastion.casts()[-1])
