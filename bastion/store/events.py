"""Audit events and checkpoints in the database, reached through small functions that speak in plain records.

`seq` is the events table's primary key, so two writers that somehow computed the same next seq cannot both
commit: the second gets an IntegrityError and the log retries. Details are stored as canonical JSON text.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import peewee

from bastion.audit.chain import CheckpointRecord, EventRecord, canonical_json
from bastion.store.db import BaseModel, register


@register
class Event(BaseModel):
    seq = peewee.BigIntegerField(primary_key=True)
    time = peewee.CharField(max_length=32, index=True)
    type = peewee.CharField(max_length=64, index=True)
    subject = peewee.TextField(null=True)
    target = peewee.TextField(null=True)
    session_id = peewee.CharField(max_length=128, null=True, index=True)
    details = peewee.TextField()
    prev_hash = peewee.CharField(max_length=64)
    hash = peewee.CharField(max_length=64)

    class Meta:
        table_name = "audit_event"


@register
class Checkpoint(BaseModel):
    seq = peewee.BigIntegerField(unique=True)
    hash = peewee.CharField(max_length=64)
    time = peewee.CharField(max_length=32)
    signature = peewee.TextField()
    key_fingerprint = peewee.CharField(max_length=64)
    public_key = peewee.TextField()

    class Meta:
        table_name = "audit_checkpoint"


def _details_object(text: str) -> dict:
    """Stored details decode to an object; anything else was tampered with: fail the hash, not crash."""
    try:
        value = json.loads(text)
    except ValueError:
        return {"_undecodable": text}
    return value if isinstance(value, dict) else {"_not_an_object": value}


def _event_record(row: Event) -> EventRecord:
    return EventRecord(
        seq=row.seq,
        time=row.time,
        type=row.type,
        subject=row.subject,
        target=row.target,
        session_id=row.session_id,
        details=_details_object(row.details),
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


def _checkpoint_record(row: Checkpoint) -> CheckpointRecord:
    return CheckpointRecord(
        seq=row.seq,
        hash=row.hash,
        time=row.time,
        signature=row.signature,
        key_fingerprint=row.key_fingerprint,
        public_key=row.public_key,
    )


def insert_events(events: list[EventRecord]) -> None:
    """One INSERT per hundred events (a batch is one statement; SQLite limits the parameters per statement)."""
    rows = [{**event.as_dict(), "details": canonical_json(event.details)} for event in events]
    for chunk in peewee.chunked(rows, 100):
        Event.insert_many(chunk).execute()


def tail_event() -> EventRecord | None:
    """The newest event, or None for an empty log."""
    row = Event.select().order_by(Event.seq.desc()).first()
    return _event_record(row) if row is not None else None


def iter_events(since_time: str | None = None) -> Iterator[EventRecord]:
    """Events in seq order, streamed; `since_time` keeps those whose time text is at or after it."""
    query = Event.select().order_by(Event.seq)
    if since_time is not None:
        query = query.where(Event.time >= since_time)
    for row in query.iterator():
        yield _event_record(row)


def insert_checkpoint(cp: CheckpointRecord) -> None:
    Checkpoint.insert(
        seq=cp.seq,
        hash=cp.hash,
        time=cp.time,
        signature=cp.signature,
        key_fingerprint=cp.key_fingerprint,
        public_key=cp.public_key,
    ).execute()


def last_checkpoint_seq() -> int:
    """The seq the newest checkpoint covers, 0 when there is none."""
    value = Checkpoint.select(peewee.fn.MAX(Checkpoint.seq)).scalar()
    return int(value or 0)


def list_checkpoints() -> list[CheckpointRecord]:
    return [_checkpoint_record(row) for row in Checkpoint.select().order_by(Checkpoint.seq)]
