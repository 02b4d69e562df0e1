"""Opening a channel: check, route, record, connect upstream, relay, and close the record.

Anything that cannot be recorded, stored or audited stops the channel before a byte reaches the target.
The exec text goes upstream through `upstream_command`, so the target's bash runs exactly what was classified,
with no profile and a cleared environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncssh

from bastion.classify import safe_locale, upstream_command
from bastion.errors import BastionError, StoreError
from bastion.gateway import admin, decisions
from bastion.gateway.context import CLOSE_RETRY_FOR_S
from bastion.gateway.messages import EXIT_FAILURE, line
from bastion.gateway.pool import Lease
from bastion.gateway.relay import EXTENDED_STDERR, AgentChannelSession, Relay, UpstreamChannelSession
from bastion.identity.model import Identity
from bastion.masking import mask_bytes
from bastion.policy.env import matches as env_matches
from bastion.recording import CastEncoder, CastHeader, RecordingSink
from bastion.store import sessions as session_store
from bastion.store import targets as target_store
from bastion.store.revocations import StoreRevocations
from bastion.store.targets import Target

if TYPE_CHECKING:
    from bastion.gateway.server import AgentConnection

log = logging.getLogger("bastion.sessions")
# The pause between attempts at writing a session's close (for how long: context.CLOSE_RETRY_FOR_S).
CLOSE_RETRY_S = 2.0

PASSED_ENV = ("TERM", "LANG")
DEFAULT_SIZE = (80, 24)
ADMIN_LOGIN = "admin"
CHANNEL_CLOSE_WAIT_S = 5.0


@dataclass(eq=False)
class LiveSession:
    record: Record
    connection: AgentConnection
    relay: Relay
    upstream: Lease | None = None
    started: float = field(default_factory=time.monotonic)

    @property
    def id(self) -> str:
        return self.record.id


def new_session_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(4)


def refuse(chan: asyncssh.SSHServerChannel[bytes], message: str, status: int) -> None:
    if not chan.is_closing():
        chan.write(line(message, pty=bool(chan.get_terminal_type())), EXTENDED_STDERR)
        chan.exit(status)


async def start_channel(conn: AgentConnection, channel: AgentChannelSession) -> None:
    chan = channel.chan
    assert chan is not None and conn.identity is not None
    try:
        await _start(conn, channel, chan)
    except asyncio.CancelledError:
        raise
    except BastionError as exc:
        refuse(chan, str(exc), EXIT_FAILURE)
    except Exception:
        log.exception("session start failed for %s on %s", conn.identity.subject, conn.login)
        refuse(chan, "internal error; the session was not started", EXIT_FAILURE)


async def _start(conn: AgentConnection, channel: AgentChannelSession, chan: asyncssh.SSHServerChannel[bytes]) -> None:
    if conn.audited is not None:
        await conn.audited
    if conn.audit_failure is not None:
        raise StoreError("the audit log cannot be written; no session was opened")
    if conn.gateway.draining:
        raise BastionError("the bastion is shutting down")
    revoked, target = await conn.gateway.db(_lookups, conn.identity, conn.login)
    if not await _identity_still_valid(conn, chan, revoked):
        return
    if conn.login == ADMIN_LOGIN:
        await admin.run(conn, channel, chan)
        return
    if target is None:
        raise BastionError(f"unknown target '{conn.login}'")
    try:
        ask = decisions.asked(channel, conn)
        decision = await decisions.decide(conn, target, ask)
        if decision.action == "approve":
            approval = await decisions.hold(conn, chan, target, ask, decision)
            # A hold can be long: revocation or expiry may have come meanwhile. Checked before the approval is
            # spent, so a refused identity leaves it unused.
            if not await _identity_still_valid(conn, chan):
                return
            await decisions.use(conn, approval, target, ask, decision.kind)
    except decisions.Ended as end:
        refuse(chan, str(end), end.status)
        return
    env = _passed_env(conn, target, dict(chan.get_environment()))
    # Every exec request goes upstream as exec of the decided text (a command, or the scp sink or source); only a
    # shell request opens a shell. Without a command asyncssh would send a shell request.
    command = None
    if channel.kind == "exec":
        term = {"TERM": channel.term[0]} if channel.term else {}
        command = upstream_command(ask.text, shell=target.shell, env={**env, **term})
    live = await _open(conn, channel, chan, target)
    await _connect(live, channel, target, command, env)


def _passed_env(conn: AgentConnection, target: Target, requested: dict[str, str]) -> dict[str, str]:
    """TERM, LANG and LC_* pass, and what the policy allows; the rest is refused and logged (BASTION_* are ours)."""
    identity = conn.identity
    assert identity is not None
    allowed = conn.gateway.policy.allowed_env(identity.roles, target.name, target.labels)
    kept, refused = {}, []
    for name, value in requested.items():
        if name in PASSED_ENV or name.startswith("LC_"):
            # A multibyte locale such as BIG5 would change how the target's bash splits the classified text.
            if name == "TERM" or safe_locale(value):
                kept[name] = value
            else:
                refused.append(f"{name} (locale {value!r})")
        elif env_matches(name, allowed):
            kept[name] = value
        elif not name.startswith("BASTION_"):
            refused.append(name)
    if refused:
        conn._refused(f"environment {', '.join(sorted(refused))}")
    return kept


def _lookups(identity: Identity, login: str) -> tuple[bool, Target | None]:
    """What a new channel needs from the database, in one trip: is the identity revoked, and the target."""
    revoked = StoreRevocations().is_revoked(identity.jti, identity.cert_serial, identity.key_fingerprint)
    return revoked, None if revoked or login == ADMIN_LOGIN else target_store.find(login)


async def _identity_still_valid(conn: AgentConnection, chan: asyncssh.SSHServerChannel[bytes],
                                revoked: bool | None = None) -> bool:
    """Revocation and expiry reach live connections too: every new channel re-checks the identity.

    `revoked` is the revocation lookup when the caller has just made it.
    """
    gateway, identity = conn.gateway, conn.identity
    assert identity is not None
    expired = identity.expires <= datetime.now(UTC)
    if not expired and revoked is None:
        revoked = await gateway.db(StoreRevocations().is_revoked, identity.jti, identity.cert_serial,
                                   identity.key_fingerprint)
    if not expired and not revoked:
        return True
    await gateway.event("auth.failure", subject=identity.subject, target=conn.login,
                        details={"reason": "expired" if expired else "revoked", "stage": "channel",
                                 "peer": conn.peer, "key_fingerprint": identity.key_fingerprint,
                                 "cert_serial": identity.cert_serial, "cert_key_id": identity.cert_key_id,
                                 "jti": identity.jti})
    refuse(chan, "token expired" if expired else "credentials revoked", EXIT_FAILURE)
    # Closing the connection at once could overtake the line: a multiplexing client drops what it had not
    # yet written out when the connection goes, so wait for the client to close the channel first.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(chan.wait_closed(), CHANNEL_CLOSE_WAIT_S)
    if conn.conn is not None:
        conn.conn.close()
    return False


@dataclass
class Record:
    """An open recording with its session row: what every channel gets before it does anything."""

    id: str
    relative: Path
    sink: RecordingSink
    encoder: CastEncoder


async def open_record(conn: AgentConnection, channel: AgentChannelSession, target_name: str, title: str) -> Record:
    """Opens the recording and the session row and audits the open; StoreError when any of it fails."""
    gateway, identity = conn.gateway, conn.identity
    assert identity is not None
    session_id = new_session_id()
    relative = Path(session_id[:8]) / f"{session_id}.cast"
    sink = RecordingSink(gateway.recordings / relative)
    cols, rows = channel.term[1][:2] if channel.term else DEFAULT_SIZE
    term_type = channel.term[0] if channel.term else ""
    start = time.monotonic()
    try:
        sink.write(CastHeader(cols or 80, rows or 24, int(time.time()), title,
                              {"TERM": term_type, "SHELL": "/bin/bash"}).encode())
        sink.flush()
        row = functools.partial(session_store.open_session, session_id, subject=identity.subject,
                                target=target_name, kind=channel.kind, command=channel.command,
                                recording=str(relative), pid=gateway.pid)
        await gateway.event("session.open", subject=identity.subject, target=target_name, session_id=session_id,
                            details={"kind": channel.kind, "command": channel.command, "recording": str(relative)},
                            alongside=row)
    except asyncio.CancelledError:
        # The agent went away while the open was being committed, which still happens: record the end too.
        gateway.spawn(close_record(conn, Record(session_id, relative, sink, CastEncoder(start)), None, None,
                                   {"abandoned": True}))
        raise
    except Exception:
        sink.close()
        raise StoreError("cannot record or audit this session; refused") from None
    return Record(session_id, relative, sink, CastEncoder(start))


async def close_record(conn: AgentConnection, record: Record, status: int | None, signal: str | None,
                       extra: dict[str, object]) -> None:
    """Closes the recording (hashing it) and the session row, and audits the close.

    A recording that cannot be flushed or synced (a full or failing disk) is still closed and bound into the
    chain as far as it was written, with `recording_error` saying why, so the session does not stay open and
    its file stays checked by `audit verify --recordings`.
    """
    gateway, sink = conn.gateway, record.sink
    with contextlib.suppress(StoreError):
        sink.flush()  # nothing more is recorded once the relay is done; the fsync waits on a thread
    error = sink.error
    try:
        await asyncio.to_thread(sink.close)
    except (OSError, StoreError) as exc:
        error = error or f"cannot close recording {sink.path.name}: {getattr(exc, 'strerror', None) or exc}"
    if error is not None:
        log.error("session %s: %s; its recording is bound as written", record.id, error)
    row = functools.partial(session_store.close_session, record.id, exit_status=status, exit_signal=signal,
                            sha256=sink.digest, size=sink.size)
    details = {"exit_status": status, "exit_signal": signal, "recording": str(record.relative),
               "recording_sha256": sink.digest, "recording_size": sink.size, **extra,
               **({"recording_error": error} if error else {})}
    # The command has run: its close (which binds the recording into the chain) is worth waiting for through
    # a database outage, while the agent's exit status waits too.
    loop = asyncio.get_running_loop()
    give_up = None
    while True:
        try:
            await gateway.event("session.close", subject=conn.identity.subject if conn.identity else None,
                                target=conn.login, session_id=record.id, details=details, alongside=row)
            return
        except StoreError as exc:
            give_up = give_up or loop.time() + CLOSE_RETRY_FOR_S
            if loop.time() >= give_up:
                raise
            log.warning("session %s: its close could not be written (%s); retrying", record.id, exc)
            await asyncio.sleep(CLOSE_RETRY_S)


async def _open(conn: AgentConnection, channel: AgentChannelSession, chan: asyncssh.SSHServerChannel[bytes],
                target: Target) -> LiveSession:
    """Opens the record and makes the session live, with the masking its identity and target call for."""
    gateway, identity = conn.gateway, conn.identity
    assert identity is not None
    masking = gateway.masking.for_session(identity.roles, target.name, target.labels)
    shown = {"exec": channel.command, "shell": "shell"}.get(channel.kind, f"subsystem {channel.command}")
    title = mask_bytes(masking, f"{identity.subject}@{target.name}: {shown}".encode()).decode(errors="replace")
    record = await open_record(conn, channel, target.name, title)

    def done(status: int | None, signal: str | None) -> None:
        gateway.spawn(_finish(live, status, signal))

    relay = Relay(chan, record.sink, record.encoder, masking, done)
    live = LiveSession(record, conn, relay)
    gateway.live.add(live)
    channel.bind(relay)
    return live


async def _connect(live: LiveSession, channel: AgentChannelSession, target: Target, command: str | None,
                   env: dict[str, str]) -> None:
    gateway, relay = live.connection.gateway, live.relay

    def open_channel(conn: asyncssh.SSHClientConnection) -> Awaitable[tuple[asyncssh.SSHClientChannel[bytes], Any]]:
        return conn.create_session(
            lambda: UpstreamChannelSession(relay),
            command,
            subsystem=channel.command if channel.kind == "subsystem" else None,
            term_type=channel.term[0] if channel.term else None,
            term_size=channel.term[1] if channel.term else None,
            term_modes=channel.term[2] if channel.term else None,
            env=env if channel.kind == "shell" else {},
            encoding=None,
        )

    try:
        (upstream_chan, _), live.upstream = await gateway.pool.open(target, open_channel)
    except BastionError as exc:
        relay.fail(str(exc), EXIT_FAILURE)
        return
    except (OSError, asyncssh.Error) as exc:
        relay.fail(f"target {target.name} refused the session: {getattr(exc, 'reason', exc)}", EXIT_FAILURE)
        return
    except asyncio.CancelledError:
        relay.agent_lost()
        raise
    if relay.done:
        upstream_chan.close()
        return
    relay.attach(upstream_chan)


async def _finish(live: LiveSession, status: int | None, signal: str | None) -> None:
    try:
        if live.relay.upstream is not None:
            live.relay.upstream.close()
        if live.upstream is not None:
            live.upstream.release()
        await close_record(live.connection, live.record, status, signal,
                           {"masked": live.relay.mask_counts,
                            "duration_s": round(time.monotonic() - live.started, 3)})
    except Exception:
        log.exception("closing session %s failed", live.id)
    finally:
        live.connection.gateway.live.discard(live)
        live.relay.release_agent()
