"""The store-backed approval queue: the pure machine's steps, written with their audit events, shared by processes.

Every transition is one short write transaction (`bastion.store.approvals.locked_transaction`) that reads the
request, asks the machine for the step, writes the new record and appends the audit event, then commits. The
event is appended inside that transaction, so a request never changes without its event and an event is never
written for a change that did not happen: if the append fails (StoreError), the transaction rolls back and the
state is as before (fail closed). Because the transaction owns the row, two approvers racing, or two
processes racing to use one approval, are serialised: the second sees the first's result and is refused.

A deadline that has passed is recorded (EXPIRED, with its event) by whatever touches the request next, in its own
committed step, before the action is judged; so an approver who arrives late is told "has expired" and the
expiry is in the audit log even though the approval itself was refused.

Blocking and short; from asyncio call it through `asyncio.to_thread`.
"""

from __future__ import annotations

import base64
import logging
import secrets
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

import peewee

from bastion.approvals import machine
from bastion.approvals.machine import Approval, ApprovalError, State, Step
from bastion.errors import NotFound, StoreError
from bastion.store import approvals as store

log = logging.getLogger(__name__)

_ID_BYTES = 7  # 56 random bits, of which the 10 base32 characters keep 50
# Requests one requester may have open at once (waiting for a decision, or approved and not yet used).
MAX_OPEN_PER_REQUESTER = 20
_ID_LENGTH = 10


class AuditAppend(Protocol):
    """`AuditLog.append`: writes one event or raises StoreError."""

    def __call__(
        self,
        type: str,
        *,
        subject: str | None = ...,
        target: str | None = ...,
        session_id: str | None = ...,
        details: Mapping[str, Any] | None = ...,
    ) -> Any: ...


def new_id() -> str:
    """Short, unguessable and URL-safe: 10 lower-case base32 characters from the OS's random source."""
    return base64.b32encode(secrets.token_bytes(_ID_BYTES)).decode().lower()[:_ID_LENGTH]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class ApprovalQueue:
    """Requests for approval, their decisions and their use, in the shared database.

    Needs `bastion.store.db.connect` to have been called. `subscribe` lets the gateway wake a command held in
    this process as soon as a transition commits here; commands held by other processes poll `state`.
    """

    def __init__(
        self,
        audit_append: AuditAppend,
        *,
        clock: Callable[[], datetime] = _utcnow,
        id_factory: Callable[[], str] = new_id,
    ) -> None:
        self._append = audit_append
        self._clock = clock
        self._new_id = id_factory
        self._listeners: list[Callable[[Approval], None]] = []
        # One connection per thread: without this, this process's own threads would only queue on the database lock.
        self._mutex = threading.Lock()

    def subscribe(self, listener: Callable[[Approval], None]) -> None:
        """Call `listener(approval)` after every transition this queue commits (in the committing thread)."""
        self._listeners.append(listener)

    def request(
        self,
        *,
        requester: str,
        target: str,
        command: str,
        kind: str,
        verdict: str | None,
        reasons: list[str],
        rule: str,
        required: int,
        wait_timeout_s: float,
        lifetime_s: float,
        session_id: str | None = None,
    ) -> Approval:
        """Record a new PENDING request (with its `approval.requested` event) and return it.

        ApprovalError when the requester already has MAX_OPEN_PER_REQUESTER requests open (waiting for a
        decision, or approved and not yet used): one agent in a loop cannot bury the approvers' queue.
        """

        def body() -> Step:
            if store.open_requests_of(requester, self._clock()) >= MAX_OPEN_PER_REQUESTER:
                raise ApprovalError(
                    f"{requester} already has {MAX_OPEN_PER_REQUESTER} requests open; wait for them to be "
                    "decided, used or expired")
            step = machine.open_request(
                id=self._unused_id(),
                requester=requester,
                target=target,
                command=command,
                kind=kind,
                verdict=verdict,
                reasons=reasons,
                rule=rule,
                required=required,
                wait_timeout_s=wait_timeout_s,
                lifetime_s=lifetime_s,
                session_id=session_id,
                now=self._clock(),
            )
            store.insert(step.approval)
            self._audit(step)
            return step

        step = self._write(body)
        self._notify(step.approval)
        return step.approval

    def get(self, approval_id: str) -> Approval:
        """The request as stored (a passed deadline shows once something records it; see `pending`)."""
        found = store.load(approval_id)
        if found is None:
            raise _not_found(approval_id)
        return found

    def state(self, approval_id: str) -> State:
        """The state now, a passed deadline counting as EXPIRED; one small read, for polling."""
        found = store.load_state(approval_id)
        if found is None:
            raise _not_found(approval_id)
        state, wait_deadline, use_deadline = found
        return machine.state_at(state, wait_deadline, use_deadline, self._clock())

    def decided_among(self, approval_ids: list[str]) -> list[str]:
        """Which of these requests were decided (by any process) since they were held."""
        return store.decided_among(approval_ids) if approval_ids else []

    def pending(self) -> list[Approval]:
        """PENDING requests, newest first, after recording every passed deadline (so none shown is stale)."""
        self.sweep()
        return store.pending()

    def recent(self, limit: int = 50) -> list[Approval]:
        """Requests in any state, newest first, after recording every passed deadline."""
        self.sweep()
        return store.recent(limit)

    def sweep(self) -> list[Approval]:
        """Record every passed wait or use deadline as EXPIRED (one step each); returns those it expired."""
        expired = []
        for approval_id in store.due_ids(self._clock()):
            approval = self._transition(approval_id, machine.due, settle=False)
            if approval is not None and approval.state is State.EXPIRED:
                expired.append(approval)
        return expired

    def approve(self, approval_id: str, *, approver: str, comment: str | None, may_approve: bool) -> Approval:
        """One approver's yes; APPROVED once `required` distinct approvers have given it."""
        return self._decide(
            approval_id,
            lambda a, now: machine.approve(a, approver=approver, comment=comment, may_approve=may_approve, now=now),
        )

    def deny(self, approval_id: str, *, approver: str, reason: str, may_approve: bool) -> Approval:
        """One approver's no: DENIED with their reason."""
        return self._decide(
            approval_id,
            lambda a, now: machine.deny(a, approver=approver, reason=reason, may_approve=may_approve, now=now),
        )

    def withdraw(self, approval_id: str, *, requester: str) -> Approval:
        """The requester hung up while held: WITHDRAWN, so nobody approves a command nobody waits for."""
        return self._decide(approval_id, lambda a, now: machine.withdraw(a, requester=requester, now=now))

    def expire(self, approval_id: str) -> Approval:
        """The held agent stopped waiting: EXPIRED (already EXPIRED is fine; decided is ApprovalError)."""
        return self._decide(approval_id, lambda a, now: machine.expire(a, now=now), settle=False)

    def use(
        self,
        approval_id: str,
        *,
        requester: str,
        target: str,
        command: str,
        kind: str | None = None,
        session_id: str | None = None,
    ) -> Approval:
        """Consume the approval once, just before its command runs; any other use is ApprovalError."""
        return self._decide(
            approval_id,
            lambda a, now: machine.use(
                a, requester=requester, target=target, command=command, kind=kind, session_id=session_id, now=now
            ),
        )

    def _decide(
        self, approval_id: str, decide: Callable[[Approval, datetime], Step | None], *, settle: bool = True
    ) -> Approval:
        approval = self._transition(approval_id, decide, settle=settle)
        if approval is None:
            raise _not_found(approval_id)
        return approval

    def _transition(
        self, approval_id: str, decide: Callable[[Approval, datetime], Step | None], *, settle: bool
    ) -> Approval | None:
        """Load, settle a passed deadline, decide, write: one transaction; a refusal raises after it commits.

        None when the request does not exist. The settling expiry is committed even when the action is then
        refused, since it happened either way.
        """
        refusal: ApprovalError | None = None
        changed: list[Approval] = []

        def body() -> Approval | None:
            nonlocal refusal
            current = store.load(approval_id, for_update=True)
            if current is None:
                return None
            now = self._clock()
            steps = [machine.due(current, now)] if settle else []
            try:
                steps.append(decide(_after(current, steps), now))
            except ApprovalError as err:
                refusal = err
            for step in steps:
                if step is not None:
                    store.save(current, step.approval)
                    self._audit(step)
                    current = step.approval
                    changed.append(current)
            return current

        result = self._write(body)
        for approval in changed:
            self._notify(approval)
        if refusal is not None:
            raise refusal
        return result

    def _audit(self, step: Step) -> None:
        self._append(
            step.event,
            subject=step.actor,
            target=step.approval.target,
            session_id=step.session_id,
            details=step.details,
        )

    def _write(self, body: Callable[[], Any]) -> Any:
        """Run `body` in the store's locked transaction; any database failure is StoreError (and a rollback)."""
        with self._mutex:
            try:
                with store.locked_transaction():
                    return body()
            except peewee.PeeweeException as err:
                raise StoreError(f"approval could not be recorded: {_first_line(err)}") from err

    def _unused_id(self) -> str:
        for _ in range(5):
            candidate = self._new_id()
            if not store.exists(candidate):
                return candidate
        raise StoreError("could not find an unused approval id")

    def _notify(self, approval: Approval) -> None:
        for listener in self._listeners:
            try:
                listener(approval)
            except Exception:
                log.exception("approval listener failed for %s", approval.id)


def _after(current: Approval, steps: list[Step | None]) -> Approval:
    last = steps[-1] if steps else None
    return last.approval if last is not None else current


def _not_found(approval_id: str) -> NotFound:
    return NotFound(f"no approval request {approval_id}")


def _first_line(err: Exception) -> str:
    return (str(err).splitlines() or [type(err).__name__])[0]
