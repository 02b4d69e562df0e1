"""The store-backed approval queue on a real SQLite file with the real audit log: every step is one event."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta

import pytest

from bastion.approvals import Approval, ApprovalError, ApprovalQueue, State
from bastion.approvals.queue import MAX_OPEN_PER_REQUESTER
from bastion.audit.log import AuditLog
from bastion.audit.verify import verify_audit
from bastion.errors import NotFound, StoreError
from bastion.store import events
from bastion.store.approvals import ApprovalDecisionRow, ApprovalRow

WAIT = 300.0
LIFETIME = 600.0


class Clock:
    """A settable clock, so deadlines pass without sleeping."""

    def __init__(self) -> None:
        self.now = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def audit(db) -> AuditLog:
    return AuditLog()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def queue(audit: AuditLog, clock: Clock) -> ApprovalQueue:
    return ApprovalQueue(audit.append, clock=clock)


def ask(queue: ApprovalQueue, required: int = 1, command: str = "touch /tmp/x", **kw) -> Approval:
    fields = dict(
        requester="agent-7",
        target="web-1",
        command=command,
        kind="WRITE",
        verdict="WRITE",
        reasons=["touch writes"],
        rule="reader-write-approve",
        required=required,
        wait_timeout_s=WAIT,
        lifetime_s=LIFETIME,
        session_id="s-1",
    )
    fields.update(kw)
    return queue.request(**fields)


def event_types() -> list[str]:
    return [e.type for e in events.iter_events()]


def approval_events() -> list[events.EventRecord]:
    return [e for e in events.iter_events() if e.type.startswith("approval.")]


def test_ids_are_short_url_safe_and_distinct(queue: ApprovalQueue) -> None:
    ids = {ask(queue, requester=f"agent-{n}").id for n in range(50)}
    assert len(ids) == 50
    assert all(re.fullmatch(r"[a-z2-7]{10}", i) for i in ids)


def test_a_request_is_stored_with_its_event(queue: ApprovalQueue, clock: Clock) -> None:
    a = ask(queue)
    assert queue.get(a.id) == a
    assert (
        a.state is State.PENDING and a.created == clock.now and a.wait_deadline == clock.now + timedelta(seconds=WAIT)
    )
    assert a.reasons == ("touch writes",) and a.session_id == "s-1"
    [event] = approval_events()
    assert (event.type, event.subject, event.target, event.session_id) == (
        "approval.requested",
        "agent-7",
        "web-1",
        "s-1",
    )
    assert event.details["approval_id"] == a.id and event.details["command"] == "touch /tmp/x"
    assert event.details["rule"] == "reader-write-approve" and event.details["kind"] == "WRITE"


def test_unknown_ids_are_not_found(queue: ApprovalQueue) -> None:
    for call in (
        lambda: queue.get("nope"),
        lambda: queue.state("nope"),
        lambda: queue.approve("nope", approver="alice", comment=None, may_approve=True),
        lambda: queue.use("nope", requester="agent-7", target="web-1", command="x"),
    ):
        with pytest.raises(NotFound, match="no approval request nope"):
            call()


def test_approve_then_use_once_with_every_step_in_the_chain(queue: ApprovalQueue, clock: Clock) -> None:
    a = ask(queue, required=2)
    clock.advance(5)
    first = queue.approve(a.id, approver="alice", comment="looks fine", may_approve=True)
    assert first.state is State.PENDING and queue.state(a.id) is State.PENDING
    with pytest.raises(ApprovalError, match="you already approved"):
        queue.approve(a.id, approver="alice", comment=None, may_approve=True)
    clock.advance(5)
    second = queue.approve(a.id, approver="bob", comment=None, may_approve=True)
    assert second.state is State.APPROVED and second.use_deadline == clock.now + timedelta(seconds=LIFETIME)
    assert queue.get(a.id) == second
    assert [(s, c) for s, c, _ in second.approvers] == [("alice", "looks fine"), ("bob", None)]
    used = queue.use(a.id, requester="agent-7", target="web-1", command="touch /tmp/x", session_id="s-2")
    assert used.state is State.USED
    with pytest.raises(ApprovalError, match="was already used"):
        queue.use(a.id, requester="agent-7", target="web-1", command="touch /tmp/x")
    steps = [(e.type, e.subject, e.details.get("count"), e.details.get("completed")) for e in approval_events()]
    assert steps == [
        ("approval.requested", "agent-7", None, None),
        ("approval.approved", "alice", 1, False),
        ("approval.approved", "bob", 2, True),
        ("approval.used", "agent-7", None, None),
    ]
    assert approval_events()[-1].session_id == "s-2"
    assert verify_audit().ok


def test_refusals_change_nothing_and_write_nothing(queue: ApprovalQueue) -> None:
    a = ask(queue)
    before = event_types()
    with pytest.raises(ApprovalError, match="your own request"):
        queue.approve(a.id, approver="agent-7", comment=None, may_approve=True)
    with pytest.raises(ApprovalError, match="may not approve requests for web-1"):
        queue.approve(a.id, approver="mallory", comment=None, may_approve=False)
    with pytest.raises(ApprovalError, match="is not approved yet"):
        queue.use(a.id, requester="agent-7", target="web-1", command="touch /tmp/x")
    assert queue.get(a.id) == a and event_types() == before
    assert ApprovalDecisionRow.select().count() == 0


def test_a_denial_is_kept_with_its_reason(queue: ApprovalQueue, audit: AuditLog, clock: Clock) -> None:
    a = ask(queue)
    denied = queue.deny(a.id, approver="bob", reason="change freeze", may_approve=True)
    reloaded = ApprovalQueue(audit.append, clock=clock).get(a.id)
    assert reloaded == denied and (reloaded.denied_by, reloaded.denial_reason) == ("bob", "change freeze")
    with pytest.raises(ApprovalError, match=f"request {a.id} is already denied"):
        queue.approve(a.id, approver="alice", comment=None, may_approve=True)
    event = approval_events()[-1]
    assert (event.type, event.subject, event.details["reason"]) == ("approval.denied", "bob", "change freeze")


def test_withdraw_and_expire_by_the_waiting_side(queue: ApprovalQueue) -> None:
    a, b = ask(queue), ask(queue)
    assert queue.withdraw(a.id, requester="agent-7").state is State.WITHDRAWN
    assert queue.expire(b.id).state is State.EXPIRED
    assert queue.expire(b.id).state is State.EXPIRED  # the waiter's timer after a sweep: same answer, no new event
    assert [e.type for e in approval_events()][-2:] == ["approval.withdrawn", "approval.expired"]
    with pytest.raises(ApprovalError, match="was withdrawn"):
        queue.approve(a.id, approver="alice", comment=None, may_approve=True)


def test_a_passed_wait_deadline_is_recorded_when_touched(queue: ApprovalQueue, clock: Clock) -> None:
    a = ask(queue)
    clock.advance(WAIT)
    assert queue.state(a.id) is State.EXPIRED  # polling reads only
    assert ApprovalRow.get_by_id(a.id).state == "pending"
    with pytest.raises(ApprovalError, match=f"request {a.id} has expired"):
        queue.approve(a.id, approver="alice", comment=None, may_approve=True)
    assert queue.get(a.id).state is State.EXPIRED  # the expiry was committed though the approval was refused
    expired = approval_events()[-1]
    assert (expired.type, expired.subject, expired.details["deadline"]) == ("approval.expired", "bastion", "wait")
    assert verify_audit().ok


def test_pending_sweeps_stale_requests_and_lists_newest_first(queue: ApprovalQueue, clock: Clock) -> None:
    old = ask(queue, command="touch /tmp/old")
    clock.advance(WAIT - 10)
    middle = ask(queue, command="touch /tmp/middle")
    clock.advance(5)
    newest = ask(queue, command="touch /tmp/newest")
    assert [a.id for a in queue.pending()] == [newest.id, middle.id, old.id]
    clock.advance(5)
    assert [a.id for a in queue.pending()] == [newest.id, middle.id]
    assert queue.get(old.id).state is State.EXPIRED
    assert [a.id for a in queue.recent(limit=2)] == [newest.id, middle.id]
    assert event_types().count("approval.expired") == 1


def test_an_unused_approval_expires_at_its_use_deadline(queue: ApprovalQueue, clock: Clock) -> None:
    a = ask(queue)
    queue.approve(a.id, approver="alice", comment=None, may_approve=True)
    clock.advance(LIFETIME)
    with pytest.raises(ApprovalError, match=f"approval {a.id} has expired"):
        queue.use(a.id, requester="agent-7", target="web-1", command="touch /tmp/x")
    assert queue.get(a.id).state is State.EXPIRED and approval_events()[-1].details["deadline"] == "use"


def test_no_wait_rerun_after_the_wait_window(queue: ApprovalQueue, clock: Clock) -> None:
    a = ask(queue, session_id="s-first")
    clock.advance(WAIT - 1)
    queue.approve(a.id, approver="alice", comment=None, may_approve=True)
    clock.advance(60)
    assert queue.pending() == []  # nothing stale to sweep: approved requests keep their own deadline
    with pytest.raises(ApprovalError, match="different command"):
        queue.use(a.id, requester="agent-7", target="web-1", command="touch /tmp/y", session_id="s-rerun")
    used = queue.use(a.id, requester="agent-7", target="web-1", command="touch /tmp/x", session_id="s-rerun")
    assert used.state is State.USED


def test_listeners_hear_each_committed_transition(queue: ApprovalQueue) -> None:
    heard: list[tuple[str, State]] = []
    queue.subscribe(lambda a: heard.append((a.id, a.state)))
    queue.subscribe(lambda a: 1 / 0)  # a broken listener cannot undo or fail a committed step
    a = ask(queue)
    queue.approve(a.id, approver="alice", comment=None, may_approve=True)
    assert heard == [(a.id, State.PENDING), (a.id, State.APPROVED)]


class FailingAudit:
    """The real log, made to fail on one event type; `after_write` fails after the event row is inserted."""

    def __init__(self, log: AuditLog, failing_type: str, *, after_write: bool = False) -> None:
        self.log, self.failing_type, self.after_write = log, failing_type, after_write

    def append(self, type: str, **fields) -> events.EventRecord:
        if type == self.failing_type and not self.after_write:
            raise StoreError("audit event could not be written: disk full")
        event = self.log.append(type, **fields)
        if type == self.failing_type:
            raise StoreError("audit event could not be written: disk full")
        return event


@pytest.mark.parametrize("after_write", [False, True])
def test_an_unwritable_event_leaves_the_state_unchanged(audit: AuditLog, clock: Clock, after_write: bool) -> None:
    good = ApprovalQueue(audit.append, clock=clock)
    a = ask(good)
    before = event_types()
    bad = ApprovalQueue(FailingAudit(audit, "approval.approved", after_write=after_write).append, clock=clock)
    with pytest.raises(StoreError):
        bad.approve(a.id, approver="alice", comment=None, may_approve=True)
    assert good.get(a.id) == a and ApprovalDecisionRow.select().count() == 0
    assert event_types() == before
    approved = good.approve(a.id, approver="alice", comment=None, may_approve=True)
    assert approved.state is State.APPROVED and verify_audit().ok


def test_an_unwritable_request_event_leaves_no_request(audit: AuditLog, clock: Clock) -> None:
    bad = ApprovalQueue(FailingAudit(audit, "approval.requested", after_write=True).append, clock=clock)
    with pytest.raises(StoreError):
        ask(bad)
    assert ApprovalRow.select().count() == 0 and event_types() == []


def test_an_unwritable_use_event_leaves_the_approval_unused(audit: AuditLog, clock: Clock) -> None:
    good = ApprovalQueue(audit.append, clock=clock)
    a = ask(good)
    good.approve(a.id, approver="alice", comment=None, may_approve=True)
    bad = ApprovalQueue(FailingAudit(audit, "approval.used").append, clock=clock)
    with pytest.raises(StoreError):
        bad.use(a.id, requester="agent-7", target="web-1", command="touch /tmp/x")
    assert good.state(a.id) is State.APPROVED


def _race_to_approve(queue: ApprovalQueue, approval_id: str) -> list[str]:
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def approve(who: str) -> None:
        start.wait()
        try:
            outcomes.append(str(queue.approve(approval_id, approver=who, comment=None, may_approve=True).state))
        except ApprovalError as err:
            outcomes.append(str(err))

    threads = [threading.Thread(target=approve, args=(who,)) for who in ("alice", "bob")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(outcomes)


def test_two_approvers_racing_in_threads_make_one_decision(queue: ApprovalQueue) -> None:
    for _ in range(10):
        a = ask(queue)
        assert _race_to_approve(queue, a.id) == ["approved", f"request {a.id} is already approved"]
    assert event_types().count("approval.approved") == 10 and verify_audit().ok


def test_transitions_and_direct_appends_in_other_threads_do_not_stall(
    db, audit: AuditLog, queue: ApprovalQueue
) -> None:
    db.pragma("busy_timeout", 1000, permanent=True)  # a stall shows as an error after 1 s, not 10
    stop = threading.Event()
    errors: list[Exception] = []

    def append_directly() -> None:
        while not stop.wait(0.002):  # a pause, so the busy wait is not merely starved by a tight loop
            try:
                audit.append("request.decided", subject="agent-8")
            except StoreError as err:
                errors.append(err)

    appender = threading.Thread(target=append_directly)
    appender.start()
    try:
        while len(approval_events()) < 40 and not errors:
            a = ask(queue)
            queue.approve(a.id, approver="alice", comment=None, may_approve=True)
    finally:
        stop.set()
        appender.join()
    assert errors == [] and verify_audit().ok


def test_decided_among_names_the_held_requests_someone_decided(queue: ApprovalQueue) -> None:
    approved, denied, waiting = ask(queue), ask(queue, command="touch /tmp/y"), ask(queue, command="touch /tmp/z")
    queue.approve(approved.id, approver="bob", comment=None, may_approve=True)
    queue.deny(denied.id, approver="bob", reason="no", may_approve=True)
    assert sorted(queue.decided_among([approved.id, denied.id, waiting.id])) == sorted([approved.id, denied.id])
    assert queue.decided_among([]) == []


def test_one_requester_cannot_have_more_than_the_cap_open(queue: ApprovalQueue, clock: Clock) -> None:
    for _ in range(MAX_OPEN_PER_REQUESTER):
        ask(queue, requester="looping-agent")
    with pytest.raises(ApprovalError, match=f"looping-agent already has {MAX_OPEN_PER_REQUESTER} requests open"):
        ask(queue, requester="looping-agent")
    assert ask(queue, requester="another-agent").state is State.PENDING
    clock.advance(WAIT + 1)
    assert ask(queue, requester="looping-agent").state is State.PENDING, "expired requests no longer count"
