"""What every connection of one bastion process shares: config, stores, live sessions, and shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from bastion.approvals import ApprovalQueue
from bastion.audit.log import AuditLog, Pending
from bastion.classify import load_rules
from bastion.config import Config
from bastion.errors import StoreError
from bastion.gateway import upstream
from bastion.gateway.journal import AuditJournal
from bastion.gateway.messages import EXIT_FAILURE
from bastion.gateway.pool import UpstreamPool
from bastion.identity.model import Identity, IdentityRefused
from bastion.masking import load_masking
from bastion.policy import load_policy
from bastion.secrets import SecretBox
from bastion.store import sessions as session_store
from bastion.store.db import BUSY_TIMEOUT_S

if TYPE_CHECKING:
    from bastion.gateway.server import AgentConnection
    from bastion.gateway.sessions import LiveSession

log = logging.getLogger("bastion.gateway")
# How long a session's close that cannot be written is retried (the command has run; its close binds the
# recording into the chain). Shutdown waits that long, plus one busy timeout, for sessions to be closed.
CLOSE_RETRY_FOR_S = 60.0
KILL_POLL_S = 1.0
DECISION_POLL_S = 0.05
T = TypeVar("T")


class Gateway:
    def __init__(self, config: Config, authenticator: Callable[[bytes], Identity], audit: AuditLog) -> None:
        self.config = config
        self.box = SecretBox(config.path(config.secrets_key))
        self.recordings = config.path(config.recordings_dir)
        policies = config.path(config.policies_dir)
        self.rules = load_rules(policies / "commands.yaml")
        self.masking = load_masking(policies / "masking.yaml")
        self.policy = load_policy(policies)
        self.approvals = ApprovalQueue(audit.append)
        self._waiters: dict[str, asyncio.Event] = {}
        self.pid = os.getpid()
        self.connections: set[AgentConnection] = set()
        self.live: set[LiveSession] = set()
        self.draining = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._authenticator = authenticator
        # One thread owns database access: the event loop never blocks on a lock held by another process.
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bastion-db")
        self._journal = AuditJournal(audit.append_many, audit.check, self._db)
        settings = config.upstream
        self.pool = UpstreamPool(
            lambda target: upstream.connect(target, self.box, timeout=settings.connect_timeout_s,
                                            keepalive=settings.keepalive_interval_s),
            max_channels=settings.pool_max_channels, idle_s=settings.pool_idle_s)

    async def db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._db, lambda: fn(*args, **kwargs))

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Runs `coro` in the background, keeping a reference until it is done."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def approval_waiter(self, approval_id: str) -> asyncio.Event:
        return self._waiters.setdefault(approval_id, asyncio.Event())

    def forget_waiter(self, approval_id: str) -> None:
        self._waiters.pop(approval_id, None)

    def notify(self, approval_id: str) -> None:
        """A decision was made through this process: wake the held request now instead of at its next poll."""
        waiter = self._waiters.get(approval_id)
        if waiter is not None:
            waiter.set()

    async def verify(self, cert_blob: bytes, *, peer: str, login: str) -> Identity:
        """Checks a presented certificate and its token; a refusal is audited and re-raised.

        On the database thread: the token check reads the revocation list, and the loop must not wait on it.
        """
        try:
            return await self.db(self._authenticator, cert_blob)
        except IdentityRefused as exc:
            details = {"reason": exc.reason, "peer": peer, **exc.context}
            log.warning("authentication refused for %s from %s: %s", login, peer, exc.reason)
            await self.event("auth.failure", subject=str(exc.context.get("subject", "")) or None, target=login,
                             details=details)
            raise

    async def authenticated(self, identity: Identity, *, peer: str, login: str) -> None:
        await self.event(
            "auth.success",
            subject=identity.subject,
            target=login,
            details={
                "peer": peer,
                "key_fingerprint": identity.key_fingerprint,
                "cert_serial": identity.cert_serial,
                "cert_key_id": identity.cert_key_id,
                "jti": identity.jti,
                "roles": sorted(identity.roles),
                "expires": identity.expires.isoformat(),
            },
        )

    async def event(self, kind: str, *, alongside: Callable[[], object] | None = None, **fields: Any) -> None:
        """Appends an audit event (group-committed on the database thread); StoreError when it could not be
        written. `alongside` is a row write committed in the same transaction, or not at all."""
        await self._journal.append(Pending(kind, alongside=alongside, **fields))

    def event_soon(self, kind: str, **fields: Any) -> None:
        """For synchronous callbacks whose action is already refused: writes the event in the background."""

        async def write() -> None:
            try:
                await self.event(kind, **fields)
            except StoreError as exc:
                log.error("audit event %s could not be written: %s", kind, exc)

        self.spawn(write())

    def schedule_expiry(self, conn: AgentConnection) -> asyncio.TimerHandle:
        assert conn.identity is not None
        delay = (conn.identity.expires - datetime.now(UTC)).total_seconds()
        return asyncio.get_running_loop().call_later(max(0.0, delay), self._expire, conn)

    def _expire(self, conn: AgentConnection) -> None:
        self.spawn(self._end_connection(conn, "token expired"))

    async def _end_connection(self, conn: AgentConnection, reason: str) -> None:
        """Ends every session of `conn` with `reason`, waits until they are on record, then disconnects."""
        sessions = [s for s in self.live if s.connection is conn]
        for session in sessions:
            session.relay.fail(reason, EXIT_FAILURE)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while any(s in self.live for s in sessions) and loop.time() < deadline:
            await asyncio.sleep(0.02)
        # The client closes its channels first, so no line is lost in transit (a multiplexing client drops
        # what it had not yet written out when the connection goes).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(s.relay.agent.wait_closed() for s in sessions)), 5)
        if conn.conn is not None:
            conn.conn.close()

    def kill_local(self, session_id: str, by: str) -> bool:
        for session in self.live:
            if session.id == session_id:
                session.relay.fail(f"session ended by {by}", EXIT_FAILURE)
                return True
        return False

    async def run_background(self) -> None:
        """Recording flushes, kills asked for through other processes, and approval wake-ups."""
        loop = asyncio.get_running_loop()
        self.approvals.subscribe(lambda approval: loop.call_soon_threadsafe(self.notify, approval.id))
        interval = self.config.server.recording_flush_s
        ticks = 0
        while True:
            await asyncio.sleep(interval)
            for session in list(self.live):
                session.relay.flush()
            ticks += 1
            if self.live and ticks * interval >= KILL_POLL_S:
                ticks = 0
                for session_id in await self.db(session_store.kills_for, self.pid):
                    self.kill_local(session_id, "an administrator")

    async def watch_decisions(self) -> None:
        """Decisions made through other processes (other workers, another bastion on the same database) wake
        the requests held here within DECISION_POLL_S: one query for all of them while any is held."""
        while True:
            await asyncio.sleep(DECISION_POLL_S)
            if not self._waiters:
                continue
            try:
                decided = await self.db(self.approvals.decided_among, list(self._waiters))
            except Exception as exc:  # each held request still polls for itself, more slowly
                log.error("cannot poll approval decisions: %s", type(exc).__name__)
                continue
            for approval_id in decided:
                self.notify(approval_id)

    async def drain(self, grace: float) -> None:
        """Lets live sessions finish for `grace` seconds, then ends the rest with a line to the agent."""
        self.draining = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while self.live and loop.time() < deadline:
            await asyncio.sleep(0.05)
        for session in list(self.live):
            session.relay.fail("the bastion is shutting down", EXIT_FAILURE)
        # Sessions leave `live` once their recording, row and close event are written; a close that cannot be
        # written yet is retried for CLOSE_RETRY_FOR_S, and its last attempt may wait out the busy timeout.
        finalize_deadline = loop.time() + CLOSE_RETRY_FOR_S + BUSY_TIMEOUT_S + 5
        while self.live and loop.time() < finalize_deadline:
            await asyncio.sleep(0.02)
        self.pool.close()
        for conn in list(self.connections):
            if conn.conn is not None:
                conn.conn.close()

    def close(self) -> None:
        self._db.shutdown(wait=True)
