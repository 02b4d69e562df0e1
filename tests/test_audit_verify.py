"""`verify_audit` over a real database tampered with by raw SQL, and over recordings altered on disk."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bastion.audit.chain import EventType, format_time, sign_checkpoint
from bastion.audit.keys import audit_public_key_text
from bastion.audit.log import AuditLog
from bastion.audit.verify import parse_anchor, recording_details, verify_audit
from bastion.store.events import Event, insert_checkpoint, tail_event


@pytest.fixture
def recordings(tmp_path: Path) -> Path:
    path = tmp_path / "recordings"
    (path / "2025").mkdir(parents=True)
    return path


def workload(log: AuditLog, recordings: Path) -> None:
    """A mixed session's worth of events, 12 in all, with two finished recordings."""
    log.append(EventType.SERVER_START, subject="bastion")
    log.append(EventType.POLICY_LOADED, subject="bastion", details={"files": 4})
    log.append(EventType.AUTH_FAILURE, subject="agent-9", details={"reason": "expired certificate"})
    for n, command in enumerate(("df -h", "systemctl restart nginx"), start=1):
        sid = f"s{n}"
        log.append(EventType.AUTH_SUCCESS, subject="agent-7", details={"roles": ["ops"]})
        log.append(EventType.SESSION_OPEN, subject="agent-7", target="web-1", session_id=sid)
        decided = {"command": command, "verdict": "READ" if n == 1 else "WRITE", "decision": "allow"}
        log.append(
            EventType.REQUEST_DECIDED, subject="agent-7", target="web-1", session_id=sid, details=decided
        )
        cast = recordings / "2025" / f"{sid}.cast"
        header = {"version": 2, "width": 80, "height": 24}
        cast.write_text(json.dumps(header) + '\n[0.1, "o", "ok ✓\\r\\n"]\n')
        close = {"exit_status": 0, **recording_details(recordings, cast)}
        log.append(EventType.SESSION_CLOSE, subject="agent-7", target="web-1", session_id=sid, details=close)
    log.append(EventType.SERVER_STOP, subject="bastion")


@pytest.fixture
def audited(db, key_path: Path, recordings: Path):
    log = AuditLog(signing_key_path=key_path, checkpoint_every=5)
    workload(log, recordings)
    log.close()
    return db


def test_untouched_workload_verifies(audited, recordings: Path, key_path: Path) -> None:
    result = verify_audit(recordings_dir=recordings, public_key=audit_public_key_text(key_path))
    assert result.ok, str(result)
    assert (result.events, result.checkpoints, result.recordings) == (12, 3, 2)
    head = tail_event()
    assert str(result) == f"audit intact: 12 events, 3 checkpoints, 2 recordings; signed through anchor 12:{head.hash}"


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("type", "auth.success"),
        ("time", "2020-01-01T00:00:00.000000Z"),
        ("subject", "agent-8"),
        ("subject", None),
        ("target", "db-1"),
        ("session_id", "s9"),
        ("details", '{"command":"df -h","decision":"allow","verdict":"WRITE"}'),
        ("details", "not json"),
        ("prev_hash", "f" * 64),
        ("hash", "0" * 64),
    ],
)
def test_any_edited_field_is_named(audited, column: str, value: str | None) -> None:
    audited.execute_sql(f"UPDATE audit_event SET {column} = ? WHERE seq = 6", (value,))
    result = verify_audit()
    assert not result.ok
    assert result.first_bad_seq == 6
    assert "hash mismatch" in result.reason
    assert str(result).startswith("audit broken at seq 6: ")


def test_deleted_event_in_the_middle(audited) -> None:
    audited.execute_sql("DELETE FROM audit_event WHERE seq = 7")
    result = verify_audit()
    assert (result.ok, result.first_bad_seq) == (False, 7)
    assert "missing" in result.reason


def test_swapped_events(audited) -> None:
    audited.execute_sql("UPDATE audit_event SET seq = -1 WHERE seq = 4")
    audited.execute_sql("UPDATE audit_event SET seq = 4 WHERE seq = 8")
    audited.execute_sql("UPDATE audit_event SET seq = 8 WHERE seq = -1")
    result = verify_audit()
    assert (result.ok, result.first_bad_seq) == (False, 4)


def test_truncated_tail_behind_a_checkpoint(audited) -> None:
    audited.execute_sql("DELETE FROM audit_event WHERE seq > 9")
    result = verify_audit()
    assert (result.ok, result.first_bad_seq) == (False, 10)
    assert "newest events deleted" in result.reason


def test_rewritten_history_does_not_match_the_signed_checkpoints(audited) -> None:
    """Recomputing every hash after an edit keeps the chain consistent but not its signed head."""
    audited.execute_sql("DELETE FROM audit_event WHERE seq >= 3")
    log = AuditLog()
    log.append(EventType.AUTH_SUCCESS, subject="agent-9")
    for _ in range(9):
        log.append(EventType.SERVER_STOP)
    result = verify_audit()
    assert (result.ok, result.first_bad_seq) == (False, 5)
    assert "does not match" in result.reason


def test_forged_checkpoint_signature(audited) -> None:
    audited.execute_sql(
        "UPDATE audit_checkpoint SET signature = ? WHERE seq = 10", (base64.b64encode(b"\1" * 64).decode(),)
    )
    result = verify_audit()
    assert (result.ok, result.first_bad_seq) == (False, 10)
    assert "bad checkpoint signature" in result.reason


def test_checkpoint_by_an_impostor_key_needs_the_kept_public_key(audited, key_path: Path) -> None:
    """A checkpoint re-signed with another key is self-consistent; only the real public key exposes it."""
    audited.execute_sql("DELETE FROM audit_checkpoint")
    insert_checkpoint(
        sign_checkpoint(Ed25519PrivateKey.generate(), tail_event(), format_time(datetime.now(UTC)))
    )
    assert verify_audit().ok
    result = verify_audit(public_key=audit_public_key_text(key_path))
    assert (result.ok, result.first_bad_seq) == (False, 12)
    assert "not by the trusted key" in result.reason


def _rewrite_without_checkpoints(audited) -> None:
    """What someone who can write the database but has no audit key can do: rewrite, rehash, drop checkpoints."""
    audited.execute_sql("DELETE FROM audit_checkpoint")
    audited.execute_sql("DELETE FROM audit_event WHERE seq >= 3")
    log = AuditLog()
    for _ in range(4):
        log.append(EventType.SERVER_STOP)


def test_a_log_without_its_checkpoints_fails_once_a_running_bastion_would_have_signed_it(audited) -> None:
    _rewrite_without_checkpoints(audited)
    first = Event.get(Event.seq == 1).time
    assert verify_audit(now=datetime.fromisoformat(first) + timedelta(seconds=60)).ok
    result = verify_audit(now=datetime.fromisoformat(first) + timedelta(hours=1))
    assert (result.ok, result.first_bad_seq) == (False, 1)
    assert result.reason == (f"6 events after the last checkpoint are not signed, the oldest from {first}: "
                             "a bastion stopped without signing them, or checkpoints were removed")


def test_a_long_unsigned_tail_fails_whatever_its_times(db) -> None:
    log = AuditLog()
    for _ in range(201):
        log.append(EventType.SERVER_STOP)
    result = verify_audit()
    assert (result.ok, result.first_bad_seq) == (False, 1)
    assert result.reason.startswith("201 events after the last checkpoint are not signed")


def test_the_anchor_a_verification_prints_catches_a_rewrite_without_the_key(audited) -> None:
    printed = str(verify_audit())
    anchor = parse_anchor(printed.rsplit("anchor ", 1)[1])
    assert anchor == (12, tail_event().hash)
    assert verify_audit(anchor=anchor).ok
    _rewrite_without_checkpoints(audited)
    assert verify_audit().ok, "without the anchor, a fresh rewrite looks like a log not signed yet"
    assert "6 newer events not signed yet" in str(verify_audit())
    result = verify_audit(anchor=anchor)
    assert (result.ok, result.first_bad_seq) == (False, 7)
    assert "anchor is at seq 12: events deleted" in result.reason
    result = verify_audit(anchor=(4, anchor[1]))
    assert (result.ok, result.first_bad_seq) == (False, 4)
    assert "not the one anchored" in result.reason


@pytest.mark.parametrize("text", ["12", "12:", "x:" + "a" * 64, "0:" + "a" * 64, "3:" + "g" * 64, "3:abc"])
def test_an_anchor_is_seq_and_a_full_sha256(text: str) -> None:
    with pytest.raises(ValueError, match="an anchor is SEQ:HASH"):
        parse_anchor(text)


def test_sessions_left_open_are_counted(db) -> None:
    log = AuditLog()
    log.append(EventType.SESSION_OPEN, subject="agent-7", target="web-1", session_id="s1")
    log.append(EventType.SESSION_OPEN, subject="agent-7", target="web-1", session_id="s2")
    log.append(EventType.SESSION_CLOSE, subject="agent-7", target="web-1", session_id="s2")
    assert str(verify_audit()) == ("audit intact: 3 events, 0 checkpoints; 3 newer events not signed yet; "
                                   "1 sessions not closed (live, or their bastion stopped): recordings not bound")


def close_event_of(session_id: str) -> Event:
    return Event.get((Event.type == EventType.SESSION_CLOSE) & (Event.session_id == session_id))


def test_flipped_byte_in_a_recording(audited, recordings: Path) -> None:
    cast = recordings / "2025" / "s2.cast"
    data = bytearray(cast.read_bytes())
    data[-5] ^= 0x01
    cast.write_bytes(bytes(data))
    assert verify_audit().ok  # the chain alone cannot see files
    result = verify_audit(recordings_dir=recordings)
    assert not result.ok
    assert (result.first_bad_seq, result.file) == (close_event_of("s2").seq, "2025/s2.cast")
    assert "SHA-256 differs" in result.reason
    assert str(result).startswith("audit broken at recording 2025/s2.cast (seq 11): ")


def test_missing_and_resized_recordings(audited, recordings: Path) -> None:
    (recordings / "2025" / "s1.cast").unlink()
    with (recordings / "2025" / "s2.cast").open("a") as fh:
        fh.write('[0.2, "o", "more"]\n')
    result = verify_audit(recordings_dir=recordings)
    assert (result.first_bad_seq, result.file, result.reason) == (
        close_event_of("s1").seq,
        "2025/s1.cast",
        "recording is missing",
    )
    (recordings / "2025" / "s1.cast").write_text("x")
    result = verify_audit(recordings_dir=recordings)
    assert result.file == "2025/s1.cast" and "size" in result.reason


def test_recording_outside_the_recordings_dir_is_refused(db, tmp_path: Path, recordings: Path) -> None:
    outside = tmp_path / "elsewhere.cast"
    outside.write_text("{}\n")
    digest = recording_details(tmp_path, outside)
    details = {**digest, "recording": "../elsewhere.cast"}
    AuditLog().append(EventType.SESSION_CLOSE, session_id="s1", details=details)
    result = verify_audit(recordings_dir=recordings)
    assert not result.ok and "leaves the recordings directory" in result.reason
