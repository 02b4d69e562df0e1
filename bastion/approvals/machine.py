"""The approval state machine: plain records in, the next record and the audit event that records it out.

Pure: no database, no asyncio, no clock of its own (every function takes `now`). The queue loads a request,
asks this module for the step, and writes the step's record and event in one transaction; so every rule of
segregation of duties lives here and is tested here with a fake clock.

States::

    PENDING ──approve (N distinct approvers)──▶ APPROVED ──use (once)──▶ USED
       │  ├──deny──▶ DENIED                        └──use deadline passes──▶ EXPIRED
       │  ├──withdraw (requester hung up)──▶ WITHDRAWN
       └──wait deadline passes, or the waiter gives up──▶ EXPIRED

Deadlines. `wait_deadline` (created + wait timeout) bounds how long a request can be approved, whether or not
an agent is still holding its channel: a no-wait agent (`BASTION_WAIT=0`) gets its id at once and the request
stays approvable for the same window a held agent would have waited. `use_deadline` (approved_at + lifetime)
then bounds how long the approval can be used. A request whose deadline has passed is EXPIRED as soon as
anything touches it (`due` gives that step), so an approver can never approve a stale request and an agent can
never use a stale approval.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, NamedTuple

from bastion.audit.chain import EventType, format_time
from bastion.errors import Refused

SYSTEM_ACTOR = "bastion"


class State(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"
    USED = "used"
    WITHDRAWN = "withdrawn"


class ApprovalError(Refused):
    """An approval action was refused; the message is one line naming the request id, never more than the rule."""


class Approver(NamedTuple):
    subject: str
    comment: str | None
    time: datetime


@dataclass(frozen=True)
class Approval:
    """One request for approval and everything decided about it so far."""

    id: str
    requester: str
    target: str
    command: str
    kind: str
    verdict: str | None
    reasons: tuple[str, ...]
    rule: str
    required: int
    lifetime_s: float
    state: State
    created: datetime
    wait_deadline: datetime
    approved_at: datetime | None = None
    use_deadline: datetime | None = None
    approvers: tuple[Approver, ...] = ()
    denied_by: str | None = None
    denial_reason: str | None = None
    session_id: str | None = None
    closed_at: datetime | None = None

    @property
    def approver_subjects(self) -> tuple[str, ...]:
        return tuple(a.subject for a in self.approvers)


@dataclass(frozen=True)
class Step:
    """A transition: the record after it and the audit event (type, acting subject, details) that records it."""

    approval: Approval
    event: str
    actor: str
    details: dict[str, Any] = field(default_factory=dict)
    session_id: str | None = None


def open_request(
    *,
    id: str,
    requester: str,
    target: str,
    command: str,
    kind: str,
    verdict: str | None,
    reasons: list[str] | tuple[str, ...],
    rule: str,
    required: int,
    wait_timeout_s: float,
    lifetime_s: float,
    session_id: str | None,
    now: datetime,
) -> Step:
    """A new PENDING request; bad numbers are the caller's bug (ValueError), not the user's."""
    if required < 1 or wait_timeout_s <= 0 or lifetime_s <= 0:
        raise ValueError("required, wait_timeout_s and lifetime_s must be positive")
    approval = Approval(
        id=id,
        requester=requester,
        target=target,
        command=command,
        kind=kind,
        verdict=verdict,
        reasons=tuple(reasons),
        rule=rule,
        required=required,
        lifetime_s=lifetime_s,
        state=State.PENDING,
        created=now,
        wait_deadline=now + timedelta(seconds=wait_timeout_s),
        session_id=session_id,
    )
    details = _details(
        approval,
        verdict=verdict,
        reasons=list(approval.reasons),
        required=required,
        wait_deadline=format_time(approval.wait_deadline),
        lifetime_s=lifetime_s,
    )
    return Step(approval, EventType.APPROVAL_REQUESTED, requester, details, session_id)


def state_at(state: State, wait_deadline: datetime, use_deadline: datetime | None, now: datetime) -> State:
    """The state as it is at `now`, counting a passed deadline as EXPIRED even before anyone has recorded it."""
    if state is State.PENDING and now >= wait_deadline:
        return State.EXPIRED
    if state is State.APPROVED and use_deadline is not None and now >= use_deadline:
        return State.EXPIRED
    return state


def effective_state(approval: Approval, now: datetime) -> State:
    return state_at(approval.state, approval.wait_deadline, approval.use_deadline, now)


def due(approval: Approval, now: datetime) -> Step | None:
    """The expiry step when a deadline has passed and nobody has recorded it yet, else None."""
    if effective_state(approval, now) is approval.state:
        return None
    return _expired(approval, now, deadline="wait" if approval.state is State.PENDING else "use")


def approve(approval: Approval, *, approver: str, comment: str | None, may_approve: bool, now: datetime) -> Step:
    """One approver's yes; the request becomes APPROVED when `required` distinct subjects have said it."""
    _require_pending(approval, now)
    if approver == approval.requester:
        raise ApprovalError(f"you cannot approve your own request {approval.id}")
    if not may_approve:
        raise ApprovalError(f"you may not approve requests for {approval.target}")
    if approver in approval.approver_subjects:
        raise ApprovalError(f"you already approved {approval.id}; it needs {approval.required} distinct approvers")
    approvers = (*approval.approvers, Approver(approver, comment, now))
    completed = len(approvers) >= approval.required
    after = replace(approval, approvers=approvers)
    if completed:
        use_deadline = now + timedelta(seconds=approval.lifetime_s)
        after = replace(after, state=State.APPROVED, approved_at=now, use_deadline=use_deadline)
    details = _details(
        after,
        approver=approver,
        comment=comment,
        count=len(approvers),
        required=approval.required,
        completed=completed,
    )
    if completed:
        details["use_deadline"] = format_time(after.use_deadline)
    return Step(after, EventType.APPROVAL_APPROVED, approver, details, approval.session_id)


def deny(approval: Approval, *, approver: str, reason: str, may_approve: bool, now: datetime) -> Step:
    """One approver's no ends the request, with their reason (which the held agent is shown)."""
    _require_pending(approval, now)
    if approver == approval.requester:
        raise ApprovalError(f"you cannot decide your own request {approval.id}")
    if not may_approve:
        raise ApprovalError(f"you may not approve requests for {approval.target}")
    reason = " ".join(reason.split())
    if not reason:
        raise ApprovalError(f"denying {approval.id} needs a reason")
    after = replace(approval, state=State.DENIED, denied_by=approver, denial_reason=reason, closed_at=now)
    return Step(
        after,
        EventType.APPROVAL_DENIED,
        approver,
        _details(after, approver=approver, reason=reason),
        approval.session_id,
    )


def withdraw(approval: Approval, *, requester: str, now: datetime) -> Step:
    """The requester hung up while held: the request can no longer be approved."""
    if requester != approval.requester:
        raise ApprovalError(f"request {approval.id} is not yours to withdraw")
    _require_pending(approval, now)
    after = replace(approval, state=State.WITHDRAWN, closed_at=now)
    return Step(after, EventType.APPROVAL_WITHDRAWN, requester, _details(after), approval.session_id)


def expire(approval: Approval, *, now: datetime) -> Step | None:
    """The held agent gave up waiting (its timer is the wait timeout, so this is at or near the deadline).

    None when the request is already EXPIRED (a sweep got there first): the waiter's answer is the same.
    """
    step = due(approval, now)
    if step is not None or approval.state is State.EXPIRED:
        return step
    if approval.state is not State.PENDING:
        raise ApprovalError(_already(approval))
    return _expired(approval, now, deadline="wait")


def use(
    approval: Approval,
    *,
    requester: str,
    target: str,
    command: str,
    session_id: str | None,
    now: datetime,
    kind: str | None = None,
) -> Step:
    """Consume the approval: only once, only in time, only by its requester for its target and exact command.

    With `kind`, the request kind must match too: an approval of the text "(interactive shell)" given to an exec
    request must not open a shell.
    """
    state = effective_state(approval, now)
    if state is not State.APPROVED:
        raise ApprovalError(_unusable(approval.id, state))
    if requester != approval.requester:
        raise ApprovalError(f"approval {approval.id} was granted to someone else")
    if target != approval.target:
        raise ApprovalError(f"approval {approval.id} was granted for a different target")
    if command != approval.command or (kind is not None and kind != approval.kind):
        raise ApprovalError(f"approval {approval.id} was granted for a different command")
    after = replace(approval, state=State.USED, closed_at=now)
    details = _details(after, request_session_id=approval.session_id)
    return Step(after, EventType.APPROVAL_USED, requester, details, session_id or approval.session_id)


def _require_pending(approval: Approval, now: datetime) -> None:
    state = effective_state(approval, now)
    if state is not State.PENDING:
        raise ApprovalError(_already(replace(approval, state=state)))


def _already(approval: Approval) -> str:
    phrase = {
        State.APPROVED: "is already approved",
        State.DENIED: "is already denied",
        State.EXPIRED: "has expired",
        State.USED: "was already used",
        State.WITHDRAWN: "was withdrawn",
    }[approval.state]
    return f"request {approval.id} {phrase}"


def _unusable(id: str, state: State) -> str:
    phrase = {
        State.PENDING: "is not approved yet",
        State.DENIED: "was denied",
        State.EXPIRED: "has expired",
        State.USED: "was already used",
        State.WITHDRAWN: "was withdrawn",
    }[state]
    return f"approval {id} {phrase}"


def _expired(approval: Approval, now: datetime, *, deadline: str) -> Step:
    after = replace(approval, state=State.EXPIRED, closed_at=now)
    return Step(
        after, EventType.APPROVAL_EXPIRED, SYSTEM_ACTOR, _details(after, deadline=deadline), approval.session_id
    )


def _details(approval: Approval, **extra: Any) -> dict[str, Any]:
    """What every approval event says: which request, for what, under which rule; never a credential."""
    return {
        "approval_id": approval.id,
        "requester": approval.requester,
        "command": approval.command,
        "kind": approval.kind,
        "rule": approval.rule,
        "state": str(approval.state),
        **extra,
    }
