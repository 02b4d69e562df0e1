"""Authenticated upstream connections kept open and shared by sessions to the same target.

Why: the key exchange and authentication of the upstream leg cost more than everything else a short command
does, so a new session rides an open connection to its target when one has room. Each session still gets its
own channel (so its own recording, masking and audit); sessions of different agents may share a transport.

- Keyed on the target's whole record (name, address, user, pinned host key, sealed credential): a target
  removed and added again with another key or credential never reaches an old connection, and every new
  connection checks the pinned host key.
- At most `max_channels` sessions per connection (below sshd's MaxSessions, 10 by default); more sessions
  open more connections. A connection being opened counts its reserved sessions, so a burst of sessions to a
  new target shares a few connections instead of opening one each.
- Health: a closed connection leaves the pool as soon as asyncssh reports it; a channel that cannot be opened
  on a reused connection retires that connection and is retried once on a fresh one.
- A connection with no session for `idle_s` seconds is closed; `close()` closes them all (shutdown).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import asyncssh

from bastion.store.targets import Target

log = logging.getLogger("bastion.pool")

PoolKey = tuple[str, str, int, str, str, str, str]
Connect = Callable[[Target], Awaitable[asyncssh.SSHClientConnection]]
C = TypeVar("C")


def pool_key(target: Target) -> PoolKey:
    return (target.name, target.host, target.port, target.user, target.credential_kind, target.sealed_credential,
            target.host_key)


@dataclass(eq=False)
class _Entry:
    key: PoolKey
    number: int
    opening: asyncio.Future[asyncssh.SSHClientConnection]
    sessions: int = 0
    used: bool = False  # has carried a session before: a failure on it may be staleness, worth one retry
    retired: bool = False  # takes no new sessions; closed once its sessions end
    idle: asyncio.TimerHandle | None = None
    watcher: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def conn(self) -> asyncssh.SSHClientConnection | None:
        if not self.opening.done() or self.opening.cancelled() or self.opening.exception() is not None:
            return None
        return self.opening.result()

    def usable(self, max_channels: int) -> bool:
        conn = self.conn
        alive = not self.opening.done() or (conn is not None and not conn.is_closed())
        return alive and not self.retired and self.sessions < max_channels


class Lease:
    """One session's place on a pooled connection; `release()` once the session has ended."""

    def __init__(self, pool: UpstreamPool, entry: _Entry, conn: asyncssh.SSHClientConnection) -> None:
        self._pool = pool
        self.entry = entry
        self.conn = conn
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._pool._release(self.entry)


class UpstreamPool:
    def __init__(self, connect: Connect, *, max_channels: int = 8, idle_s: float = 60.0) -> None:
        self._connect = connect
        self.max_channels = max_channels
        self.idle_s = idle_s
        self._entries: dict[PoolKey, list[_Entry]] = {}
        self._opened = 0
        self._closed = False

    @property
    def connections(self) -> int:
        return sum(len(entries) for entries in self._entries.values())

    async def open(self, target: Target, open_channel: Callable[[asyncssh.SSHClientConnection], Awaitable[C]]
                   ) -> tuple[C, Lease]:
        """Runs `open_channel` on a pooled connection to `target`; returns its result and the session's lease.

        Raises what connecting raises (BastionError for a refused host key or credential) or what
        `open_channel` raises on a fresh connection.
        """
        lease, reused = await self._acquire(target, fresh=False)
        try:
            return await open_channel(lease.conn), lease
        except (OSError, asyncssh.Error) as exc:
            lease.release()
            if not reused:
                raise
            self._retire(lease.entry, f"channel open failed: {getattr(exc, 'reason', exc)}")
        except BaseException:
            lease.release()
            raise
        lease, _ = await self._acquire(target, fresh=True)
        try:
            return await open_channel(lease.conn), lease
        except BaseException:
            lease.release()
            raise

    def close(self) -> None:
        """Closes every connection and takes no more sessions (shutdown)."""
        self._closed = True
        for entries in list(self._entries.values()):
            for entry in list(entries):
                self._drop(entry, "bastion is shutting down")

    async def _acquire(self, target: Target, *, fresh: bool) -> tuple[Lease, bool]:
        if self._closed:
            raise asyncssh.ChannelOpenError(asyncssh.OPEN_CONNECT_FAILED, "the upstream pool is closed")
        key = pool_key(target)
        entries = self._entries.setdefault(key, [])
        entry = None if fresh else next((e for e in entries if e.usable(self.max_channels)), None)
        if entry is None:
            self._opened += 1
            entry = _Entry(key, self._opened, asyncio.ensure_future(self._connect(target)))
            entries.append(entry)
            entry.opening.add_done_callback(lambda _: self._opened_or_failed(entry))
        reused = entry.used
        entry.sessions += 1
        entry.used = True
        if entry.idle is not None:
            entry.idle.cancel()
            entry.idle = None
        try:
            # Shielded: a session given up while the connection is being made must not abort it for the others.
            conn = await asyncio.shield(entry.opening)
        except BaseException:
            self._release(entry)
            raise
        return Lease(self, entry, conn), reused

    def _opened_or_failed(self, entry: _Entry) -> None:
        conn = entry.conn
        if conn is None:
            self._forget(entry)
            if not entry.opening.cancelled():
                entry.opening.exception()  # retrieved here; each waiting session raises it for itself
            return
        peer = conn.get_extra_info("sockname") or ("?", 0)
        log.info("upstream connection %d to %s opened from %s:%s", entry.number, entry.key[0], peer[0], peer[1])
        entry.watcher = asyncio.ensure_future(self._watch(entry, conn))
        if self._closed:
            self._drop(entry, "bastion is shutting down")
        elif entry.sessions == 0:
            self._idle(entry)

    async def _watch(self, entry: _Entry, conn: asyncssh.SSHClientConnection) -> None:
        await conn.wait_closed()
        if self._forget(entry):
            log.info("upstream connection %d to %s closed", entry.number, entry.key[0])

    def _release(self, entry: _Entry) -> None:
        entry.sessions -= 1
        if entry.sessions > 0 or entry.conn is None or entry not in self._entries.get(entry.key, []):
            return
        if entry.retired or self._closed:
            self._drop(entry, "retired")
        else:
            self._idle(entry)

    def _idle(self, entry: _Entry) -> None:
        if entry.idle is None:
            entry.idle = asyncio.get_running_loop().call_later(
                self.idle_s, lambda: self._drop(entry, f"idle for {self.idle_s:g} s"))

    def _retire(self, entry: _Entry, reason: str) -> None:
        if not entry.retired:
            entry.retired = True
            log.info("upstream connection %d to %s retired: %s", entry.number, entry.key[0], reason)
        if entry.sessions == 0:
            self._drop(entry, "retired")

    def _drop(self, entry: _Entry, reason: str) -> None:
        if entry.idle is not None:
            entry.idle.cancel()
            entry.idle = None
        if self._forget(entry):
            log.info("upstream connection %d to %s closed: %s", entry.number, entry.key[0], reason)
        conn = entry.conn
        if conn is not None:
            conn.close()
        elif not entry.opening.done():
            entry.opening.cancel()

    def _forget(self, entry: _Entry) -> bool:
        entries = self._entries.get(entry.key, [])
        if entry not in entries:
            return False
        entries.remove(entry)
        if not entries:
            with contextlib.suppress(KeyError):
                del self._entries[entry.key]
        return True
