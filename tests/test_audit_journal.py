"""Group commit: `AuditLog.append_many` and the server's `AuditJournal` on a real SQLite store."""

from __future__ import annotations

import asyncio
import itertools
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bastion.audit.log import AuditLog, Pending
from bastion.audit.verify import verify_audit
from bastion.errors import StoreError
from bastion.gateway.journal import AuditJournal
from bastion.store import sessions as session_store
from bastion.store.events import Event


@pytest.fixture
def log(key_path: Path, db) -> AuditLog:
    return AuditLog(signing_key_path=key_path, checkpoint_every=3)


def _open_row(session_id: str) -> Pending:
    row = lambda: session_store.open_session(session_id, subject="a", target="t", kind="exec",  # noqa: E731
                                             command="true", recording=f"{session_id}.cast", pid=1)
    return Pending("session.open", subject="a", target="t", session_id=session_id, alongside=row)


def test_append_many_chains_the_entries_and_commits_their_rows(log: AuditLog) -> None:
    written = log.append_many([Pending("server.start"), _open_row("s-1"), _open_row("s-2"), Pending("server.stop")])
    assert [e.seq for e in written] == [1, 2, 3, 4]
    assert all(later.prev_hash == earlier.hash for earlier, later in itertools.pairwise(written))
    assert {s.id for s in session_store.recent()} == {"s-1", "s-2"}
    assert verify_audit().ok


def test_append_many_is_all_or_nothing(log: AuditLog) -> None:
    log.append_many([_open_row("s-1")])
    with pytest.raises(StoreError):
        log.append_many([_open_row("s-2"), _open_row("s-1")])  # s-1's row exists: the whole batch fails
    assert [s.id for s in session_store.recent()] == ["s-1"]
    assert Event.select().count() == 1


async def test_the_journal_writes_concurrent_events_together_and_releases_each(log: AuditLog) -> None:
    batches: list[int] = []

    def append_many(entries: list[Pending]) -> object:
        batches.append(len(entries))
        return log.append_many(entries)

    with ThreadPoolExecutor(max_workers=1) as db_thread:
        journal = AuditJournal(append_many, log.check, db_thread)
        await asyncio.gather(*(journal.append(_open_row(f"s-{n}")) for n in range(20)))
    assert sum(batches) == 20 and len(batches) < 20
    assert Event.select().count() == 20
    assert len(session_store.recent()) == 20
    assert verify_audit().ok


async def test_one_bad_entry_fails_alone(log: AuditLog) -> None:
    log.append_many([_open_row("taken")])
    with ThreadPoolExecutor(max_workers=1) as db_thread:
        journal = AuditJournal(log.append_many, log.check, db_thread)
        results = await asyncio.gather(journal.append(_open_row("fresh-1")), journal.append(_open_row("taken")),
                                       journal.append(_open_row("fresh-2")), return_exceptions=True)
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], StoreError) and "could not be written" in str(results[1])
    assert {s.id for s in session_store.recent()} == {"taken", "fresh-1", "fresh-2"}
    assert verify_audit().ok


async def test_a_lone_failure_keeps_the_log_s_message(log: AuditLog) -> None:
    with ThreadPoolExecutor(max_workers=1) as db_thread:
        journal = AuditJournal(log.append_many, log.check, db_thread)
        with pytest.raises(StoreError, match="dotted lower-case"):
            await journal.append(Pending("Not A Type"))


async def test_a_failure_that_is_no_entry_s_fault_refuses_the_batch_at_once(log: AuditLog) -> None:
    calls: list[int] = []

    def locked(entries: list[Pending]) -> object:
        calls.append(len(entries))
        raise StoreError("audit event could not be written: database is locked")

    with ThreadPoolExecutor(max_workers=1) as db_thread:
        journal = AuditJournal(locked, log.check, db_thread)
        results = await asyncio.gather(*(journal.append(_open_row(f"s-{n}")) for n in range(5)),
                                       return_exceptions=True)
    assert all(isinstance(r, StoreError) and "locked" in str(r) for r in results)
    assert sum(calls) == 5  # each entry tried once, in whatever batches: no entry-by-entry retry
