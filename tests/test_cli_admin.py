"""Administrator and auditor paths through the command line and `ssh admin@bastion`."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from tests.harness import Bastion, Sshd, asciinema_cat


def test_init_creates_the_setup_with_private_keys_0600_and_refuses_to_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "setup"
    first = subprocess.run([sys.executable, "-m", "bastion", "init", "--dir", str(target)], capture_output=True)
    assert first.returncode == 0
    for name in ("host_key", "user_ca", "issuer.key", "audit.key", "secrets.key"):
        assert stat.S_IMODE(os.stat(target / name).st_mode) == 0o600, name
    for name in ("bastion.yaml", "user_ca.pub", "issuer.pub", "host_key.pub", "bastion.db"):
        assert (target / name).is_file(), name
    assert (target / "recordings").is_dir() and (target / "policies" / "policy.yaml").is_file()
    again = subprocess.run([sys.executable, "-m", "bastion", "init", "--dir", str(target)], capture_output=True)
    assert again.returncode == 1
    assert again.stderr.decode().startswith("bastion: ") and b"refusing to overwrite" in again.stderr


def test_invalid_config_is_one_line_naming_the_key(tmp_path: Path) -> None:
    b = Bastion(tmp_path).init()
    b.config.write_text(b.config.read_text().replace("grace_period_s: 30", "grace_period_s: soon"))
    result = b.cli("target", "list", check=False)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "server.grace_period_s" in result.stderr and "Traceback" not in result.stderr
    b.config.write_text(b.config.read_text().replace("grace_period_s: soon", "grace_period_s: 30\n  typo_key: 1"))
    typo = b.cli("target", "list", check=False)
    assert typo.returncode == 1 and "server.typo_key" in typo.stderr


def test_target_add_scan_pins_the_key_it_shows(tmp_path: Path, sshd: Sshd) -> None:
    b = Bastion(tmp_path).init()
    added = b.cli("target", "add", "scanned", "--host", "127.0.0.1", "--port", str(sshd.port), "--user", sshd.user,
                  "--key-file", str(sshd.root / "client_key"), "--scan")
    fingerprint = subprocess.run(["ssh-keygen", "-lf", str(sshd.root / "host_key.pub")], capture_output=True,
                                 text=True, check=True).stdout.split()[1]
    assert f"host key pinned {fingerprint}" in added.stdout
    shown = b.cli("target", "show", "scanned").stdout
    assert sshd.host_key in shown
    b.cli("target", "remove", "scanned")
    assert "scanned" not in b.cli("target", "list").stdout


def test_auditor_streams_a_recording_that_asciinema_plays(bastion: Bastion, tmp_path: Path) -> None:
    agent = bastion.agent("streamed-agent", ["tester"])
    assert bastion.ssh(agent, "web-1", "echo streamed-output").returncode == 0
    session = next(p.stem for p in reversed(bastion.casts()) if "streamed-agent@web-1" in p.read_text())
    auditor = bastion.agent("auditor-stream", ["auditor"])
    result = bastion.ssh(auditor, "admin", f"recording {session}")
    assert result.returncode == 0
    cast = tmp_path / "s.cast"
    cast.write_bytes(result.stdout)
    assert "streamed-output" in asciinema_cat(cast)
    reader = bastion.agent("reader-stream", ["reader"])
    refused = bastion.ssh(reader, "admin", f"recording {session}")
    assert refused.returncode == 77 and refused.stdout == b""


def test_sftp_runs_where_policy_allows_it(bastion: Bastion, tmp_path: Path) -> None:
    bastion.add_role("sftp-user", {"targets": [{"name": "files", "match": {"names": ["web-*"]}, "sftp": "allow"}]})
    # A running bastion reads policies at start: check with a fresh process on the same data dir.
    other = bastion.second_process()
    try:
        agent = other.agent("sftp-agent", ["sftp-user"])
        (tmp_path / "remote.txt").write_text("over sftp\n")
        batch = tmp_path / "batch"
        batch.write_text(f"get {tmp_path / 'remote.txt'} {tmp_path / 'local.txt'}\n")
        args = other.ssh_args(agent, "web-1")
        result = subprocess.run(["sftp", "-b", str(batch), "-P", str(other.port),
                                 *[a for a in args[1:-1] if a not in ("-p", str(other.port))], args[-1]],
                                capture_output=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert (tmp_path / "local.txt").read_text() == "over sftp\n"
    finally:
        other.stop()
