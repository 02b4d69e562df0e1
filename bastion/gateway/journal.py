"""Group commit for the audit events sessions wait on.

Every session waits for several audit events (auth.success, request.decided, session.open, session.close) to be
committed before it goes on, and all database work runs on one thread. Instead of one transaction per event,
events queued while that thread is busy are written together by the next job in one transaction
(`AuditLog.append_many`). Each waiter is released only once its own event is committed, so nothing a session
does gets ahead of its audit record; under load the chain's lock, tail read and commit are paid once per batch.

A batch is all or nothing in the database, so one entry that cannot be written would sink its neighbours.
Entries are checked before they are queued (an invalid one is refused to its waiter alone), and a batch that
fails on a uniqueness conflict (one entry's row write clashing) is written again one entry at a time, so only
the entries that fail on their own are refused. Any other failure (the database locked past its timeout, a disk
error) refuses the whole batch at once: retrying each entry would only hold every waiter longer.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Executor

from bastion.audit.log import Conflict, Pending
from bastion.errors import StoreError

AppendMany = Callable[[Sequence[Pending]], object]


class AuditJournal:
    def __init__(self, append_many: AppendMany, check: Callable[[Pending], None], executor: Executor) -> None:
        self._append_many = append_many
        self._check = check
        self._executor = executor
        self._lock = threading.Lock()
        self._queue: list[tuple[Pending, asyncio.Future[None]]] = []

    async def append(self, entry: Pending) -> None:
        """Returns once `entry` is committed; StoreError when it could not be."""
        self._check(entry)
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        with self._lock:
            self._queue.append((entry, done))
            first = len(self._queue) == 1
        if first:
            loop.run_in_executor(self._executor, self._write_queued, loop)
        await done

    def _write_queued(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            batch, self._queue = self._queue, []
        entries = [entry for entry, _ in batch]
        outcomes: list[StoreError | None]
        try:
            self._append_many(entries)
            outcomes = [None] * len(entries)
        except Conflict as exc:
            outcomes = [self._write_alone(entry) for entry in entries] if len(entries) > 1 else [exc]
        except Exception as exc:
            outcomes = [_refusal(exc)] * len(entries)
        loop.call_soon_threadsafe(_settle, [done for _, done in batch], outcomes)

    def _write_alone(self, entry: Pending) -> StoreError | None:
        try:
            self._append_many([entry])
        except Exception as exc:
            return _refusal(exc)
        return None


def _refusal(exc: Exception) -> StoreError:
    """AuditLog raises StoreError with a message fit for the agent; anything else gets a fixed one."""
    return exc if isinstance(exc, StoreError) else StoreError("the audit log cannot be written")


def _settle(waiters: list[asyncio.Future[None]], outcomes: list[StoreError | None]) -> None:
    for done, outcome in zip(waiters, outcomes, strict=True):
        if done.cancelled():
            continue
        if outcome is None:
            done.set_result(None)
        else:
            done.set_exception(outcome)
