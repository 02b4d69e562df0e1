"""The spine end to end: real OpenSSH ssh → bastion serve → real OpenSSH sshd, recorded as asciicast."""

from __future__ import annotations

import json
import random
import sqlite3
import subprocess
import threading

from tests.harness import Bastion, asciinema_cat


def test_exec_returns_exact_output_and_status(bastion: Bastion) -> None:
    agent = bastion.agent("agent-7", ["tester"])
    result = bastion.ssh(agent, "web-1", "echo hello; echo oops >&2; exit 3")
    assert result.stdout == b"hello\n"
    assert result.stderr == b"oops\n"
    assert result.returncode == 3


def test_stdin_passes_through_byte_for_byte(bastion: Bastion) -> None:
    agent = bastion.agent("agent-stdin", ["tester"])
    # Fixed bytes: output that happens to look like a secret is masked, so fresh random data could fail by chance.
    payload = random.Random(20261124).randbytes(5 * 1024 * 1024)
    result = bastion.ssh(agent, "web-1", "cat", input=payload)
    assert result.returncode == 0, result.stderr
    assert result.stdout == payload


def test_a_prompt_on_stderr_reaches_the_agent_while_stdout_has_whole_lines(bastion: Bastion) -> None:
    """Each stream's masker flushes its own held partial line: whole lines on stdout do not hold a prompt back."""
    agent = bastion.agent("agent-prompt", ["tester"])
    prompt = b"Continue? [y/N] "
    command = f"printf '{prompt.decode()}' >&2; echo working; read answer; echo \"got $answer\""
    proc = subprocess.Popen([*bastion.ssh_args(agent, "web-1"), command], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None and proc.stderr is not None
    seen: list[bytes] = []
    reader = threading.Thread(target=lambda: seen.append(proc.stderr.read(len(prompt))))  # type: ignore[union-attr]
    reader.start()
    reader.join(60)
    if not seen:
        proc.kill()
    assert seen == [prompt]
    out, _ = proc.communicate(b"y\n", timeout=60)
    assert out == b"working\ngot y\n"
    assert proc.returncode == 0


def test_every_session_leaves_a_readable_cast_with_its_output(bastion: Bastion) -> None:
    agent = bastion.agent("agent-cast", ["tester"])
    result = bastion.ssh(agent, "web-1", "echo recorded-line-42")
    assert result.returncode == 0
    cast = bastion.casts()[-1]
    header = json.loads(cast.read_text().splitlines()[0])
    assert header["version"] == 2
    assert (header["width"], header["height"]) == (80, 24)
    assert header["title"] == "agent-cast@web-1: echo recorded-line-42"
    assert "recorded-line-42" in asciinema_cat(cast)


def test_session_row_holds_recording_digest(bastion: Bastion) -> None:
    agent = bastion.agent("agent-row", ["tester"])
    bastion.ssh(agent, "web-1", "exit 4")
    db = sqlite3.connect(bastion.dir / "bastion.db")
    row = db.execute("select subject, target, kind, command, exit_status, recording, recording_sha256, ended "
                     "from sessions where subject = 'agent-row'").fetchone()
    assert row[:5] == ("agent-row", "web-1", "exec", "exit 4", 4)
    import hashlib
    assert hashlib.sha256((bastion.dir / "recordings" / row[5]).read_bytes()).hexdigest() == row[6]
    assert row[7] is not None
