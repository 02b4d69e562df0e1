"""Several bastion processes on one database: racing uses and racing approvals each have exactly one winner.

Runs on a SQLite file (BEGIN IMMEDIATE) always, and on PostgreSQL (SELECT … FOR UPDATE) when
BASTION_TEST_POSTGRES_URL names a database it may drop the approval and audit tables in and psycopg2 is installed.
"""

from __future__ import annotations

import importlib.util
import multiprocessing
import os
from collections import Counter
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

from bastion.approvals import ApprovalError, ApprovalQueue, State
from bastion.audit.log import AuditLog
from bastion.audit.verify import verify_audit
from bastion.store import events
from bastion.store.db import connect

ROUNDS = 8
PROCESSES = 3


def _queue(shared_db: str) -> ApprovalQueue:
    connect(shared_db)
    return ApprovalQueue(AuditLog().append)


def _use_each(shared_db: str, ids: list[str], start: Barrier, results) -> None:
    """One process: for each approval, wait for the others, then all try to use it at once."""
    queue = _queue(shared_db)
    for approval_id in ids:
        start.wait()
        try:
            queue.use(approval_id, requester="agent-7", target="web-1", command="touch /tmp/x")
            results.put((approval_id, "used"))
        except Exception as err:  # reported, not raised: a crashed process would leave the others at the barrier
            results.put((approval_id, _outcome(err)))


def _approve_each(shared_db: str, approver: str, ids: list[str], start: Barrier, results) -> None:
    queue = _queue(shared_db)
    for approval_id in ids:
        start.wait()
        try:
            state = queue.approve(approval_id, approver=approver, comment=None, may_approve=True).state
            results.put((approval_id, str(state)))
        except Exception as err:  # reported, not raised: a crashed process would leave the others at the barrier
            results.put((approval_id, _outcome(err)))


def _outcome(err: Exception) -> str:
    return str(err) if isinstance(err, ApprovalError) else f"{type(err).__name__}: {err}"


def _ask(queue: ApprovalQueue) -> str:
    return queue.request(
        requester="agent-7",
        target="web-1",
        command="touch /tmp/x",
        kind="WRITE",
        verdict="WRITE",
        reasons=["touch writes"],
        rule="reader-write-approve",
        required=1,
        wait_timeout_s=300,
        lifetime_s=300,
    ).id


def _run(target, args_per_process: list[tuple], expected: int) -> list[tuple[str, str]]:
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(len(args_per_process), timeout=60)
    results = ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args, start, results)) for args in args_per_process]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=120) for _ in range(expected)]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return outcomes


POSTGRES_URL = os.environ.get("BASTION_TEST_POSTGRES_URL", "")


@pytest.fixture(params=["sqlite", "postgres"])
def shared_db(request: pytest.FixtureRequest, tmp_path: Path):
    """Where the processes meet: a SQLite file, or the PostgreSQL database emptied of our tables."""
    if request.param == "sqlite":
        location = str(tmp_path / "bastion.db")
    elif not POSTGRES_URL or importlib.util.find_spec("psycopg2") is None:
        pytest.skip("BASTION_TEST_POSTGRES_URL is not set or psycopg2 is missing")
    else:
        location = POSTGRES_URL
        connect(location).execute_sql(
            "DROP TABLE IF EXISTS approval_decisions, approvals, audit_event, audit_checkpoint"
        )
    database = connect(location)
    yield location
    database.close()


def test_processes_racing_to_use_one_approval_have_one_winner(shared_db: str) -> None:
    queue = ApprovalQueue(AuditLog().append)
    ids = [_ask(queue) for _ in range(ROUNDS)]
    for approval_id in ids:
        queue.approve(approval_id, approver="alice", comment=None, may_approve=True)
    outcomes = _run(_use_each, [(shared_db, ids)] * PROCESSES, ROUNDS * PROCESSES)
    for approval_id in ids:
        mine = Counter(outcome for i, outcome in outcomes if i == approval_id)
        assert mine == {"used": 1, f"approval {approval_id} was already used": PROCESSES - 1}
        assert queue.state(approval_id) is State.USED
    used_events = [e.details["approval_id"] for e in events.iter_events() if e.type == "approval.used"]
    assert sorted(used_events) == sorted(ids)
    assert verify_audit().ok


def test_processes_racing_to_approve_make_one_decision(shared_db: str) -> None:
    queue = ApprovalQueue(AuditLog().append)
    ids = [_ask(queue) for _ in range(ROUNDS)]
    approvers = [(shared_db, who, ids) for who in ("alice", "bob")]
    outcomes = _run(_approve_each, approvers, ROUNDS * 2)
    for approval_id in ids:
        mine = sorted(outcome for i, outcome in outcomes if i == approval_id)
        assert mine == ["approved", f"request {approval_id} is already approved"]
        assert len(queue.get(approval_id).approvers) == 1
    approved_events = [e.details["approval_id"] for e in events.iter_events() if e.type == "approval.approved"]
    assert sorted(approved_events) == sorted(ids)
    assert verify_audit().ok
