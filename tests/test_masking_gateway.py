"""Masking through real ssh: secrets never reach the agent or the recording; ordinary output is untouched."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.harness import Bastion, Sshd, asciinema_cat

AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
GITHUB = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
CARD = "4111 1111 1111 1111"
PRIVATE_KEY = """-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACDf1zv0pE3S+0c0eWEZcdi5cDFZAWUOO7w3YgD1H2T0tgAAAJjQ8dxr0PHc
-----END OPENSSH PRIVATE KEY-----"""
ORDINARY = ["2026-11-24T06:00:00Z INFO started worker 7", "disk /dev/sda1 93% used", "commit 3f2a9c1d0e8b7a6f5e4d"]


@pytest.fixture(scope="module")
def masked(sshd: Sshd, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bastion]:
    b = Bastion(tmp_path_factory.mktemp("masked")).init()
    b.add_role("unmasked", {"targets": [{"name": "everything", "match": {"names": ["*"]}, "read": "allow"}]})
    path = b.dir / "policies" / "masking.yaml"
    spec = yaml.safe_load(path.read_text())
    spec["overrides"].append({"roles": ["unmasked"], "enabled": False})
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    b.add_target("web-1", sshd)
    b.serve()
    yield b
    b.stop()


@pytest.fixture
def secrets_file(tmp_path: Path) -> Path:
    path = tmp_path / "app.env"
    lines = [ORDINARY[0], f"AWS_ACCESS_KEY_ID={AWS_KEY}", ORDINARY[1], f"token: {GITHUB}",
             f"card on file {CARD}", PRIVATE_KEY, ORDINARY[2]]
    path.write_text("\n".join(lines) + "\n")
    return path


def _all_secrets() -> list[str]:
    return [AWS_KEY, GITHUB, CARD, "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ"]


def test_cat_of_secrets_arrives_masked_and_the_cast_holds_none(masked: Bastion, secrets_file: Path) -> None:
    agent = masked.agent("reader-mask", ["reader"])
    result = masked.ssh(agent, "web-1", f"cat {secrets_file}")
    assert result.returncode == 0
    out = result.stdout.decode()
    for secret in _all_secrets():
        assert secret not in out
    assert "[MASKED:aws-access-key]" in out and "[MASKED:private-key]" in out and "[MASKED:card-number]" in out
    for line in ORDINARY:
        assert f"{line}\n" in out
    cast = masked.casts()[-1]
    raw = cast.read_text()
    for secret in _all_secrets():
        assert secret not in raw
    assert ORDINARY[1] in asciinema_cat(cast)


def test_close_event_counts_masks_by_kind_never_values(masked: Bastion, secrets_file: Path) -> None:
    agent = masked.agent("reader-count", ["reader"])
    masked.ssh(agent, "web-1", f"cat {secrets_file}")
    db = sqlite3.connect(masked.dir / "bastion.db")
    rows = db.execute("select details from audit_event where type = 'session.close' and subject = 'reader-count'")
    details = json.loads(rows.fetchone()[0])
    assert details["masked"]["aws-access-key"] == 1
    assert details["masked"]["private-key"] == 1
    dump = "".join(r[0] for r in db.execute("select details from audit_event"))
    for secret in _all_secrets():
        assert secret not in dump


def test_secret_in_stderr_and_split_across_writes_is_masked(masked: Bastion) -> None:
    agent = masked.agent("reader-split", ["reader"])
    head, tail = AWS_KEY[:9], AWS_KEY[9:]
    result = masked.ssh(agent, "web-1", f"printf '{head}' >&2; sleep 0.01; printf '{tail}\\n' >&2; echo done")
    assert AWS_KEY.encode() not in result.stderr
    assert b"[MASKED:aws-access-key]" in result.stderr
    assert result.stdout == b"done\n"


def test_command_line_secret_is_masked_in_the_recording_title(masked: Bastion) -> None:
    agent = masked.agent("reader-title", ["reader"])
    masked.ssh(agent, "web-1", f"echo {GITHUB} > /dev/null")
    header = json.loads(masked.casts()[-1].read_text().splitlines()[0])
    assert GITHUB not in header["title"] and "[MASKED:github-token]" in header["title"]


def test_masking_is_off_only_where_policy_says_so(masked: Bastion, secrets_file: Path) -> None:
    agent = masked.agent("unmasked-1", ["unmasked"])
    result = masked.ssh(agent, "web-1", f"cat {secrets_file}")
    assert AWS_KEY.encode() in result.stdout
    explained = masked.cli("policy", "explain", "--role", "unmasked", "--target", "web-1", "--", "ls").stdout
    assert "masking: off" in explained
    default = masked.cli("policy", "explain", "--role", "reader", "--target", "web-1", "--", "ls").stdout
    assert "masking: on" in default
