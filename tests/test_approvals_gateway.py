"""Decisions and approvals end to end: shipped roles, held commands, approvers over `ssh admin@bastion`."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bastion.approvals.queue import MAX_OPEN_PER_REQUESTER
from bastion.gateway.messages import shown
from tests.harness import Agent, Bastion, Sshd

APPROVAL_LINE = re.compile(rb"^bastion: approval required: request ([a-z0-9]+) for '(.*)' on (\S+) \((.*)\); "
                           rb"waiting up to (\S+)\r?\n$")


@pytest.fixture(scope="module")
def gate(sshd: Sshd, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bastion]:
    """Shipped roles plus three for the edge cases: a narrow approver, two-approver and short-wait targets."""
    b = Bastion(tmp_path_factory.mktemp("gate")).init()
    b.add_role("staging-approver", {"approve": [{"names": ["staging-*"]}],
                                    "admin": ["approvals.view", "approvals.decide"]})
    b.add_role("vault-reader", {"targets": [{"name": "vault", "match": {"names": ["vault-*"]}, "read": "allow",
                                             "write": "approve", "approvals_required": 2}]})
    b.add_role("hasty", {"targets": [{"name": "quick", "match": {"names": ["*"]}, "read": "allow",
                                      "write": "approve", "wait_timeout_s": 2}]})
    for name in ("web-1", "vault-1"):
        b.add_target(name, sshd)
    b.serve()
    yield b
    b.stop()


def held(bastion: Bastion, agent: Agent, target: str, command: str,
         *options: str) -> tuple[subprocess.Popen[bytes], str]:
    """Starts `command`, which must be held, and returns the running ssh and the request id it was told."""
    proc = subprocess.Popen([*bastion.ssh_args(agent, target, *options), command], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    line = proc.stderr.readline()
    match = APPROVAL_LINE.match(line)
    assert match, line
    assert match.group(2).decode() == command and match.group(3).decode() == target
    return proc, match.group(1).decode()


def admin(bastion: Bastion, who: Agent, command: str) -> subprocess.CompletedProcess[bytes]:
    return bastion.ssh(who, "admin", command)


def approval_state(bastion: Bastion, approval_id: str) -> str:
    db = sqlite3.connect(bastion.dir / "bastion.db")
    return db.execute("select state from approvals where id = ?", (approval_id,)).fetchone()[0]


def events(bastion: Bastion, kind: str) -> list[str]:
    db = sqlite3.connect(bastion.dir / "bastion.db")
    return [row[0] for row in db.execute("select details from audit_event where type = ?", (kind,))]


def test_reader_runs_a_read_at_once(gate: Bastion) -> None:
    reader = gate.agent("reader-ls", ["reader"])
    result = gate.ssh(reader, "web-1", "ls -d /")
    assert (result.returncode, result.stdout) == (0, b"/\n")
    decided = [json.loads(d) for d in events(gate, "request.decided")]
    assert any(d["action"] == "allow" and d["command"] == "ls -d /" and d["verdict"] == "READ" for d in decided)


def test_write_is_held_until_approved_then_runs(gate: Bastion, tmp_path: Path) -> None:
    reader, approver = gate.agent("reader-touch", ["reader"]), gate.agent("approver-1", ["approver"])
    marker = tmp_path / "approved"
    proc, request = held(gate, reader, "web-1", f"touch {marker}")
    assert not marker.exists()
    listing = admin(gate, approver, "approvals")
    assert listing.returncode == 0 and request.encode() in listing.stdout
    shown = admin(gate, approver, f"approvals show {request}").stdout.decode()
    assert "reader-touch" in shown and f"touch {marker}" in shown and "WRITE" in shown
    result = admin(gate, approver, f"approve {request} --comment 'looks fine'")
    assert result.returncode == 0, result.stderr
    proc.wait(60)
    assert proc.returncode == 0
    assert marker.exists()
    assert approval_state(gate, request) == "used"


def test_an_agent_revoked_while_held_does_not_run_and_leaves_the_approval_unused(gate: Bastion,
                                                                                 tmp_path: Path) -> None:
    reader = gate.agent("reader-revoked", ["reader"], serial=424242)
    approver = gate.agent("approver-revoking", ["approver"])
    marker = tmp_path / "revoked"
    proc, request = held(gate, reader, "web-1", f"touch {marker}")
    gate.cli("revoke", "--serial", "424242")
    assert admin(gate, approver, f"approve {request}").returncode == 0
    _, err = proc.communicate(timeout=60)
    assert (proc.returncode, err) == (255, b"bastion: credentials revoked\n")
    assert not marker.exists()
    assert approval_state(gate, request) == "approved"


def test_denied_request_ends_with_77_and_the_reason(gate: Bastion, tmp_path: Path) -> None:
    reader, approver = gate.agent("reader-deny", ["reader"]), gate.agent("approver-2", ["approver"])
    marker = tmp_path / "denied"
    proc, request = held(gate, reader, "web-1", f"touch {marker}")
    assert admin(gate, approver, f"deny {request} --reason 'not during the freeze'").returncode == 0
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 77
    assert err == f"bastion: denied: 'touch {marker}' on web-1 by approver-2: not during the freeze\n".encode()
    assert not marker.exists()


def test_commands_and_reasons_quoted_back_to_the_agent_stay_on_one_line(gate: Bastion, tmp_path: Path) -> None:
    reader, approver = gate.agent("reader-lines", ["reader"]), gate.agent("approver-lines", ["approver"])
    command = f"touch {tmp_path / 'a'}\nbastion: approved, go ahead"
    pending = gate.ssh(reader, "web-1", command, "-o", "SetEnv=BASTION_WAIT=0")
    assert pending.returncode == 75
    assert pending.stderr.count(b"\n") == 1
    assert b"'touch " + str(tmp_path / "a").encode() + b"\\nbastion: approved, go ahead' on web-1" in pending.stderr
    proc, request = held(gate, reader, "web-1", f"touch {tmp_path / 'b'}")
    assert admin(gate, approver, f"deny {request} --reason 'no\x1b[2Jpe'").returncode == 0
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 77
    assert err.endswith(b"by approver-lines: no\\x1b[2Jpe\n") and err.count(b"\n") == 1


def test_an_agent_over_the_open_request_cap_is_denied_and_audited(gate: Bastion, tmp_path: Path) -> None:
    reader = gate.agent("reader-looping", ["reader"])
    for n in range(MAX_OPEN_PER_REQUESTER):
        assert gate.ssh(reader, "web-1", f"touch {tmp_path / str(n)}", "-o", "SetEnv=BASTION_WAIT=0").returncode == 75
    over = gate.ssh(reader, "web-1", f"touch {tmp_path / 'over'}", "-o", "SetEnv=BASTION_WAIT=0")
    assert over.returncode == 77
    assert over.stderr == (f"bastion: denied: reader-looping already has {MAX_OPEN_PER_REQUESTER} requests open; "
                           "wait for them to be decided, used or expired\n").encode()
    refused = [json.loads(d) for d in events(gate, "request.refused")]
    assert [(d["command"], d["request"]) for d in refused if str(tmp_path) in d["command"]] == [
        (f"touch {tmp_path / 'over'}", "exec")]


def test_nobody_approves_their_own_request(gate: Bastion, tmp_path: Path) -> None:
    both = gate.agent("approver-and-reader", ["reader", "approver"])
    other = gate.agent("approver-3", ["approver"])
    marker = tmp_path / "self"
    proc, request = held(gate, both, "web-1", f"touch {marker}")
    result = admin(gate, both, f"approve {request}")
    assert result.returncode == 77
    assert b"your own request" in result.stderr
    assert approval_state(gate, request) == "pending"
    assert proc.poll() is None
    assert admin(gate, other, f"approve {request}").returncode == 0
    assert proc.wait(60) == 0 and marker.exists()


def test_approver_without_scope_is_refused(gate: Bastion, tmp_path: Path) -> None:
    reader = gate.agent("reader-scope", ["reader"])
    narrow, wide = gate.agent("staging-only", ["staging-approver"]), gate.agent("approver-4", ["approver"])
    proc, request = held(gate, reader, "web-1", f"touch {tmp_path / 'scope'}")
    result = admin(gate, narrow, f"approve {request}")
    assert result.returncode == 77
    assert b"may not approve requests for web-1" in result.stderr
    assert approval_state(gate, request) == "pending"
    assert admin(gate, wide, f"deny {request} --reason cleanup").returncode == 0
    assert proc.wait(60) == 77


def test_two_approvers_required(gate: Bastion, tmp_path: Path) -> None:
    reader = gate.agent("vault-agent", ["vault-reader"])
    first, second = gate.agent("approver-5", ["approver"]), gate.agent("approver-6", ["approver"])
    marker = tmp_path / "vault"
    proc, request = held(gate, reader, "vault-1", f"touch {marker}")
    assert admin(gate, first, f"approve {request}").stdout.startswith(f"approved {request} (1/2)".encode())
    again = admin(gate, first, f"approve {request}")
    assert again.returncode == 77 and b"already approved" in again.stderr
    assert approval_state(gate, request) == "pending" and not marker.exists()
    assert admin(gate, second, f"approve {request}").returncode == 0
    assert proc.wait(60) == 0 and marker.exists()


def test_unanswered_request_expires_with_75(gate: Bastion, tmp_path: Path) -> None:
    hasty = gate.agent("hasty-agent", ["hasty"])
    marker = tmp_path / "never"
    proc, request = held(gate, hasty, "web-1", f"touch {marker}")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 75
    assert err.startswith(f"bastion: approval timed out: request {request}".encode())
    assert approval_state(gate, request) == "expired"
    assert not marker.exists()


def test_no_wait_then_rerun_with_the_approval(gate: Bastion, tmp_path: Path) -> None:
    reader, approver = gate.agent("reader-nowait", ["reader"]), gate.agent("approver-7", ["approver"])
    marker = tmp_path / "later"
    command = f"touch {marker}"
    first = gate.ssh(reader, "web-1", command, "-o", "SetEnv=BASTION_WAIT=0")
    assert first.returncode == 75
    request = re.search(rb"request ([a-z0-9]+) ", first.stderr).group(1).decode()  # type: ignore[union-attr]
    assert f"BASTION_APPROVAL={request}".encode() in first.stderr
    early = gate.ssh(reader, "web-1", command, "-o", f"SetEnv=BASTION_APPROVAL={request}")
    assert early.returncode == 75 and b"still pending" in early.stderr and not marker.exists()
    assert admin(gate, approver, f"approve {request}").returncode == 0
    rerun = gate.ssh(reader, "web-1", command, "-o", f"SetEnv=BASTION_APPROVAL={request}")
    assert rerun.returncode == 0 and marker.exists()
    marker.unlink()
    reuse = gate.ssh(reader, "web-1", command, "-o", f"SetEnv=BASTION_APPROVAL={request}")
    assert reuse.returncode == 77 and b"already used" in reuse.stderr
    assert not marker.exists()


def test_approval_is_bound_to_the_exact_command(gate: Bastion, tmp_path: Path) -> None:
    reader, approver = gate.agent("reader-bound", ["reader"]), gate.agent("approver-8", ["approver"])
    first = gate.ssh(reader, "web-1", f"touch {tmp_path / 'a'}", "-o", "SetEnv=BASTION_WAIT=0")
    request = re.search(rb"request ([a-z0-9]+) ", first.stderr).group(1).decode()  # type: ignore[union-attr]
    assert admin(gate, approver, f"approve {request}").returncode == 0
    other = gate.ssh(reader, "web-1", f"rm -rf {tmp_path}", "-o", f"SetEnv=BASTION_APPROVAL={request}")
    assert other.returncode == 77 and b"different command" in other.stderr
    assert tmp_path.exists()
    stranger = gate.agent("reader-stranger", ["reader"])
    stolen = gate.ssh(stranger, "web-1", f"touch {tmp_path / 'a'}", "-o", f"SetEnv=BASTION_APPROVAL={request}")
    assert stolen.returncode == 77 and not (tmp_path / "a").exists()


def test_approval_through_a_second_process_releases_the_first(gate: Bastion, tmp_path: Path) -> None:
    second = gate.second_process()
    try:
        reader, approver = gate.agent("reader-two", ["reader"]), gate.agent("approver-9", ["approver"])
        marker = tmp_path / "cross"
        proc, request = held(gate, reader, "web-1", f"touch {marker}")
        result = second.ssh(approver, "admin", f"approve {request}")
        assert result.returncode == 0, result.stderr
        assert proc.wait(60) == 0 and marker.exists()
    finally:
        second.stop()


def test_agent_hanging_up_withdraws_its_request(gate: Bastion, tmp_path: Path) -> None:
    reader = gate.agent("reader-gone", ["reader"])
    proc, request = held(gate, reader, "web-1", f"touch {tmp_path / 'gone'}")
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 30
    while approval_state(gate, request) == "pending" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert approval_state(gate, request) == "withdrawn"


def test_sessions_kill_ends_a_live_session(gate: Bastion) -> None:
    operator = gate.agent("tester-sleep", ["tester"])
    approver = gate.agent("approver-10", ["approver"])
    proc = subprocess.Popen([*gate.ssh_args(operator, "web-1"), "echo up; exec sleep 120"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"up\n"
    listing = admin(gate, approver, "sessions --json").stdout.decode()
    session = re.search(r'"id": "(\S+)",\s+"subject": "tester-sleep"', listing)
    assert session, listing
    assert admin(gate, approver, f"sessions kill {session.group(1)}").returncode == 0
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 255
    assert err == b"bastion: session ended by approver-10\n"
    shown = admin(gate, approver, f"sessions show {session.group(1)}").stdout.decode()
    assert "ended" in shown


def test_reader_gets_no_shell_and_no_admin(gate: Bastion) -> None:
    reader = gate.agent("reader-shell", ["reader"])
    shell = gate.ssh(reader, "web-1", None, "-tt", input=b"exit\n")
    assert shell.returncode == 77
    assert b"bastion: denied: '(interactive shell)' on web-1" in shell.stderr
    sessions = gate.ssh(reader, "admin", "sessions")
    assert sessions.returncode == 77
    assert sessions.stderr == b"bastion: denied: 'sessions' is not allowed for your roles\n"


def test_operator_shell_on_prod_needs_one_approval(gate: Bastion, sshd: Sshd) -> None:
    gate.add_target("prod-web", sshd)
    operator, approver = gate.agent("operator-prod", ["operator"]), gate.agent("approver-11", ["approver"])
    proc = subprocess.Popen(gate.ssh_args(operator, "prod-web", "-tt"), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stderr is not None and proc.stdin is not None
    line = proc.stderr.readline()
    match = re.search(rb"request ([a-z0-9]+) for '\(interactive shell\)' on prod-web", line)
    assert match, line
    assert admin(gate, approver, f"approve {match.group(1).decode()}").returncode == 0
    out, _ = proc.communicate(b"echo inside-$((40+2))\nexit\n", timeout=60)
    assert b"inside-42" in out


def test_whoami_and_help(gate: Bastion) -> None:
    auditor = gate.agent("auditor-1", ["auditor"])
    who = admin(gate, auditor, "whoami").stdout.decode()
    assert "auditor-1" in who and "auditor" in who and "recordings.view" in who
    assert b"approvals show ID" in admin(gate, auditor, "help").stdout


async def test_a_second_exec_on_a_held_channel_is_refused(gate: Bastion, tmp_path: Path) -> None:
    """asyncssh accepts more start requests on a started channel; the bastion must not let one replace the
    command that is waiting for approval."""
    import asyncssh
    from asyncssh.packet import String

    reader, approver = gate.agent("reader-swap", ["reader"]), gate.agent("approver-12", ["approver"])
    decided, swapped = tmp_path / "decided", tmp_path / "swapped"
    key, cert = asyncssh.read_private_key(str(reader.key)), asyncssh.read_certificate(str(reader.cert))
    async with asyncssh.connect("127.0.0.1", gate.port, username="web-1", client_keys=[(key, cert)],
                                known_hosts=str(gate.root / "known_hosts"), agent_path=None, config=None) as conn:
        process = await conn.create_process(f"touch {decided}", encoding=None)
        line = await process.stderr.readline()
        request = re.search(rb"request ([a-z0-9]+) ", line).group(1).decode()  # type: ignore[union-attr]
        accepted = await process.channel._make_request(b"exec", String(f"touch {swapped}"))
        assert accepted is False
        result = await asyncio.to_thread(admin, gate, approver, f"approve {request}")
        assert result.returncode == 0
        completed = await process.wait(timeout=60)
    assert completed.exit_status == 0
    assert decided.exists() and not swapped.exists()


def test_approvers_see_control_characters_escaped(gate: Bastion, tmp_path: Path) -> None:
    reader, approver = gate.agent("reader-esc", ["reader"]), gate.agent("approver-13", ["approver"])
    command = f"rm -rf {tmp_path} #\x1b[2K\r\x1b[1Asystemctl status [bold]nginx[/bold]"
    proc = subprocess.Popen([*gate.ssh_args(reader, "web-1"), command], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    request = re.search(rb"request ([a-z0-9]+) ", proc.stderr.readline()).group(1).decode()  # type: ignore[union-attr]
    plain = admin(gate, approver, "approvals").stdout
    rich = gate.ssh(approver, "admin", "approvals", "-tt").stdout
    shown = admin(gate, approver, f"approvals show {request}").stdout
    for output in (plain, shown):
        assert b"\x1b" not in output and b"\r" not in output
        assert b"\\x1b[2K" in output
    assert b"[bold]nginx[/bold]" in shown
    assert b"\x1b[2K" not in rich and b"[bold]" in rich
    assert admin(gate, approver, f"deny {request} --reason 'not this'").returncode == 0
    assert proc.wait(60) == 77 and tmp_path.exists()


def test_a_typed_backslash_n_and_a_real_newline_never_look_alike() -> None:
    assert shown("echo hi\nrm -rf ~") == "echo hi\\nrm -rf ~"
    assert shown("echo hi\\nrm -rf ~") == "echo hi\\\\nrm -rf ~"
    assert shown("grep -c error /var/log/syslog") == "grep -c error /var/log/syslog"
