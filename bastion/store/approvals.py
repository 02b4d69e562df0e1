"""Approval requests and the individual approver decisions, reached through small functions over plain records.

Several bastion processes share these rows, so every change happens inside `locked_transaction`, which makes
the read-modify-write of one request exclusive across processes:

- SQLite: `BEGIN IMMEDIATE` takes the database's write lock before the row is read (waiting up to the
  connection's busy_timeout), so no other process can change it until commit.
- PostgreSQL: an ordinary transaction, and `load(..., for_update=True)` reads the row with
  `SELECT … FOR UPDATE`, so a second process's read of the same row waits for the first's commit.

Times are stored as the audit log's fixed-width UTC text, so text order is time order on every database.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

import peewee

from bastion.approvals.machine import Approval, Approver, State
from bastion.audit.chain import format_time
from bastion.errors import StoreError
from bastion.store.db import BaseModel, database, register

APPROVE = "approve"
DENY = "deny"


@register
class ApprovalRow(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=32)
    requester = peewee.TextField()
    target = peewee.TextField()
    command = peewee.TextField()
    kind = peewee.CharField(max_length=32)
    verdict = peewee.CharField(max_length=32, null=True)
    reasons = peewee.TextField(default="[]")  # JSON list of text
    rule = peewee.TextField()
    required = peewee.IntegerField()
    lifetime_s = peewee.FloatField()
    state = peewee.CharField(max_length=16, index=True)
    created = peewee.CharField(max_length=32, index=True)
    wait_deadline = peewee.CharField(max_length=32)
    approved_at = peewee.CharField(max_length=32, null=True)
    use_deadline = peewee.CharField(max_length=32, null=True)
    session_id = peewee.CharField(max_length=128, null=True)
    closed_at = peewee.CharField(max_length=32, null=True)

    class Meta:
        table_name = "approvals"


@register
class ApprovalDecisionRow(BaseModel):
    """One approver's approve or deny; a subject counts once per decision (the unique index backs the machine)."""

    approval = peewee.ForeignKeyField(ApprovalRow, backref="decisions", on_delete="CASCADE")
    subject = peewee.TextField()
    decision = peewee.CharField(max_length=16)
    comment = peewee.TextField(null=True)  # the approver's comment, or the reason for a denial
    time = peewee.CharField(max_length=32)

    class Meta:
        table_name = "approval_decisions"
        indexes = ((("approval", "subject", "decision"), True),)


def locked_transaction() -> AbstractContextManager[Any]:
    """One short write transaction that owns the rows it reads (see the module docstring)."""
    db = database.obj
    if db is None:
        raise StoreError("approval store is not connected")
    if isinstance(db, peewee.SqliteDatabase):
        return db.atomic("IMMEDIATE")
    return db.atomic()


def exists(approval_id: str) -> bool:
    return ApprovalRow.select().where(ApprovalRow.id == approval_id).exists()


def insert(approval: Approval) -> None:
    ApprovalRow.insert(
        id=approval.id,
        requester=approval.requester,
        target=approval.target,
        command=approval.command,
        kind=approval.kind,
        verdict=approval.verdict,
        reasons=json.dumps(list(approval.reasons)),
        rule=approval.rule,
        required=approval.required,
        lifetime_s=approval.lifetime_s,
        state=str(approval.state),
        created=format_time(approval.created),
        wait_deadline=format_time(approval.wait_deadline),
        session_id=approval.session_id,
    ).execute()


def load(approval_id: str, *, for_update: bool = False) -> Approval | None:
    """The request with its decisions; `for_update` locks the row on databases that can (PostgreSQL)."""
    query = ApprovalRow.select().where(ApprovalRow.id == approval_id)
    if for_update and database.obj is not None and database.obj.for_update:
        query = query.for_update()
    row = query.first()
    if row is None:
        return None
    return _approval(row, _decisions([row.id]).get(row.id, []))


def load_state(approval_id: str) -> tuple[State, datetime, datetime | None] | None:
    """Just the state and both deadlines, for cheap polling by held commands."""
    row = (
        ApprovalRow.select(ApprovalRow.state, ApprovalRow.wait_deadline, ApprovalRow.use_deadline)
        .where(ApprovalRow.id == approval_id)
        .first()
    )
    if row is None:
        return None
    return State(row.state), _time(row.wait_deadline), _maybe_time(row.use_deadline)


def decided_among(approval_ids: list[str]) -> list[str]:
    """Those of `approval_ids` no longer PENDING in the database (one query for every held request)."""
    query = ApprovalRow.select(ApprovalRow.id).where(
        ApprovalRow.id.in_(approval_ids) & (ApprovalRow.state != str(State.PENDING)))
    return [row.id for row in query]


def save(before: Approval, after: Approval) -> None:
    """Write what a transition changed: the request's state and times, and any new decision."""
    ApprovalRow.update(
        state=str(after.state),
        approved_at=_maybe_text(after.approved_at),
        use_deadline=_maybe_text(after.use_deadline),
        closed_at=_maybe_text(after.closed_at),
    ).where(ApprovalRow.id == after.id).execute()
    for approver in after.approvers[len(before.approvers) :]:
        _insert_decision(after.id, approver.subject, APPROVE, approver.comment, approver.time)
    if after.denied_by is not None and before.denied_by is None:
        _insert_decision(after.id, after.denied_by, DENY, after.denial_reason, after.closed_at or after.created)


def due_ids(now: datetime) -> list[str]:
    """Requests whose wait or use deadline has passed but that are not yet recorded as EXPIRED."""
    text = format_time(now)
    pending_due = (ApprovalRow.state == str(State.PENDING)) & (ApprovalRow.wait_deadline <= text)
    approved_due = (ApprovalRow.state == str(State.APPROVED)) & (ApprovalRow.use_deadline <= text)
    query = ApprovalRow.select(ApprovalRow.id).where(pending_due | approved_due).order_by(ApprovalRow.created)
    return [row.id for row in query]


def open_requests_of(requester: str, now: datetime) -> int:
    """How many of `requester`'s requests wait for a decision, or approved, wait to be used."""
    text = format_time(now)
    waiting = (ApprovalRow.state == str(State.PENDING)) & (ApprovalRow.wait_deadline > text)
    unused = (ApprovalRow.state == str(State.APPROVED)) & (ApprovalRow.use_deadline > text)
    return ApprovalRow.select().where((ApprovalRow.requester == requester) & (waiting | unused)).count()


def pending() -> list[Approval]:
    """PENDING requests, newest first."""
    return _many(ApprovalRow.select().where(ApprovalRow.state == str(State.PENDING)))


def recent(limit: int) -> list[Approval]:
    """Requests in any state, newest first."""
    return _many(ApprovalRow.select().limit(limit))


def _many(query: peewee.ModelSelect) -> list[Approval]:
    rows = list(query.order_by(ApprovalRow.created.desc(), ApprovalRow.id))
    decisions = _decisions([row.id for row in rows])
    return [_approval(row, decisions.get(row.id, [])) for row in rows]


def _decisions(ids: Iterable[str]) -> dict[str, list[ApprovalDecisionRow]]:
    wanted = list(ids)
    found: dict[str, list[ApprovalDecisionRow]] = {}
    if not wanted:
        return found
    query = (
        ApprovalDecisionRow.select()
        .where(ApprovalDecisionRow.approval.in_(wanted))
        .order_by(ApprovalDecisionRow.time, ApprovalDecisionRow.id)
    )
    for decision in query:
        found.setdefault(decision.approval_id, []).append(decision)
    return found


def _insert_decision(approval_id: str, subject: str, decision: str, comment: str | None, when: datetime) -> None:
    ApprovalDecisionRow.insert(
        approval=approval_id, subject=subject, decision=decision, comment=comment, time=format_time(when)
    ).execute()


def _approval(row: ApprovalRow, decisions: list[ApprovalDecisionRow]) -> Approval:
    approvers = tuple(Approver(d.subject, d.comment, _time(d.time)) for d in decisions if d.decision == APPROVE)
    denial = next((d for d in decisions if d.decision == DENY), None)
    return Approval(
        id=row.id,
        requester=row.requester,
        target=row.target,
        command=row.command,
        kind=row.kind,
        verdict=row.verdict,
        reasons=tuple(json.loads(row.reasons)),
        rule=row.rule,
        required=row.required,
        lifetime_s=row.lifetime_s,
        state=State(row.state),
        created=_time(row.created),
        wait_deadline=_time(row.wait_deadline),
        approved_at=_maybe_time(row.approved_at),
        use_deadline=_maybe_time(row.use_deadline),
        approvers=approvers,
        denied_by=denial.subject if denial else None,
        denial_reason=denial.comment if denial else None,
        session_id=row.session_id,
        closed_at=_maybe_time(row.closed_at),
    )


def _time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def _maybe_time(text: str | None) -> datetime | None:
    return None if text is None else _time(text)


def _maybe_text(moment: datetime | None) -> str | None:
    return None if moment is None else format_time(moment)
