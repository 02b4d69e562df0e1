"""The store-backed audit log: appends, checkpoints, several writers, failing closed, secret guard, export."""

from __future__ import annotations

import asyncio
import itertools
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from bastion.audit.chain import EventType
from bastion.audit.guard import SecretInDetails
from bastion.audit.keys import audit_public_key_text, load_public_key, load_signing_key
from bastion.audit.log import AuditLog, export_events
from bastion.audit.verify import verify_audit
from bastion.errors import ConfigError, StoreError
from bastion.store.db import connect
from bastion.store.events import Checkpoint, Event


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "bastion.db"


@pytest.fixture
def db(db_path: Path):
    db_path.parent.mkdir()
    database = connect(db_path)
    yield database
    database.close()


def test_append_returns_the_stored_event(db, key_path: Path) -> None:
    log = AuditLog(signing_key_path=key_path)
    first = log.append(EventType.SERVER_START, subject="bastion")
    second = log.append(EventType.AUTH_SUCCESS, subject="agent-7", details={"roles": ["ops"]})
    assert (first.seq, second.seq) == (1, 2)
    assert second.prev_hash == first.hash
    assert second.time.endswith("Z") and len(second.time) == 27
    assert Event.select().count() == 2
    assert verify_audit().ok


def test_checkpoint_every_n_events_and_at_close(db, key_path: Path) -> None:
    log = AuditLog(signing_key_path=key_path, checkpoint_every=5, checkpoint_interval_s=3600)
    for _ in range(12):
        log.append(EventType.REQUEST_DECIDED)
    assert [c.seq for c in Checkpoint.select().order_by(Checkpoint.seq)] == [5, 10]
    log.close()
    assert [c.seq for c in Checkpoint.select().order_by(Checkpoint.seq)] == [5, 10, 12]
    with pytest.raises(StoreError):
        log.append(EventType.SERVER_STOP)


def test_checkpoint_by_time(db, key_path: Path) -> None:
    slow = AuditLog(signing_key_path=key_path, checkpoint_interval_s=3600)
    slow.append(EventType.SERVER_START)
    assert slow.maybe_checkpoint() is None
    eager = AuditLog(signing_key_path=key_path, checkpoint_interval_s=0)
    cp = eager.maybe_checkpoint()
    assert cp is not None and cp.seq == 1
    assert eager.checkpoint() is None  # the head is already signed


def test_without_a_key_there_are_no_checkpoints(db) -> None:
    log = AuditLog()
    log.append(EventType.POLICY_LOADED, details={"files": 3})
    log.close()
    assert Checkpoint.select().count() == 0


def test_openssh_and_pem_keys_sign_alike(db, tmp_path: Path) -> None:
    """`bastion init` may write either format; the fingerprint is the one ssh-keygen shows."""
    openssh = tmp_path / "audit_openssh"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(openssh)], check=True)
    log = AuditLog(signing_key_path=openssh, checkpoint_every=1)
    log.append(EventType.SERVER_START)
    shown = subprocess.run(["ssh-keygen", "-lf", str(openssh)], capture_output=True, text=True, check=True)
    assert Checkpoint.get().key_fingerprint == shown.stdout.split()[1]
    pem = audit_public_key_text(openssh)
    assert pem.startswith("-----BEGIN PUBLIC KEY-----")
    assert verify_audit(public_key=pem).ok
    assert verify_audit(public_key=Path(f"{openssh}.pub").read_text()).ok


def test_key_errors_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_signing_key(tmp_path / "missing.key")
    rsa = tmp_path / "rsa.key"
    subprocess.run(["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", str(rsa)], check=True)
    with pytest.raises(ConfigError):
        load_signing_key(rsa)
    with pytest.raises(ConfigError):
        load_public_key("not a key")


def test_public_key_text_matches_the_private_key(key_path: Path) -> None:
    public = load_signing_key(key_path).public_key()
    expected = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert audit_public_key_text(key_path) == expected.decode()


def test_threads_share_one_log(db, key_path: Path) -> None:
    log = AuditLog(signing_key_path=key_path, checkpoint_every=25)

    def work(n: int) -> None:
        for i in range(50):
            log.append(EventType.REQUEST_DECIDED, subject=f"thread-{n}", details={"i": i})

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result = verify_audit()
    assert result.ok and result.events == 200


WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from bastion.audit.log import AuditLog
    from bastion.store.db import connect

    db_path, key_path, name, go = sys.argv[1:]
    connect(db_path)
    log = AuditLog(signing_key_path=key_path, checkpoint_every=50)
    Path(f"{go}.{name}").touch()
    while not Path(go).exists():
        time.sleep(0.005)
    for i in range(200):
        log.append("request.decided", subject=name, details={"i": i})
        time.sleep(0.002 * (i % 2))
    log.close()
    """
)


def test_two_processes_make_one_chain(db, db_path: Path, key_path: Path, tmp_path: Path) -> None:
    go = tmp_path / "go"
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(db_path), str(key_path), name, str(go)])
        for name in ("p1", "p2")
    ]
    deadline = time.monotonic() + 60
    while not all(Path(f"{go}.{name}").exists() for name in ("p1", "p2")) and time.monotonic() < deadline:
        time.sleep(0.01)
    go.touch()
    assert [w.wait(timeout=120) for w in writers] == [0, 0]

    result = verify_audit(public_key=audit_public_key_text(key_path))
    assert result.ok, str(result)
    assert result.events == 400
    seqs = [row.seq for row in Event.select(Event.seq).order_by(Event.seq)]
    assert seqs == list(range(1, 401))
    subjects = [row.subject for row in Event.select(Event.subject).order_by(Event.seq)]
    assert subjects.count("p1") == subjects.count("p2") == 200
    assert sum(1 for _ in itertools.groupby(subjects)) > 4, "the writers did not overlap"
    assert result.checkpoints >= 8


def test_unwritable_database_raises_store_error(db, db_path: Path) -> None:
    log = AuditLog()
    log.append(EventType.SERVER_START)
    db.execute_sql("PRAGMA query_only = ON")
    with pytest.raises(StoreError, match="could not be written"):
        log.append(EventType.SESSION_OPEN)
    db.execute_sql("PRAGMA query_only = OFF")
    assert Event.select().count() == 1


def test_removed_data_directory_raises_store_error(db, db_path: Path) -> None:
    log = AuditLog()
    log.append(EventType.SERVER_START)
    db.close()
    shutil.rmtree(db_path.parent)
    with pytest.raises(StoreError):
        log.append(EventType.SESSION_OPEN)


def test_failed_checkpoint_rolls_back_its_event(db, key_path: Path) -> None:
    """An event and the checkpoint it triggers commit together or not at all."""
    log = AuditLog(signing_key_path=key_path, checkpoint_every=2)
    log.append(EventType.SERVER_START)
    db.execute_sql(
        "CREATE TRIGGER refuse BEFORE INSERT ON audit_checkpoint BEGIN SELECT RAISE(ABORT, 'disk full'); END"
    )
    with pytest.raises(StoreError, match="disk full"):
        log.append(EventType.SESSION_OPEN)
    assert Event.select().count() == 1


@pytest.mark.parametrize(
    "details",
    [
        {"password": "hunter2"},
        {"Upstream-Token": "eyJhbGciOi"},
        {"target": {"auth": {"private_key": "-----BEGIN OPENSSH PRIVATE KEY-----"}}},
        {"attempts": [{"credential": "s3cret"}]},
        {"client_secret": "abc"},
    ],
)
def test_secret_details_are_refused_and_not_written(db, details: dict) -> None:
    log = AuditLog()
    with pytest.raises(SecretInDetails) as caught:
        log.append(EventType.AUTH_FAILURE, details=details)
    assert isinstance(caught.value, StoreError)
    assert "hunter2" not in str(caught.value) and "s3cret" not in str(caught.value)
    assert Event.select().count() == 0


@pytest.mark.parametrize(
    "details",
    [
        {"token_sha256": "ab" * 32},
        {"token": "0123456789abcdef" * 4},
        {"credential_fingerprint": "SHA256:" + "A" * 43},
        {"token_id": "jti-42", "password_set": True, "credential": None},
        {"credential_kind": "key"},
    ],
)
def test_derived_values_of_secrets_are_allowed(db, details: dict) -> None:
    assert AuditLog().append(EventType.AUTH_SUCCESS, details=details).details == details


@pytest.mark.parametrize(
    ("type_", "details"),
    [
        ("Session Open", {}),
        ("session.open", {"when": datetime.now(UTC)}),
        ("session.open", {"x": float("nan")}),
    ],
)
def test_events_that_cannot_be_hashed_are_refused(db, type_: str, details: dict) -> None:
    with pytest.raises(StoreError):
        AuditLog().append(type_, details=details)


def test_export_since(db) -> None:
    moments = iter(datetime(2025, 1, 1, tzinfo=UTC) + timedelta(hours=h) for h in range(3))
    log = AuditLog(clock=lambda: next(moments))
    for kind in (EventType.SERVER_START, EventType.AUTH_SUCCESS, EventType.SESSION_OPEN):
        log.append(kind, subject="agent-7")
    exported = list(export_events())
    assert [e["seq"] for e in exported] == [1, 2, 3]
    assert set(exported[0]) == {
        "seq",
        "time",
        "type",
        "subject",
        "target",
        "session_id",
        "details",
        "prev_hash",
        "hash",
    }
    later = list(export_events(datetime(2025, 1, 1, 1)))
    assert [e["type"] for e in later] == [EventType.AUTH_SUCCESS, EventType.SESSION_OPEN]


async def test_usable_from_asyncio_through_threads(db, key_path: Path) -> None:
    log = AuditLog(signing_key_path=key_path, checkpoint_every=10)
    appends = [asyncio.to_thread(log.append, EventType.SESSION_OPEN, session_id=f"s{n}") for n in range(30)]
    events = await asyncio.gather(*appends)
    assert sorted(e.seq for e in events) == list(range(1, 31))
    assert verify_audit().ok


def test_append_inside_a_callers_transaction_commits_with_it(db) -> None:
    log = AuditLog()
    with db.atomic() as txn:
        log.append(EventType.APPROVAL_APPROVED, subject="alice")
        txn.rollback()
    assert Event.select().count() == 0
    with db.atomic():
        log.append(EventType.APPROVAL_APPROVED, subject="alice")
    assert Event.select().count() == 1 and verify_audit().ok
