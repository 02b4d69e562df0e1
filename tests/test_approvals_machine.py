"""The pure approval state machine: every segregation-of-duties rule and both deadlines, on a fake clock."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.approvals import machine
from bastion.approvals.machine import Approval, ApprovalError, State
from bastion.errors import Refused

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
WAIT = 300.0
LIFETIME = 600.0


def exactly(message: str) -> str:
    """A `match=` pattern for this whole message and nothing else."""
    return f"^{re.escape(message)}$"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def new(required: int = 1, **overrides) -> Approval:
    fields = dict(
        id="a1b2c3d4e5",
        requester="agent-7",
        target="web-1",
        command="touch /tmp/x",
        kind="WRITE",
        verdict="WRITE",
        reasons=["touch writes"],
        rule="reader-write-approve",
        required=required,
        wait_timeout_s=WAIT,
        lifetime_s=LIFETIME,
        session_id="s-1",
        now=T0,
    )
    fields.update(overrides)
    return machine.open_request(**fields).approval


def approve(a: Approval, who: str = "alice", t: float = 1, **kw) -> Approval:
    kw.setdefault("may_approve", True)
    kw.setdefault("comment", None)
    return machine.approve(a, approver=who, now=at(t), **kw).approval


def use(a: Approval, t: float = 2, **kw) -> Approval:
    fields = dict(requester="agent-7", target="web-1", command="touch /tmp/x", session_id="s-2")
    fields.update(kw)
    return machine.use(a, now=at(t), **fields).approval


def test_a_request_starts_pending_with_its_wait_deadline_and_event() -> None:
    step = machine.open_request(
        id="a1b2c3d4e5",
        requester="agent-7",
        target="web-1",
        command="touch /tmp/x",
        kind="WRITE",
        verdict="WRITE",
        reasons=["touch writes"],
        rule="reader-write-approve",
        required=2,
        wait_timeout_s=WAIT,
        lifetime_s=LIFETIME,
        session_id="s-1",
        now=T0,
    )
    a = step.approval
    assert a.state is State.PENDING
    assert a.wait_deadline == at(WAIT) and a.approved_at is None and a.use_deadline is None
    assert (step.event, step.actor, step.session_id) == ("approval.requested", "agent-7", "s-1")
    assert step.details["approval_id"] == a.id and step.details["rule"] == "reader-write-approve"
    assert step.details["command"] == "touch /tmp/x" and step.details["required"] == 2
    assert step.details["wait_deadline"] == "2025-03-01T12:05:00.000000Z"


@pytest.mark.parametrize("bad", [{"required": 0}, {"wait_timeout_s": 0}, {"lifetime_s": -1}])
def test_nonsense_numbers_are_the_callers_bug(bad: dict) -> None:
    with pytest.raises(ValueError):
        new(**bad)


def test_one_approval_completes_a_request_needing_one() -> None:
    step = machine.approve(new(), approver="alice", comment="ok", may_approve=True, now=at(10))
    a = step.approval
    assert a.state is State.APPROVED
    assert a.approved_at == at(10) and a.use_deadline == at(10 + LIFETIME)
    assert a.approvers == (("alice", "ok", at(10)),)
    assert (step.event, step.actor) == ("approval.approved", "alice")
    assert step.details | {"completed": True, "count": 1, "required": 1} == step.details
    assert step.details["comment"] == "ok" and step.details["use_deadline"] == "2025-03-01T12:10:10.000000Z"


def test_nobody_approves_their_own_request() -> None:
    with pytest.raises(ApprovalError, match=exactly("you cannot approve your own request a1b2c3d4e5")):
        approve(new(), who="agent-7")


def test_the_requester_cannot_deny_it_either() -> None:
    with pytest.raises(ApprovalError, match="your own request"):
        machine.deny(new(), approver="agent-7", reason="no", may_approve=True, now=at(1))


def test_an_approver_without_scope_for_the_target_is_refused() -> None:
    with pytest.raises(ApprovalError, match=exactly("you may not approve requests for web-1")):
        approve(new(), may_approve=False)
    with pytest.raises(ApprovalError, match=exactly("you may not approve requests for web-1")):
        machine.deny(new(), approver="alice", reason="no", may_approve=False, now=at(1))


def test_n_distinct_approvers_each_count_once() -> None:
    first_step = machine.approve(new(required=2), approver="alice", comment=None, may_approve=True, now=at(1))
    first = first_step.approval
    assert first.state is State.PENDING and first.approved_at is None
    assert first_step.details | {"count": 1, "required": 2, "completed": False} == first_step.details
    with pytest.raises(ApprovalError, match=exactly("you already approved a1b2c3d4e5; it needs 2 distinct approvers")):
        approve(first, who="alice", t=2)
    second = approve(first, who="bob", t=3)
    assert second.state is State.APPROVED and second.approver_subjects == ("alice", "bob")
    assert second.approved_at == at(3) and second.use_deadline == at(3 + LIFETIME)


def test_a_denial_ends_the_request_with_the_reason() -> None:
    step = machine.deny(
        new(required=2), approver="bob", reason="  not during\nthe freeze ", may_approve=True, now=at(5)
    )
    a = step.approval
    assert a.state is State.DENIED and a.denied_by == "bob" and a.denial_reason == "not during the freeze"
    assert a.closed_at == at(5)
    assert (step.event, step.actor, step.details["reason"]) == ("approval.denied", "bob", "not during the freeze")


def test_a_denial_needs_a_reason() -> None:
    with pytest.raises(ApprovalError, match="needs a reason"):
        machine.deny(new(), approver="bob", reason=" \n", may_approve=True, now=at(1))


def _in_state(state: State) -> Approval:
    a = new()
    if state is State.APPROVED:
        return approve(a)
    if state is State.DENIED:
        return machine.deny(a, approver="bob", reason="no", may_approve=True, now=at(1)).approval
    if state is State.USED:
        return use(approve(a))
    if state is State.WITHDRAWN:
        return machine.withdraw(a, requester="agent-7", now=at(1)).approval
    return machine.expire(a, now=at(1)).approval


@pytest.mark.parametrize(
    ("state", "phrase"),
    [
        (State.APPROVED, "is already approved"),
        (State.DENIED, "is already denied"),
        (State.EXPIRED, "has expired"),
        (State.USED, "was already used"),
        (State.WITHDRAWN, "was withdrawn"),
    ],
)
def test_a_decided_request_cannot_be_changed(state: State, phrase: str) -> None:
    decided = _in_state(state)
    assert decided.state is state
    message = exactly(f"request a1b2c3d4e5 {phrase}")
    with pytest.raises(ApprovalError, match=message):
        approve(decided, who="carol", t=3)
    with pytest.raises(ApprovalError, match=message):
        machine.deny(decided, approver="carol", reason="no", may_approve=True, now=at(3))
    with pytest.raises(ApprovalError, match=message):
        machine.withdraw(decided, requester="agent-7", now=at(3))


def test_a_pending_request_past_its_wait_deadline_has_expired() -> None:
    a = new()
    assert machine.due(a, at(WAIT - 1)) is None
    assert machine.effective_state(a, at(WAIT)) is State.EXPIRED
    step = machine.due(a, at(WAIT))
    assert step is not None and step.approval.state is State.EXPIRED
    assert (step.event, step.actor, step.details["deadline"]) == ("approval.expired", "bastion", "wait")
    with pytest.raises(ApprovalError, match=exactly("request a1b2c3d4e5 has expired")):
        approve(a, t=WAIT)


def test_no_wait_flow_an_approval_before_the_wait_deadline_is_usable_until_its_own_deadline() -> None:
    # The agent left with 75 at once; nobody holds the channel, yet the request stays approvable for the window.
    approved = approve(new(), t=WAIT - 1)
    assert machine.due(approved, at(WAIT + 100)) is None
    assert use(approved, t=WAIT + 100).state is State.USED
    step = machine.due(approved, at(WAIT - 1 + LIFETIME))
    assert step is not None and step.details["deadline"] == "use"


def test_use_consumes_once_and_records_the_using_session() -> None:
    approved = approve(new())
    step = machine.use(
        approved, requester="agent-7", target="web-1", command="touch /tmp/x", session_id="s-2", now=at(2)
    )
    assert step.approval.state is State.USED and step.approval.closed_at == at(2)
    assert (step.event, step.actor, step.session_id) == ("approval.used", "agent-7", "s-2")
    assert step.details["request_session_id"] == "s-1"
    with pytest.raises(ApprovalError, match=exactly("approval a1b2c3d4e5 was already used")):
        use(step.approval, t=3)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"requester": "agent-8"}, "was granted to someone else"),
        ({"target": "web-2"}, "was granted for a different target"),
        ({"command": "touch /tmp/x "}, "was granted for a different command"),
        ({"command": "touch /tmp/y"}, "was granted for a different command"),
    ],
)
def test_use_is_bound_to_requester_target_and_exact_command(change: dict, message: str) -> None:
    approved = approve(new())
    with pytest.raises(ApprovalError, match=exactly(f"approval a1b2c3d4e5 {message}")):
        use(approved, **change)
    assert use(approved).state is State.USED  # the refused attempts did not consume it


@pytest.mark.parametrize(
    ("state", "phrase"),
    [
        (State.PENDING, "is not approved yet"),
        (State.DENIED, "was denied"),
        (State.EXPIRED, "has expired"),
        (State.WITHDRAWN, "was withdrawn"),
    ],
)
def test_only_an_approved_request_can_be_used(state: State, phrase: str) -> None:
    a = new() if state is State.PENDING else _in_state(state)
    with pytest.raises(ApprovalError, match=exactly(f"approval a1b2c3d4e5 {phrase}")):
        use(a)


def test_an_approval_past_its_use_deadline_has_expired() -> None:
    approved = approve(new(), t=10)
    with pytest.raises(ApprovalError, match=exactly("approval a1b2c3d4e5 has expired")):
        use(approved, t=10 + LIFETIME)


def test_only_the_requester_withdraws_and_only_while_pending() -> None:
    with pytest.raises(ApprovalError, match="not yours"):
        machine.withdraw(new(), requester="agent-8", now=at(1))
    step = machine.withdraw(new(), requester="agent-7", now=at(1))
    assert step.approval.state is State.WITHDRAWN
    assert (step.event, step.actor) == ("approval.withdrawn", "agent-7")


def test_expire_by_the_waiter() -> None:
    step = machine.expire(new(), now=at(WAIT - 0.01))
    assert step is not None and step.approval.state is State.EXPIRED
    assert machine.expire(step.approval, now=at(WAIT)) is None  # already expired: nothing more to record
    with pytest.raises(ApprovalError, match="is already approved"):
        machine.expire(approve(new()), now=at(2))


def test_messages_are_one_line_and_never_carry_the_command_or_reasons() -> None:
    a = new(command="mysql -psecret-ish", reasons=["mysql is not on the read list"])
    attempts = [
        lambda: approve(a, who="agent-7"),
        lambda: approve(a, may_approve=False),
        lambda: use(approve(a), command="other"),
        lambda: use(a, command="mysql -psecret-ish"),
    ]
    for attempt in attempts:
        with pytest.raises(Refused) as err:
            attempt()
        text = str(err.value)
        assert "\n" not in text and "secret" not in text and "read list" not in text


OPS = st.lists(
    st.tuples(
        st.sampled_from(["approve", "deny", "withdraw", "expire", "use", "use-other", "tick"]),
        st.sampled_from(["agent-7", "alice", "bob", "carol"]),
        st.booleans(),
    ),
    max_size=12,
)


@given(required=st.integers(1, 3), ops=OPS)
def test_invariants_hold_for_any_sequence_of_actions(required: int, ops: list) -> None:
    a = new(required=required)
    t = 0.0
    for op, who, flag in ops:
        t += 1
        if op == "tick":
            t += WAIT / 2 if flag else LIFETIME / 2
            continue
        before = a
        try:
            a = _act(a, op, who, flag, at(t))
        except ApprovalError:
            assert a == before
            continue
        _check(before, a, required)


def _act(a: Approval, op: str, who: str, flag: bool, now: datetime) -> Approval:
    settled = machine.due(a, now)
    a = settled.approval if settled else a
    if op == "approve":
        return machine.approve(a, approver=who, comment=None, may_approve=flag, now=now).approval
    if op == "deny":
        return machine.deny(a, approver=who, reason="no", may_approve=flag, now=now).approval
    if op == "withdraw":
        return machine.withdraw(a, requester=who, now=now).approval
    if op == "expire":
        step = machine.expire(a, now=now)
        return step.approval if step else a
    command = "touch /tmp/x" if op == "use" else "rm -rf /"
    return machine.use(a, requester=who, target="web-1", command=command, session_id=None, now=now).approval


def _check(before: Approval, after: Approval, required: int) -> None:
    assert "agent-7" not in after.approver_subjects
    assert len(set(after.approver_subjects)) == len(after.approver_subjects)
    if after.state is State.APPROVED:
        assert len(after.approvers) >= required and after.use_deadline == after.approved_at + timedelta(
            seconds=LIFETIME
        )
    if after.state is State.USED:
        assert before.state is State.APPROVED and after.requester == "agent-7" and after.command == "touch /tmp/x"
    if before.state not in (State.PENDING, State.APPROVED):
        assert after == before
    if after.state is State.PENDING:
        assert len(after.approvers) < required and replace(after, approvers=()) == replace(before, approvers=())


def test_an_approval_is_bound_to_the_request_kind() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    step = machine.open_request(
        id="k1", requester="agent", target="web-1", command="(interactive shell)", kind="write", verdict="UNKNOWN",
        reasons=["x"], rule="r", required=1, wait_timeout_s=60, lifetime_s=60, session_id=None, now=now)
    approved = machine.approve(step.approval, approver="human", comment=None, may_approve=True, now=now).approval
    with pytest.raises(ApprovalError, match="different command"):
        machine.use(approved, requester="agent", target="web-1", command="(interactive shell)", kind="shell",
                    session_id=None, now=now)
    used = machine.use(approved, requester="agent", target="web-1", command="(interactive shell)", kind="write",
                       session_id=None, now=now)
    assert used.approval.state is State.USED
