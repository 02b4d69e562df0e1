"""What the bastion refuses by default, asserted on both sides: the client's result and nothing upstream."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.harness import Bastion, Sshd, keygen, wait_for


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return keygen(tmp_path_factory.mktemp("ca") / "rogue_ca")


def _sessions(bastion: Bastion, subject: str) -> int:
    db = sqlite3.connect(bastion.dir / "bastion.db")
    return db.execute("select count(*) from sessions where subject = ?", (subject,)).fetchone()[0]


def test_certificate_from_untrusted_ca_is_refused(bastion: Bastion, other_ca: Path) -> None:
    agent = bastion.agent("rogue", ["tester"], ca=other_ca)
    result = bastion.ssh(agent, "web-1", "echo should-not-run")
    assert result.returncode == 255
    assert b"Permission denied" in result.stderr
    assert _sessions(bastion, "rogue") == 0


def test_expired_certificate_is_refused(bastion: Bastion) -> None:
    agent = bastion.agent("stale", ["tester"], validity="20200101:20200102")
    result = bastion.ssh(agent, "web-1", "echo should-not-run")
    assert result.returncode == 255
    assert b"Permission denied" in result.stderr
    assert _sessions(bastion, "stale") == 0


def test_plain_key_is_refused(bastion: Bastion, tmp_path: Path) -> None:
    key = keygen(tmp_path / "plain")  # no plain-cert.pub beside it, so ssh offers the bare key
    result = subprocess.run([*bastion.ssh_args(None, "web-1", "-i", str(key)), "echo should-not-run"],
                            capture_output=True, timeout=60)
    assert result.returncode == 255
    assert b"Permission denied (publickey)" in result.stderr


def test_password_is_not_even_offered(bastion: Bastion) -> None:
    result = subprocess.run(
        [*bastion.ssh_args(None, "web-1", "-o", "PreferredAuthentications=password,keyboard-interactive",
                           "-o", "PubkeyAuthentication=no"), "true"],
        capture_output=True, timeout=60)
    assert result.returncode == 255
    assert b"Permission denied (publickey)" in result.stderr


def test_certificate_without_principals_is_refused(bastion: Bastion) -> None:
    agent = bastion.agent("nobody", ["tester"], principals=None)
    result = bastion.ssh(agent, "web-1", "echo should-not-run")
    assert result.returncode == 255
    assert _sessions(bastion, "nobody") == 0


def test_unknown_target_is_refused_without_listing_targets(bastion: Bastion) -> None:
    agent = bastion.agent("agent-lost", ["tester"])
    result = bastion.ssh(agent, "db-9", "echo should-not-run")
    assert result.returncode == 255
    assert result.stderr == b"bastion: unknown target 'db-9'\n"
    assert b"web-1" not in result.stderr


def test_changed_upstream_host_key_is_refused(bastion: Bastion, sshd: Sshd, tmp_path: Path) -> None:
    impostor = keygen(tmp_path / "impostor")
    bastion.add_target("web-moved", sshd, host_key=" ".join(Path(f"{impostor}.pub").read_text().split()[:2]))
    agent = bastion.agent("agent-pin", ["tester"])
    marker = tmp_path / "ran"
    result = bastion.ssh(agent, "web-moved", f"touch {marker}")
    assert result.returncode == 255
    assert result.stderr == (b"bastion: host key of target web-moved does not match the pinned key; "
                             b"refusing to connect\n")
    assert not marker.exists()


def test_jump_host_forwarding_is_refused(bastion: Bastion, sshd: Sshd) -> None:
    agent = bastion.agent("agent-w", ["tester"])
    result = subprocess.run(bastion.ssh_args(agent, "web-1", "-W", f"127.0.0.1:{sshd.port}"),
                            capture_output=True, timeout=60, input=b"")
    assert result.returncode == 255
    assert b"stdio forwarding failed" in result.stderr
    assert b"SSH-2.0-OpenSSH" not in result.stdout
    assert "refused port forwarding" in bastion.log()


def test_remote_forwarding_is_refused(bastion: Bastion) -> None:
    agent = bastion.agent("agent-r", ["tester"])
    result = bastion.ssh(agent, "web-1", "echo should-not-run", "-R", "127.0.0.1:0:127.0.0.1:22",
                         "-o", "ExitOnForwardFailure=yes")
    assert result.returncode == 255
    assert b"remote port forwarding failed" in result.stderr
    assert b"should-not-run" not in result.stdout


def test_agent_forwarding_is_refused(bastion: Bastion, tmp_path: Path) -> None:
    agent = bastion.agent("agent-fwd", ["tester"])
    sock = tmp_path / "agent.sock"
    ssh_agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    try:
        while not sock.exists():
            pass
        env = {**os.environ, "SSH_AUTH_SOCK": str(sock)}
        result = subprocess.run([*bastion.ssh_args(agent, "web-1", "-A"), "echo ${SSH_AUTH_SOCK:-no-agent}"],
                                capture_output=True, timeout=60, env=env, input=b"")
    finally:
        ssh_agent.terminate()
    assert result.returncode == 0
    assert result.stdout == b"no-agent\n"
    assert _refusals(bastion, "agent-fwd") == ["agent forwarding"]
    assert "refused agent forwarding for agent-fwd on web-1" in bastion.log()


def test_x11_forwarding_is_refused_and_audited(bastion: Bastion) -> None:
    agent = bastion.agent("agent-x11", ["tester"])
    result = subprocess.run([*bastion.ssh_args(agent, "web-1", "-X"), "echo ${DISPLAY:-no-display}"],
                            capture_output=True, timeout=60, env={**os.environ, "DISPLAY": ":0"}, input=b"")
    assert result.returncode == 0
    assert result.stdout == b"no-display\n"
    assert _refusals(bastion, "agent-x11") == ["X11 forwarding"]


def _refusals(bastion: Bastion, subject: str) -> list[str]:
    """The refusals audited for `subject`, once there are any: they are written in the background."""

    def read() -> list[str]:
        with sqlite3.connect(bastion.dir / "bastion.db") as db:
            rows = db.execute("SELECT json_extract(details, '$.request') FROM audit_event "
                              "WHERE type = 'request.refused' AND subject = ? ORDER BY seq", (subject,)).fetchall()
        return [row[0] for row in rows]

    wait_for(lambda: bool(read()), f"a refusal audited for {subject}", 30)
    return read()


def test_sftp_subsystem_is_refused(bastion: Bastion, tmp_path: Path) -> None:
    agent = bastion.agent("agent-sftp", ["tester"])
    args = bastion.ssh_args(agent, "web-1")
    batch = tmp_path / "batch"
    batch.write_text("ls /\n")
    result = subprocess.run(["sftp", "-b", str(batch), "-P", str(bastion.port),
                             *[a for a in args[1:-1] if a not in ("-p", str(bastion.port))], args[-1]],
                            capture_output=True, timeout=60)
    assert result.returncode != 0
    assert b"bastion: denied: 'sftp' on web-1 (sftp is denied" in result.stderr


def test_only_term_lang_and_lc_reach_the_target(bastion: Bastion) -> None:
    agent = bastion.agent("agent-env", ["tester"])
    result = bastion.ssh(agent, "web-1", 'echo "lang=$LANG lc=$LC_TIME foo=${FOO:-unset}"',
                         "-o", "SetEnv=LANG=C.UTF-8 LC_TIME=C FOO=bar")
    assert result.returncode == 0
    assert result.stdout == b"lang=C.UTF-8 lc=C foo=unset\n"
    assert "refused environment FOO" in bastion.log()


def test_stored_credential_is_not_in_the_database_in_plaintext(bastion: Bastion, sshd: Sshd) -> None:
    secret = (sshd.root / "client_key").read_bytes()
    body = b"".join(line for line in secret.splitlines() if not line.startswith(b"-----"))
    raw = b"".join(p.read_bytes() for p in bastion.dir.glob("bastion.db*"))
    assert body[:40] not in raw
    shown = bastion.cli("target", "show", "web-1").stdout
    assert "encrypted at rest" in shown
    assert body[:40].decode() not in shown


def test_password_credential_is_sealed_too(bastion: Bastion, sshd: Sshd) -> None:
    bastion.cli("target", "add", "web-pw", "--host", "127.0.0.1", "--port", str(sshd.port), "--user", "nobody",
                "--password-env", "TARGET_PW", "--host-key", sshd.host_key,
                env={"TARGET_PW": "correct-horse-battery-staple"})
    raw = b"".join(p.read_bytes() for p in bastion.dir.glob("bastion.db*"))
    assert b"correct-horse-battery-staple" not in raw
    listing = bastion.cli("target", "list").stdout
    assert "web-pw" in listing and "password" in listing
    assert "correct-horse" not in listing


def test_multibyte_locales_do_not_reach_the_target(bastion: Bastion) -> None:
    """In BIG5 or GBK a backslash byte can end a character, which would change how bash splits the command."""
    agent = bastion.agent("agent-big5", ["tester"])
    result = bastion.ssh(agent, "web-1", 'echo "all=${LC_ALL:-unset} lang=${LANG:-unset}"',
                         "-o", "SetEnv=LC_ALL=zh_TW.BIG5 LANG=en_US.UTF-8")
    assert result.returncode == 0
    assert result.stdout == b"all=unset lang=en_US.UTF-8\n"
    assert "refused environment LC_ALL (locale 'zh_TW.BIG5')" in bastion.log()
