"""`ssh admin@bastion COMMAND`: approvals, sessions and recordings for the humans who oversee agents.

The identity comes from the same certificate and token as an agent's; what it may do comes from the policy's
admin permissions (and approve scopes for `approve` and `deny`). Each admin channel is recorded and audited like
any other session. Output is a rich table when a pty is attached, plain aligned text otherwise, or JSON with
`--json`. Not allowed → exit 77 with one line; a usage error → exit 2.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import shlex
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import asyncssh
from rich.console import Console
from rich.table import Table
from rich.text import Text

from bastion.approvals import Approval, ApprovalError
from bastion.errors import BastionError, NotFound
from bastion.gateway.messages import EXIT_DENIED, shown
from bastion.store import sessions as session_store
from bastion.store import targets as target_store
from bastion.textfmt import aligned

if TYPE_CHECKING:
    from bastion.gateway.relay import AgentChannelSession
    from bastion.gateway.server import AgentConnection

log = logging.getLogger("bastion.admin")
EXIT_USAGE = 2

HELP = """\
ssh admin@bastion COMMAND

  whoami                                  who you are to the bastion, and what you may do here
  approvals [--json]                      pending requests, newest first
  approvals show ID [--json]              one request: requester, target, command, verdict, reasons, age, expiry
  approve ID [--comment TEXT]             approve a held request (never your own)
  deny ID --reason TEXT                   deny a held request; the agent sees your reason
  sessions [--json]                       live and recent sessions
  sessions show ID [--json]               one session
  sessions kill ID                        end a live session (recorded)
  recording ID                            the session's asciicast, e.g. ssh admin@bastion recording ID > s.cast
  help                                    this text
"""

NEEDS = {
    "approvals": "approvals.view",
    "approve": "approvals.decide",
    "deny": "approvals.decide",
    "sessions": "sessions.view",
    "kill": "sessions.kill",
    "recording": "recordings.view",
}


class Usage(BastionError):
    """A command line the admin parser does not accept."""


class Denied(BastionError):
    """Not allowed for this identity."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise Usage(f"{message} (try 'help')")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="admin", add_help=False)
    verbs = parser.add_subparsers(dest="verb", required=True, parser_class=_Parser)
    verbs.add_parser("help", add_help=False)
    verbs.add_parser("whoami", add_help=False).add_argument("--json", action="store_true")
    approvals = verbs.add_parser("approvals", add_help=False)
    approvals.add_argument("action", nargs="?", choices=("show",))
    approvals.add_argument("id", nargs="?")
    approvals.add_argument("--json", action="store_true")
    approve = verbs.add_parser("approve", add_help=False)
    approve.add_argument("id")
    approve.add_argument("--comment")
    deny = verbs.add_parser("deny", add_help=False)
    deny.add_argument("id")
    deny.add_argument("--reason", required=True)
    sessions = verbs.add_parser("sessions", add_help=False)
    sessions.add_argument("action", nargs="?", choices=("show", "kill"))
    sessions.add_argument("id", nargs="?")
    sessions.add_argument("--json", action="store_true")
    verbs.add_parser("recording", add_help=False).add_argument("id")
    return parser


async def run(conn: AgentConnection, channel: AgentChannelSession, chan: asyncssh.SSHServerChannel[bytes]) -> None:
    from bastion.gateway.sessions import close_record, open_record

    identity = conn.identity
    assert identity is not None
    eol = "\r\n" if channel.term else "\n"
    text = channel.command if channel.kind == "exec" else None
    record = await open_record(conn, channel, "admin", f"{identity.subject}@admin: {text or channel.kind}")
    status = 0
    try:
        if text is None:
            raise Usage("admin takes a command: ssh admin@bastion help")
        output, raw = await _dispatch(conn, channel, text)
    except Denied as exc:
        output, raw, status = f"bastion: denied: {shown(exc)}\n", None, EXIT_DENIED
    except Usage as exc:
        output, raw, status = f"bastion: {shown(exc)}\n", None, EXIT_USAGE
    except (ApprovalError, NotFound, BastionError) as exc:
        status = EXIT_DENIED if isinstance(exc, ApprovalError) else 1
        output, raw = f"bastion: {shown(exc)}\n", None
    except Exception:
        log.exception("admin command failed for %s: %s", identity.subject, text)
        output, raw, status = "bastion: internal error; see the bastion's log\n", None, 255
    data = output.replace("\n", eol).encode()
    record.sink.write(record.encoder.output(time.monotonic(), data))
    if raw is not None:
        record.sink.write(record.encoder.marker(time.monotonic(), f"streamed {len(raw)} bytes of a recording"))
    await close_record(conn, record, status, None, {"admin": True})
    if status:
        chan.write(data, asyncssh.EXTENDED_DATA_STDERR)
    else:
        chan.write(raw if raw is not None else data)
    chan.exit(status)


async def _dispatch(conn: AgentConnection, channel: AgentChannelSession, text: str) -> tuple[str, bytes | None]:
    """Runs one admin command; returns its text, or the raw bytes to stream (recordings)."""
    gateway, identity = conn.gateway, conn.identity
    assert identity is not None
    try:
        argv = shlex.split(text)
    except ValueError as exc:
        raise Usage(f"cannot parse the command: {exc}") from None
    args = _parser().parse_args(argv or ["help"])
    need = NEEDS.get("kill" if args.verb == "sessions" and args.action == "kill" else args.verb)
    permissions = gateway.policy.admin_permissions(identity.roles)
    if need is not None and need not in permissions:
        raise Denied(f"'{args.verb}' is not allowed for your roles")
    view = _View(channel, getattr(args, "json", False))
    if args.verb not in ("approve", "deny"):
        await gateway.event("admin." + args.verb, subject=identity.subject, target="admin",
                            details={"command": text})
    if args.verb == "help":
        return HELP, None
    if args.verb == "whoami":
        return view.fields({"subject": identity.subject, "name": identity.display_name,
                            "roles": ", ".join(sorted(identity.roles)) or "-",
                            "admin": ", ".join(sorted(permissions)) or "-", "issuer": identity.issuer,
                            "expires": identity.expires.isoformat(), "key": identity.key_fingerprint}), None
    if args.verb == "approvals":
        return await _approvals(conn, view, args), None
    if args.verb in ("approve", "deny"):
        return await _decide(conn, args), None
    if args.verb == "sessions":
        return await _sessions(conn, view, args), None
    info = await gateway.db(session_store.get, args.id)
    path = gateway.recordings / info.recording
    if gateway.recordings.resolve() not in path.resolve().parents:
        raise NotFound(f"no recording for session {args.id}")
    return "", path.read_bytes()


async def _approvals(conn: AgentConnection, view: _View, args: argparse.Namespace) -> str:
    queue = conn.gateway.approvals
    if args.action == "show":
        if not args.id:
            raise Usage("approvals show needs an ID")
        return view.fields(_approval_fields(await conn.gateway.db(queue.get, args.id)))
    pending = await conn.gateway.db(queue.pending)
    now = datetime.now(UTC)
    rows = [[a.id, a.requester, a.target, a.command, a.kind, f"{len(a.approvers)}/{a.required}",
             _age(now - a.created), _age(a.wait_deadline - now)] for a in pending]
    return view.table(["ID", "REQUESTER", "TARGET", "COMMAND", "KIND", "APPROVALS", "AGE", "EXPIRES IN"], rows,
                      [_approval_fields(a) for a in pending])


async def _decide(conn: AgentConnection, args: argparse.Namespace) -> str:
    gateway, identity = conn.gateway, conn.identity
    assert identity is not None
    request = await gateway.db(gateway.approvals.get, args.id)
    target = await gateway.db(target_store.find, request.target)
    labels = target.labels if target is not None else {}
    may = gateway.policy.may_approve(identity.roles, request.target, labels)
    if args.verb == "deny":
        await gateway.db(gateway.approvals.deny, args.id, approver=identity.subject, reason=args.reason,
                         may_approve=may)
        return f"denied {args.id}: '{shown(request.command)}' on {request.target}\n"
    done = await gateway.db(gateway.approvals.approve, args.id, approver=identity.subject, comment=args.comment,
                            may_approve=may)
    if len(done.approvers) < done.required:
        return f"approved {args.id} ({len(done.approvers)}/{done.required}): waiting for more approvers\n"
    return f"approved {args.id}: '{shown(request.command)}' on {request.target} may run once\n"


async def _sessions(conn: AgentConnection, view: _View, args: argparse.Namespace) -> str:
    gateway, identity = conn.gateway, conn.identity
    assert identity is not None
    if args.action in ("show", "kill") and not args.id:
        raise Usage(f"sessions {args.action} needs an ID")
    if args.action == "kill":
        if not await gateway.db(session_store.request_kill, args.id):
            raise NotFound(f"no live session {args.id}")
        gateway.kill_local(args.id, identity.subject)
        return f"session {args.id} is being ended\n"
    if args.action == "show":
        return view.fields(_session_fields(await gateway.db(session_store.get, args.id)))
    recent = await gateway.db(session_store.recent)
    rows = [[s.id, s.subject, s.target, s.kind, s.command or "", "live" if s.ended is None else "ended",
             "" if s.exit_status is None else s.exit_status] for s in recent]
    return view.table(["ID", "SUBJECT", "TARGET", "KIND", "COMMAND", "STATE", "EXIT"], rows,
                      [_session_fields(s) for s in recent])


def _approval_fields(a: Approval) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {"id": a.id, "state": a.state.value, "requester": a.requester, "target": a.target,
            "command": a.command, "kind": a.kind, "verdict": a.verdict, "reasons": list(a.reasons),
            "rule": a.rule, "approvals": f"{len(a.approvers)}/{a.required}",
            "approvers": [f"{x.subject}" + (f" ({x.comment})" if x.comment else "") for x in a.approvers],
            "age": _age(now - a.created), "expires": a.wait_deadline.isoformat(),
            "denied_by": a.denied_by, "denial_reason": a.denial_reason}


def _session_fields(s: session_store.SessionInfo) -> dict[str, Any]:
    return {"id": s.id, "subject": s.subject, "target": s.target, "kind": s.kind, "command": s.command,
            "started": s.started.isoformat() if s.started else None,
            "ended": s.ended.isoformat() if s.ended else None, "exit_status": s.exit_status,
            "exit_signal": s.exit_signal, "recording": s.recording, "recording_sha256": s.recording_sha256}


def _age(delta: Any) -> str:
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"


class _View:
    """Renders for the reader: rich with a pty, aligned text without, JSON on request."""

    def __init__(self, channel: AgentChannelSession, as_json: bool) -> None:
        self.width = channel.term[1][0] if channel.term else 0
        self.json = as_json

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[Any]], records: list[dict[str, Any]]) -> str:
        if self.json:
            return json.dumps(records, indent=2, default=str) + "\n"
        if self.width:
            table = Table(*headers)
            for row in rows:
                table.add_row(*(Text(shown(c)) for c in row))  # Text: an agent's command is never markup
            return _rich(table, self.width)
        return aligned(headers, [[shown(c) for c in row] for row in rows])

    def fields(self, record: dict[str, Any]) -> str:
        if self.json:
            return json.dumps(record, indent=2, default=str) + "\n"
        safe = {k: shown("; ".join(v) if isinstance(v, list) else v)
                for k, v in record.items() if v not in (None, [])}
        if self.width:
            table = Table("FIELD", "VALUE", show_header=False)
            for key, value in safe.items():
                table.add_row(key, Text(value))
            return _rich(table, self.width)
        width = max(len(k) for k in safe)
        return "".join(f"{k.ljust(width)}  {v}\n" for k, v in safe.items())


def _rich(renderable: Table, width: int) -> str:
    buffer = io.StringIO()
    Console(file=buffer, force_terminal=True, width=width, color_system="standard").print(renderable)
    return buffer.getvalue()
