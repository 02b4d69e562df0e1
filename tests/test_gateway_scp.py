"""Legacy scp through the bastion: the target runs exactly the scp sink or source that was decided, never a shell."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import Bastion, Sshd

COPIER = {"description": "Copies files; no shell, no writes.",
          "targets": [{"name": "all", "match": {"names": ["*"]}, "read": "allow", "write": "deny", "shell": "deny",
                       "scp": "allow"}]}


@pytest.fixture(scope="module")
def copying(sshd: Sshd, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bastion]:
    b = Bastion(tmp_path_factory.mktemp("scp")).init()
    b.add_role("copier", COPIER)
    b.add_role("held-copier", {**COPIER, "targets": [{**COPIER["targets"][0], "scp": "approve"}]})
    b.add_target("web-1", sshd)
    b.serve()
    yield b
    b.stop()


def _scp(b: Bastion, agent_args: list[str], *paths: str) -> subprocess.CompletedProcess[bytes]:
    options = [a for a in agent_args[1:-1] if a not in ("-p", str(b.port))]
    return subprocess.run(["scp", "-O", "-P", str(b.port), *options, *paths], capture_output=True, timeout=60)


def test_a_real_scp_upload_and_download_go_through(copying: Bastion, tmp_path: Path) -> None:
    agent = copying.agent("copier-1", ["copier"])
    args = copying.ssh_args(agent, "web-1")
    source = tmp_path / "source.txt"
    source.write_bytes(b"copied through the bastion\n")
    up = _scp(copying, args, str(source), f"{args[-1]}:{tmp_path}/uploaded.txt")
    assert up.returncode == 0, up.stderr
    assert (tmp_path / "uploaded.txt").read_bytes() == b"copied through the bastion\n"
    down = _scp(copying, args, f"{args[-1]}:{tmp_path}/uploaded.txt", str(tmp_path / "downloaded.txt"))
    assert down.returncode == 0, down.stderr
    assert (tmp_path / "downloaded.txt").read_bytes() == b"copied through the bastion\n"


def test_commands_sent_after_an_scp_request_reach_the_scp_sink_not_a_shell(copying: Bastion, tmp_path: Path) -> None:
    agent = copying.agent("copier-2", ["copier"])
    marker = tmp_path / "ran"
    result = copying.ssh(agent, "web-1", f"scp -t {tmp_path}", input=f"touch {marker}; echo RAN-$((6*7))\n".encode())
    assert not marker.exists()
    assert b"RAN-42" not in result.stdout
    assert result.returncode != 0


def test_an_approved_scp_request_runs_only_the_scp_sink(copying: Bastion, tmp_path: Path) -> None:
    agent, approver = copying.agent("copier-3", ["held-copier"]), copying.agent("approver-1", ["approver"])
    command = f"scp -t {tmp_path}"
    first = copying.ssh(agent, "web-1", command, "-o", "SetEnv=BASTION_WAIT=0")
    assert first.returncode == 75, first.stderr
    found = re.search(rb"request (\S+)", first.stderr)
    assert found is not None
    request = found.group(1).decode()
    assert copying.ssh(approver, "admin", f"approve {request}").returncode == 0
    marker = tmp_path / "ran-approved"
    result = copying.ssh(agent, "web-1", command, "-o", f"SetEnv=BASTION_WAIT=0 BASTION_APPROVAL={request}",
                         input=f"touch {marker}; id -un\n".encode())
    assert not marker.exists()
    assert result.returncode != 0
