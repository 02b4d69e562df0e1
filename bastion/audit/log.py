"""The append-only audit log over the database, with periodic signed checkpoints.

Several bastion processes may share one database, and their appends must still form a single chain. Each
append is one short transaction that takes the chain's write lock first, then reads the tail and inserts the
next event, so no two writers ever build on the same tail:

- SQLite: `BEGIN IMMEDIATE` takes the database's write lock up front (waiting up to the connection's
  busy_timeout), so the tail read inside the transaction is the real tail.
- PostgreSQL: a transaction-scoped advisory lock (`pg_advisory_xact_lock`) on one fixed key serialises
  appenders; it is released at commit or rollback and needs no extra table.
- Backstop everywhere: `seq` is the primary key, so a writer that still raced (for instance one called inside
  a caller's own transaction, where the lock above is not taken) fails with an IntegrityError and retries on
  the new tail.

Within a process a mutex serialises appends too (peewee keeps one connection per thread), so the log is safe
to share between threads and to call from asyncio through `asyncio.to_thread`. Any failure to write
surfaces as StoreError: the caller must then refuse the action the event describes.

`append_many` writes several events in one such transaction (group commit: the server batches the events its
sessions are waiting on), each optionally with a row write of the caller's that must commit with it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import peewee
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bastion.audit.chain import (
    GENESIS_HASH,
    CheckpointRecord,
    EventRecord,
    canonical_json,
    format_time,
    is_valid_type,
    seal,
    sign_checkpoint,
)
from bastion.audit.guard import check_details
from bastion.audit.keys import load_signing_key
from bastion.errors import StoreError
from bastion.store import events as store
from bastion.store.db import database

_PG_LOCK_KEY = 0x62617374696F6E  # "bastion": one advisory lock id for the whole audit chain
_ATTEMPTS = 3
T = TypeVar("T")


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Conflict(StoreError):
    """A write kept breaking a uniqueness rule: one entry's row write clashes, or the chain kept racing."""


@dataclass(frozen=True)
class Pending:
    """An event to append; `alongside` is a database write that must commit (or fail) together with it."""

    type: str
    subject: str | None = None
    target: str | None = None
    session_id: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    alongside: Callable[[], object] | None = None


# A running bastion signs the head once this many events are unsigned, and at least this often.
CHECKPOINT_EVERY = 100
CHECKPOINT_INTERVAL_S = 60.0


class AuditLog:
    """Appends events to the shared chain and signs checkpoints of it.

    Needs `bastion.store.db.connect` to have been called. Without `signing_key_path` no checkpoints are made
    (tools that only read or export the log need no key). A checkpoint is signed after an append once
    `checkpoint_every` events have accumulated since the newest checkpoint (whichever process made it), once
    `checkpoint_interval_s` has passed since this log's last checkpoint (checked on append and by
    `maybe_checkpoint`, which the server calls on a timer), and at `close`.
    """

    def __init__(
        self,
        *,
        signing_key_path: str | Path | None = None,
        checkpoint_every: int = CHECKPOINT_EVERY,
        checkpoint_interval_s: float = CHECKPOINT_INTERVAL_S,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        if checkpoint_every < 1:
            raise ValueError("checkpoint_every must be at least 1")
        self._key = load_signing_key(signing_key_path) if signing_key_path is not None else None
        self._every = checkpoint_every
        self._interval = checkpoint_interval_s
        self._clock = clock
        self._mutex = threading.Lock()
        self._last_checkpoint_at = time.monotonic()
        self._known_checkpoint = 0  # seq of the newest checkpoint last read from the database
        self._closed = False

    def append(
        self,
        type: str,
        *,
        subject: str | None = None,
        target: str | None = None,
        session_id: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> EventRecord:
        """Write the next event and return it as stored; StoreError when it could not be written.

        Blocking and short; from asyncio call it through `asyncio.to_thread`. Call it outside any transaction
        of your own: inside one (on SQLite a deferred one) the chain lock is not taken, so a concurrent writer
        makes this append fail closed rather than wait.
        """
        return self.append_many([Pending(type, subject, target, session_id, details or {})])[0]

    def append_many(self, entries: Sequence[Pending]) -> list[EventRecord]:
        """Write `entries` as consecutive events, each after its `alongside` write, in one transaction.

        All or nothing: StoreError when any of it could not be written, and then none of it was.
        """
        payloads = [dict(entry.details) for entry in entries]
        for entry, payload in zip(entries, payloads, strict=True):
            _validate(entry.type, payload)

        def body() -> list[EventRecord]:
            for entry in entries:
                if entry.alongside is not None:
                    entry.alongside()
            tail = store.tail_event()
            now = format_time(self._clock())  # one moment for the batch: it commits at once
            written = []
            for entry, payload in zip(entries, payloads, strict=True):
                tail = seal(
                    seq=tail.seq + 1 if tail else 1,
                    time=now,
                    type=entry.type,
                    prev_hash=tail.hash if tail else GENESIS_HASH,
                    details=payload,
                    subject=entry.subject,
                    target=entry.target,
                    session_id=entry.session_id,
                )
                written.append(tail)
            store.insert_events(written)
            if written and self._key is not None and self._checkpoint_due(written[-1].seq):
                self._sign(self._key, written[-1])
            return written

        return self._write(body)

    @staticmethod
    def check(entry: Pending) -> None:
        """What `append_many` refuses before touching the database, for one entry: StoreError if so."""
        _validate(entry.type, dict(entry.details))

    def checkpoint(self) -> CheckpointRecord | None:
        """Sign the current head now, unless there is no key, no event, or the head is already signed."""
        key = self._key
        if key is None:
            return None

        def body() -> CheckpointRecord | None:
            tail = store.tail_event()
            if tail is None or store.last_checkpoint_seq() >= tail.seq:
                return None
            return self._sign(key, tail)

        return self._write(body)

    def maybe_checkpoint(self) -> CheckpointRecord | None:
        """Sign the head if `checkpoint_interval_s` has passed since this log's last checkpoint."""
        if self._key is None or time.monotonic() - self._last_checkpoint_at < self._interval:
            return None
        return self.checkpoint()

    def close(self) -> None:
        """Sign the head one last time; later appends fail (the process is shutting down)."""
        if self._closed:
            return
        self.checkpoint()
        self._closed = True

    def _checkpoint_due(self, seq: int) -> bool:
        elapsed = time.monotonic() - self._last_checkpoint_at
        # The remembered checkpoint can only be older than the real one (other processes sign too), so when
        # even it says nothing is due, nothing is; otherwise the database says.
        if seq - self._known_checkpoint < self._every and elapsed < self._interval:
            return False
        self._known_checkpoint = store.last_checkpoint_seq()
        pending = seq - self._known_checkpoint
        return pending >= self._every or (pending > 0 and elapsed >= self._interval)

    def _sign(self, key: Ed25519PrivateKey, head: EventRecord) -> CheckpointRecord:
        cp = sign_checkpoint(key, head, format_time(self._clock()))
        store.insert_checkpoint(cp)
        self._last_checkpoint_at = time.monotonic()
        return cp

    def _write(self, body: Callable[[], T]) -> T:
        """Run `body` in the chain's locked transaction, retrying a lost race; any failure is StoreError."""
        if self._closed:
            raise StoreError("audit log is closed")
        # Inside a caller's write transaction (the approval queue's IMMEDIATE one) other writers are already
        # excluded; taking the mutex there could deadlock with a direct append waiting for the database lock.
        guard = contextlib.nullcontext() if database.obj.in_transaction() else self._mutex
        with guard:
            attempt = 1
            while True:
                try:
                    with _chain_transaction():
                        return body()
                except peewee.IntegrityError as err:
                    if attempt == _ATTEMPTS:
                        raise Conflict(_store_error(err).args[0]) from err
                    attempt += 1
                except StoreError:
                    raise
                except Exception as err:
                    raise _store_error(err) from err


def _validate(type: str, details: dict[str, Any]) -> None:
    """Refuse, before touching the database, an event that could never be hashed or must not be kept."""
    if not is_valid_type(type):
        raise StoreError(f"audit event type {type!r} is not a dotted lower-case name")
    check_details(details)
    try:
        canonical_json(details)
    except (TypeError, ValueError) as err:
        raise StoreError(f"audit details are not plain JSON: {err}") from err


def _store_error(err: Exception) -> StoreError:
    first_line = (str(err).splitlines() or [type(err).__name__])[0]
    return StoreError(f"audit event could not be written: {first_line}")


def _chain_transaction() -> AbstractContextManager[Any]:
    db = database.obj
    if db is None:
        raise StoreError("audit store is not connected")
    if isinstance(db, peewee.SqliteDatabase):
        return db.atomic("IMMEDIATE")
    return _advisory_locked(db)


@contextmanager
def _advisory_locked(db: peewee.Database) -> Iterator[None]:
    with db.atomic():
        if isinstance(db, peewee.PostgresqlDatabase):
            db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (_PG_LOCK_KEY,))
        yield


def export_events(since: datetime | None = None) -> Iterator[dict[str, Any]]:
    """Events in seq order as plain dicts (hash included), for `bastion audit export --format jsonl`.

    `since` keeps events at or after that moment; a naive datetime is taken as UTC.
    """
    since_text = None
    if since is not None:
        since_text = format_time(since if since.tzinfo else since.replace(tzinfo=UTC))
    for event in store.iter_events(since_text):
        yield event.as_dict()
