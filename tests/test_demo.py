"""`bastion demo`: the scripted walkthrough passes end to end with real ssh, and the interactive demo stops cleanly."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.harness import BASTION

STEPS = (
    "read runs at once",
    "secrets in the output are masked",
    "write held, approved by approver-1, then run",
    "write held, denied by approver-2",
    "policy denies what no rule allows",
    "operator writes on staging at once",
    "BASTION_WAIT=0 returns 75 at once, and self-approval is refused",
    "replay prints the read's output",
    "audit trail and recordings verify",
)


@pytest.fixture
def ssh_client() -> None:
    if shutil.which("ssh") is None:
        pytest.fail("ssh is missing: scripts/test.sh installs OpenSSH")


def test_script_runs_every_step_of_the_walkthrough(ssh_client: None, tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    result = subprocess.run([*BASTION, "demo", "--script", "--dir", str(demo), "--port", "0"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    for step in STEPS:
        assert any(line.startswith(f"✓ {step}: ") for line in lines), (step, result.stdout)
    assert not any(line.startswith("✗") for line in lines), result.stdout
    assert lines[-1] == f"demo script: all {len(STEPS)} steps passed"
    assert (demo / "target" / "home" / "web" / "release.txt").read_text() == "deployed\n"
    assert (demo / "target" / "home" / "web" / "README.txt").is_file()
    config = (demo / "ssh_config").read_text()
    for host in ("reader.bastion", "operator.bastion", "approver-1.bastion", "approver-2.bastion", "auditor.bastion"):
        assert f"Host {host}\n" in config
    assert "CertificateFile" in config and "IdentitiesOnly yes" in config
    verify = subprocess.run([*BASTION, "--config", str(demo / "bastion" / "bastion.yaml"), "audit", "verify",
                             "--recordings"], capture_output=True, text=True, timeout=120)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_demo_prints_the_walkthrough_and_stops_cleanly_on_sigterm(ssh_client: None, tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    proc = subprocess.Popen([*BASTION, "demo", "--dir", str(demo), "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        shown = ""
        while "Ctrl-C stops the demo." not in shown:
            line = proc.stdout.readline()
            assert line, f"the demo ended before printing its walkthrough: {proc.communicate(timeout=60)}"
            shown += line
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "bastion: stopping; draining live sessions" in err
    config = demo / "ssh_config"
    for command in (f"ssh -F {config} demo-web@reader.bastion 'ls -la'",
                    f"ssh -F {config} admin@approver-1.bastion approve ID",
                    f"ssh -F {config} admin@approver-2.bastion deny ID --reason",
                    "replay ID", "audit verify --recordings", "asciinema play s.cast"):
        assert command in shown, (command, shown)
    assert "demo target  127.0.0.1:" in shown and "embedded in this process" in shown


def test_demo_refuses_a_directory_in_use(tmp_path: Path) -> None:
    (tmp_path / "something").write_text("mine")
    result = subprocess.run([*BASTION, "demo", "--dir", str(tmp_path), "--port", "0"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"bastion: {tmp_path} is not empty; the demo needs a new or empty directory"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["something"]
