"""`bastion policy check|explain|classify`: no server, no database, one fact per line."""

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bastion.cli.main import main

POLICIES = Path(__file__).resolve().parent.parent / "policies"


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A `bastion init` directory whose database has been removed: the policy verbs must not need it."""
    root = tmp_path_factory.mktemp("policy-cli") / "b"
    assert main(["init", "--dir", str(root)]) == 0
    (root / "bastion.db").unlink()
    return root


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_check_prints_one_line_per_file(setup: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "policy", "check", "--config", str(setup / "bastion.yaml"))
    lines = out.splitlines()
    assert status == 0 and len(lines) == 3
    assert lines[0].endswith("policies/policy.yaml: ok (4 roles: approver, auditor, operator, reader)")
    assert "policies/commands.yaml: ok (" in lines[1]
    assert "policies/masking.yaml: ok (" in lines[2]
    assert not (setup / "bastion.db").exists()


@pytest.mark.parametrize(("broken", "text", "expected"), [
    ("policy.yaml", "roles:\n  r:\n    admin: [root]\n", "policy.yaml: roles.r.admin[0]: Input should be"),
    ("commands.yaml", "read: 7\n", "commands.yaml: read:"),
    ("masking.yaml", "detectors: [nope]\n", "masking.yaml: detectors: unknown detector 'nope'"),
])
def test_check_stops_at_the_first_error(tmp_path: Path, capsys: pytest.CaptureFixture[str], broken: str, text: str,
                                        expected: str) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(POLICIES, policies)
    (policies / broken).write_text(text)
    status, out, err = run(capsys, "policy", "check", "--policies", str(policies))
    assert status == 1
    assert err.startswith("bastion: ") and expected in err and err.count("\n") == 1
    assert all(line.endswith(")") for line in out.splitlines())


def test_explain_a_held_write(setup: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "policy", "explain", "--config", str(setup / "bastion.yaml"), "--role", "reader",
                         "--role", "ghost", "--target", "prod-db", "--label", "env=prod", "--", "touch", "/tmp/x")
    assert status == 0
    lines = out.splitlines()
    assert lines[:7] == [
        "roles: ghost, reader",
        "role ghost: not in policy.yaml (ignored)",
        "target: prod-db",
        "labels: env=prod",
        "command: touch /tmp/x",
        "verdict: WRITE",
        "verdict reason: WRITE: 'touch' creates or changes files (policies/commands.yaml: touch)",
    ]
    assert lines[7:13] == [
        "exec: approve",
        "exec rule: reader on *: write → approve",
        "exec reason: WRITE needs approval (rule reader/all-targets)",
        "exec approvals required: 1",
        "exec wait timeout: 300s",
        "exec approval lifetime: 900s",
    ]
    assert "shell: deny (reader on *: shell → deny)" in lines
    assert "port forwarding: deny (reader on *: port_forwarding → deny)" in lines
    assert "env: TERM, LANG, LC_*" in lines
    assert "may approve on prod-db: no" in lines
    assert "admin: none" in lines
    assert "masking: on" in lines
    assert not (setup / "bastion.db").exists()


def test_explain_unknown_command_and_approver(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "policy", "explain", "--policies", str(POLICIES), "--role", "approver",
                         "--target", "web-1", "--", "./deploy.sh")
    lines = out.splitlines()
    assert status == 0
    assert "verdict: UNKNOWN" in lines
    assert "exec: deny" in lines and "exec rule: default: deny" in lines
    assert "exec reason: UNKNOWN is treated as WRITE; WRITE is denied: no rule of role approver matches target " \
           "web-1 (default: deny)" in lines
    assert "may approve on web-1: yes" in lines
    assert "admin: approvals.decide, approvals.view, sessions.kill, sessions.view" in lines


def test_explain_without_a_command_shows_the_other_kinds(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "policy", "explain", "--policies", str(POLICIES), "--role", "operator",
                         "--target", "staging-1")
    assert status == 0
    assert not any(line.startswith(("command:", "exec")) for line in out.splitlines())
    assert "shell: allow (operator on staging-*: shell → allow)" in out.splitlines()


def test_explain_rejects_a_bad_label(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "policy", "explain", "--policies", str(POLICIES), "--role", "reader",
                         "--target", "web-1", "--label", "nolabel", "--", "ls")
    assert status == 1 and err == "bastion: label 'nolabel' must be k=v\n"


def test_classify_jsonl(setup: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO('"df -h"\n"rm -rf /"\n\n42\n'))
    status, out, _ = run(capsys, "policy", "classify", "--jsonl", "--config", str(setup / "bastion.yaml"))
    rows = [json.loads(line) for line in out.splitlines()]
    assert status == 0
    assert [(r["command"], r["verdict"]) for r in rows] == [("df -h", "READ"), ("rm -rf /", "WRITE"), ("42", "UNKNOWN")]
    assert all(set(r) == {"command", "verdict", "reasons"} and r["reasons"] for r in rows)
    assert not (setup / "bastion.db").exists()


def test_the_installed_entry_point_explains(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "bastion", "policy", "explain", "--policies", str(POLICIES),
                           "--role", "operator", "--target", "prod-1", "--", "ls -l | wc -l"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "exec: allow" in done.stdout.splitlines()
    assert "shell: approve (operator on prod-*: shell → approve)" in done.stdout.splitlines()
