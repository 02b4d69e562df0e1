"""Session rows: written when a channel opens and again when it closes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import peewee

from bastion.errors import NotFound
from bastion.store.db import BaseModel, UtcDateTimeField, register


@register
class SessionRow(BaseModel):
    id = peewee.CharField(primary_key=True)
    subject = peewee.CharField()
    target = peewee.CharField()
    kind = peewee.CharField()  # exec, shell
    command = peewee.TextField(null=True)
    started = UtcDateTimeField()
    ended = UtcDateTimeField(null=True)
    exit_status = peewee.IntegerField(null=True)
    exit_signal = peewee.CharField(null=True)
    recording = peewee.CharField()
    recording_sha256 = peewee.CharField(null=True)
    recording_size = peewee.IntegerField(null=True)
    pid = peewee.IntegerField(null=True)  # the bastion process serving it, so `sessions kill` can reach it
    kill_requested = peewee.BooleanField(default=False)

    class Meta:
        table_name = "sessions"


@dataclass(frozen=True)
class SessionInfo:
    id: str
    subject: str
    target: str
    kind: str
    command: str | None
    started: datetime
    ended: datetime | None
    exit_status: int | None
    exit_signal: str | None
    recording: str
    recording_sha256: str | None
    recording_size: int | None


def _info(row: SessionRow) -> SessionInfo:
    return SessionInfo(
        id=row.id,
        subject=row.subject,
        target=row.target,
        kind=row.kind,
        command=row.command,
        started=row.started,
        ended=row.ended,
        exit_status=row.exit_status,
        exit_signal=row.exit_signal,
        recording=row.recording,
        recording_sha256=row.recording_sha256,
        recording_size=row.recording_size,
    )


def open_session(
    session_id: str, *, subject: str, target: str, kind: str, command: str | None, recording: str, pid: int
) -> None:
    SessionRow.create(
        id=session_id,
        subject=subject,
        target=target,
        kind=kind,
        command=command,
        started=datetime.now(UTC),
        recording=recording,
        pid=pid,
    )


def close_session(
    session_id: str, *, exit_status: int | None, exit_signal: str | None, sha256: str, size: int
) -> None:
    SessionRow.update(
        ended=datetime.now(UTC),
        exit_status=exit_status,
        exit_signal=exit_signal,
        recording_sha256=sha256,
        recording_size=size,
    ).where(SessionRow.id == session_id).execute()


def get(session_id: str) -> SessionInfo:
    row = SessionRow.get_or_none(SessionRow.id == session_id)
    if row is None:
        raise NotFound(f"no session {session_id}")
    return _info(row)


def recent(limit: int = 50) -> list[SessionInfo]:
    query = SessionRow.select().order_by(SessionRow.started.desc()).limit(limit)
    return [_info(row) for row in query]


def request_kill(session_id: str) -> bool:
    """Marks a live session to be ended by whichever bastion process serves it; False when it is not live."""
    query = SessionRow.update(kill_requested=True).where((SessionRow.id == session_id) & SessionRow.ended.is_null())
    return query.execute() > 0


def kills_for(pid: int) -> list[str]:
    """Live sessions of process `pid` that an administrator asked to end."""
    query = SessionRow.select(SessionRow.id).where(
        (SessionRow.pid == pid) & SessionRow.kill_requested & SessionRow.ended.is_null())
    return [row.id for row in query]
