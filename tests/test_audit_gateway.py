"""The audit trail end to end: a real workload through ssh and sshd, then `bastion audit verify|export|pubkey` and
`bastion replay` on the result, tampering with copies of the data dir, and the gateway failing closed when the
database cannot be written."""

from __future__ import annotations

import base64
import json
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key

from bastion.audit.chain import EventRecord, canonical_json, seal, sign_checkpoint
from bastion.cli import replay
from bastion.errors import BastionError
from tests.harness import Bastion, Sshd, wait_for

SESSION_COMMANDS = ("echo hello-audit", "uname -s", "printf 'two\\nlines\\n'")


@dataclass
class Workload:
    bastion: Bastion
    pristine: Path  # a copy of the data dir taken after the server stopped (and signed its last checkpoint)


@pytest.fixture(scope="module")
def workload(sshd: Sshd, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workload]:
    """Several sessions, a refused login and a refused unknown target through real ssh; then a clean stop."""
    b = Bastion(tmp_path_factory.mktemp("audited")).init()
    b.add_target("web-1", sshd)
    b.serve()
    alice = b.agent("alice", ["tester"])
    for command in SESSION_COMMANDS:
        result = b.ssh(alice, "web-1", command)
        assert result.returncode == 0, result.stderr
    forged = b.agent("mallory", token="not-a-token")
    assert b.ssh(forged, "web-1", "true").returncode == 255
    unknown = b.ssh(alice, "db-9", "true")
    assert unknown.returncode == 255 and b"bastion: unknown target 'db-9'" in unknown.stderr
    assert b.stop() == 0
    pristine = b.root / "pristine"
    shutil.copytree(b.dir, pristine)
    yield Workload(b, pristine)
    b.stop()


@pytest.fixture
def copy(workload: Workload, tmp_path: Path) -> Bastion:
    """A bastion over a fresh copy of the finished workload's data dir, to tamper with."""
    shutil.copytree(workload.pristine, tmp_path / "data")
    return Bastion(tmp_path)


def sql(b: Bastion, statement: str, *params: object) -> list[tuple]:
    con = sqlite3.connect(b.dir / "bastion.db")
    try:
        with con:
            return con.execute(statement, params).fetchall()
    finally:
        con.close()


def events(b: Bastion) -> list[EventRecord]:
    rows = sql(b, "SELECT seq, time, type, subject, target, session_id, details, prev_hash, hash "
                  "FROM audit_event ORDER BY seq")
    return [EventRecord(*row[:6], json.loads(row[6]), *row[7:]) for row in rows]


def first_seq(b: Bastion, type: str) -> int:
    return next(e.seq for e in events(b) if e.type == type)


def broken(b: Bastion, *args: str) -> str:
    """`bastion audit verify …` must fail with exactly one `bastion:` line; that line is returned."""
    result = b.cli("audit", "verify", *args, check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("bastion: audit broken at "), result.stderr
    return lines[0]


def test_chain_verifies_after_mixed_workload(workload: Workload) -> None:
    b = workload.bastion
    result = b.cli("audit", "verify", "--recordings")
    n_events = len(events(b))
    n_checkpoints = sql(b, "SELECT COUNT(*) FROM audit_checkpoint")[0][0]
    assert n_checkpoints >= 1
    head = sql(b, "SELECT hash FROM audit_event WHERE seq = ?", n_events)[0][0]
    assert result.stdout == (f"audit intact: {n_events} events, {n_checkpoints} checkpoints, "
                             f"{len(SESSION_COMMANDS)} recordings; signed through anchor {n_events}:{head}\n")
    types = [e.type for e in events(b)]
    assert types[0] == "server.start" and types[-1] == "server.stop"
    assert types.count("session.open") == types.count("session.close") == len(SESSION_COMMANDS)
    assert "auth.failure" in types
    last_checkpoint = sql(b, "SELECT MAX(seq) FROM audit_checkpoint")[0][0]
    assert last_checkpoint == n_events, "the server signs the head at shutdown"


@pytest.mark.parametrize(("column", "value"), [
    ("time", "2000-01-01T00:00:00.000000Z"),
    ("type", "session.open"),
    ("subject", "mallory"),
    ("target", "web-2"),
    ("session_id", "20000101T000000-00000000"),
    ("details", '{"exit_status":0}'),
    ("prev_hash", "0" * 64),
    ("hash", "f" * 64),
])
def test_editing_any_field_is_named(copy: Bastion, column: str, value: str) -> None:
    seq = first_seq(copy, "session.close")
    sql(copy, f"UPDATE audit_event SET {column} = ? WHERE seq = ?", value, seq)
    line = broken(copy)
    assert f"at seq {seq}:" in line


def test_deleting_one_in_the_middle_is_named(copy: Bastion) -> None:
    seq = len(events(copy)) // 2
    sql(copy, "DELETE FROM audit_event WHERE seq = ?", seq)
    assert broken(copy) == f"bastion: audit broken at seq {seq}: seq gap: event {seq} missing (deleted)"


def test_swapping_two_is_named(copy: Bastion) -> None:
    first, second = first_seq(copy, "session.open"), first_seq(copy, "session.close")
    columns = "time, type, subject, target, session_id, details, prev_hash, hash"
    a, c = (sql(copy, f"SELECT {columns} FROM audit_event WHERE seq = ?", s)[0] for s in (first, second))
    assignments = ", ".join(f"{name.strip()} = ?" for name in columns.split(","))
    for seq, row in ((first, c), (second, a)):
        sql(copy, f"UPDATE audit_event SET {assignments} WHERE seq = ?", *row, seq)
    assert f"at seq {first}: hash mismatch" in broken(copy)


def test_truncating_the_tail_behind_a_checkpoint_is_named(copy: Bastion) -> None:
    total = len(events(copy))
    sql(copy, "DELETE FROM audit_event WHERE seq > ?", total - 3)
    line = broken(copy)
    assert line == (f"bastion: audit broken at seq {total - 2}: log ends at seq {total - 3} but checkpoint "
                    f"covers seq {total}: newest events deleted")


def test_flipping_one_byte_of_a_recording_is_named(copy: Bastion) -> None:
    close = next(e for e in events(copy) if e.type == "session.close")
    path = copy.dir / "recordings" / close.details["recording"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    assert copy.cli("audit", "verify").returncode == 0, "without --recordings the files are not read"
    line = broken(copy, "--recordings")
    assert line == (f"bastion: audit broken at recording {close.details['recording']} (seq {close.seq}): "
                    "recording SHA-256 differs from the audit log (altered)")


def test_the_printed_anchor_holds_a_rewrite_of_the_database_to_account(copy: Bastion) -> None:
    """Checkpoints deleted and the last event rewritten with a fresh hash: only the kept anchor tells."""
    printed = copy.cli("audit", "verify").stdout.strip()
    anchor = printed.rsplit("anchor ", 1)[1]
    assert copy.cli("audit", "verify", "--anchor", anchor).returncode == 0
    last = events(copy)[-1]
    forged = seal(seq=last.seq, time=last.time, type=last.type, subject=last.subject, target=last.target,
                  session_id=last.session_id, details={"forged": True}, prev_hash=last.prev_hash)
    sql(copy, "DELETE FROM audit_checkpoint")
    sql(copy, "UPDATE audit_event SET details = ?, hash = ? WHERE seq = ?", canonical_json(forged.details),
        forged.hash, forged.seq)
    assert copy.cli("audit", "verify").returncode == 0
    assert broken(copy, "--anchor", anchor) == (f"bastion: audit broken at seq {last.seq}: event {last.seq} is not "
                                                "the one anchored: the log was rewritten up to there")
    wrong = copy.cli("audit", "verify", "--anchor", "12", check=False)
    assert wrong.stderr == "bastion: an anchor is SEQ:HASH (a SHA-256 in hex), as verify prints it, not '12'\n"


def test_pubkey_is_pem_that_verify_accepts(workload: Workload, tmp_path: Path) -> None:
    b = workload.bastion
    pem = b.cli("audit", "pubkey").stdout
    assert pem.startswith("-----BEGIN PUBLIC KEY-----\n") and pem.endswith("-----END PUBLIC KEY-----\n")
    assert "PRIVATE" not in pem
    (tmp_path / "audit.pub").write_text(pem)
    assert b.cli("audit", "verify", "--public-key", str(tmp_path / "audit.pub")).stdout.startswith("audit intact:")


def test_a_database_resigned_with_another_key_is_caught(copy: Bastion, tmp_path: Path) -> None:
    """Edit an event, recompute every hash after it and re-sign the checkpoints with a key of one's own."""
    trusted_pem = copy.cli("audit", "pubkey").stdout
    forger = Ed25519PrivateKey.generate()
    target = first_seq(copy, "session.close")
    resealed: dict[int, EventRecord] = {}
    prev = None
    for event in events(copy):
        details = {**event.details, "exit_status": 0} if event.seq == target else event.details
        fresh = seal(seq=event.seq, time=event.time, type=event.type, subject=event.subject, target=event.target,
                     session_id=event.session_id, details=details, prev_hash=prev.hash if prev else "0" * 64)
        sql(copy, "UPDATE audit_event SET details = ?, prev_hash = ?, hash = ? WHERE seq = ?",
            canonical_json(fresh.details), fresh.prev_hash, fresh.hash, fresh.seq)
        resealed[fresh.seq] = prev = fresh
    for (seq, time) in sql(copy, "SELECT seq, time FROM audit_checkpoint"):
        cp = sign_checkpoint(forger, resealed[seq], time)
        sql(copy, "UPDATE audit_checkpoint SET hash = ?, signature = ?, key_fingerprint = ?, public_key = ? "
                  "WHERE seq = ?", cp.hash, cp.signature, cp.key_fingerprint, cp.public_key, seq)

    forged_pem = forger.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
    (tmp_path / "forged.pub").write_text(forged_pem)
    (tmp_path / "trusted.pub").write_text(trusted_pem)
    assert copy.cli("audit", "verify", "--public-key", str(tmp_path / "forged.pub")).returncode == 0
    assert "not by the trusted key" in broken(copy)
    assert "not by the trusted key" in broken(copy, "--public-key", str(tmp_path / "trusted.pub"))


def test_verify_public_key_errors_are_one_line(workload: Workload, tmp_path: Path) -> None:
    b = workload.bastion
    (tmp_path / "junk.pub").write_text("not a key\n")
    cases = ((tmp_path / "junk.pub", "bastion: audit public key is not PEM or an OpenSSH public key line"),
             (tmp_path / "absent.pub", f"bastion: cannot read {tmp_path / 'absent.pub'}:"))
    for path, expected in cases:
        result = b.cli("audit", "verify", "--public-key", str(path), check=False)
        assert result.returncode == 1 and result.stderr.startswith(expected) and result.stderr.count("\n") == 1


def test_export_since_gives_jsonl_with_sessions_and_subjects(workload: Workload) -> None:
    b = workload.bastion
    everything = [json.loads(line) for line in b.cli("audit", "export").stdout.splitlines()]
    assert [e["seq"] for e in everything] == list(range(1, len(everything) + 1))
    first_open = next(e for e in everything if e["type"] == "session.open")
    exported = b.cli("audit", "export", "--since", first_open["time"], "--format", "jsonl").stdout.splitlines()
    rows = [json.loads(line) for line in exported]
    assert rows[0] == first_open and rows == everything[first_open["seq"] - 1:]
    for kind in ("session.open", "session.close"):
        matching = [e for e in rows if e["type"] == kind]
        assert len(matching) == len(SESSION_COMMANDS)
        assert {e["subject"] for e in matching} == {"alice"} and all(e["session_id"] for e in matching)
    assert {"seq", "time", "type", "subject", "target", "session_id", "details", "prev_hash", "hash"} == set(rows[0])


def test_export_since_accepts_offsets_and_refuses_junk(workload: Workload) -> None:
    b = workload.bastion
    assert b.cli("audit", "export", "--since", "2999-01-01T00:00:00+02:00").stdout == ""
    assert len(b.cli("audit", "export", "--since", "2000-01-01").stdout.splitlines()) == len(events(b))
    result = b.cli("audit", "export", "--since", "yesterday", check=False)
    assert result.returncode == 1 and result.stderr == (
        "bastion: --since 'yesterday' is not an ISO-8601 time such as 2024-05-01T12:00:00Z\n")


def test_replay_cat_prints_the_sessions_output(workload: Workload) -> None:
    b = workload.bastion
    opened = [e for e in events(b) if e.type == "session.open"]
    by_command = {e.details["command"]: e.session_id for e in opened}
    output = b.cli("replay", by_command["echo hello-audit"], "--cat").stdout
    assert "hello-audit" in output
    assert b.cli("replay", by_command["printf 'two\\nlines\\n'"], "--cat").stdout == "two\nlines\n"


def test_replay_unknown_session_and_missing_asciinema(workload: Workload, monkeypatch: pytest.MonkeyPatch) -> None:
    result = workload.bastion.cli("replay", "19990101T000000-deadbeef", "--cat", check=False)
    assert result.returncode == 1 and result.stderr == "bastion: no session 19990101T000000-deadbeef\n"
    monkeypatch.setattr(replay.shutil, "which", lambda *args, **kwargs: None)
    with pytest.raises(BastionError, match=r"^asciinema is not installed"):
        replay.asciinema()


def test_unwritable_database_fails_new_sessions_closed(workload: Workload) -> None:
    """A writer holding the database's lock past the busy timeout: auth.success cannot be written, so the agent's
    command never runs and the agent is told why in one line."""
    b = workload.bastion
    b.serve()
    alice = b.agent("alice", ["tester"])
    assert b.ssh(alice, "web-1", "true").returncode == 0
    marker = b.root / "MARKER-locked"
    holder = sqlite3.connect(b.dir / "bastion.db", isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        result = b.ssh(alice, "web-1", f"touch {marker}")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.returncode == 255
    assert result.stderr == b"bastion: the audit log cannot be written; no session was opened\n"
    assert not marker.exists()
    assert "could not be audited: audit event could not be written: database is locked" in b.log()
    assert b.ssh(alice, "web-1", "true").returncode == 0, "the next session works once the database does"


def test_session_open_that_cannot_be_audited_does_not_run(workload: Workload) -> None:
    """Only the session.open append fails (authentication was audited): the command still never runs."""
    b = workload.bastion
    if b.proc is None or b.proc.poll() is not None:
        b.serve()
    alice = b.agent("alice", ["tester"])
    marker = b.root / "MARKER-open"
    sql(b, "CREATE TRIGGER refuse_open BEFORE INSERT ON audit_event WHEN NEW.type = 'session.open' "
           "BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END")
    try:
        result = b.ssh(alice, "web-1", f"touch {marker}")
    finally:
        sql(b, "DROP TRIGGER refuse_open")
    assert result.returncode == 255
    assert result.stderr == b"bastion: cannot record or audit this session; refused\n"
    assert not marker.exists()
    assert b.ssh(alice, "web-1", "true").returncode == 0
    assert b.stop() == 0
    assert b.cli("audit", "verify", "--recordings").stdout.startswith("audit intact:")


def test_a_close_that_cannot_be_written_is_retried_until_it_is(workload: Workload) -> None:
    """The command has run: its close waits out a failing database, and the agent gets its status after it."""
    b = workload.bastion
    if b.proc is None or b.proc.poll() is not None:
        b.serve()
    alice = b.agent("alice", ["tester"])
    sql(b, "CREATE TRIGGER refuse_close BEFORE INSERT ON audit_event WHEN NEW.type = 'session.close' "
           "BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END")
    try:
        command = subprocess.Popen([*b.ssh_args(alice, "web-1"), "echo ran-before-the-outage"],
                                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        wait_for(lambda: "its close could not be written (audit event could not be written" in b.log(),
                 "a failed close", 60)
    finally:
        sql(b, "DROP TRIGGER refuse_close")
    out, err = command.communicate(timeout=60)
    assert (command.returncode, out, err) == (0, b"ran-before-the-outage\n", b"")
    row = sql(b, "SELECT ended, exit_status, recording_sha256 FROM sessions WHERE command = ?",
              "echo ran-before-the-outage")
    assert row[0][0] is not None and row[0][1] == 0 and row[0][2]
    assert b.stop() == 0
    assert b.cli("audit", "verify", "--recordings").stdout.startswith("audit intact:")


def test_checkpoint_public_key_is_the_configured_one(workload: Workload) -> None:
    pem = workload.bastion.cli("audit", "pubkey").stdout
    raw = load_pem_public_key(pem.encode()).public_bytes(Encoding.Raw, PublicFormat.Raw)
    stored = {row[0] for row in sql(workload.bastion, "SELECT public_key FROM audit_checkpoint")}
    assert stored == {base64.b64encode(raw).decode()}
