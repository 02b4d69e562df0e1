"""From a channel request to a decision, and the hold: the agent waits while a human decides.

Every exec, shell and subsystem request is decided by the policy and the decision is audited before anything
else happens. A held request waits on the shared approval queue: an approval given through this process wakes
it at once; one given through another process (another worker, or another bastion on the same database) is
seen by the gateway's decision watcher, one query for every held request every 50 ms, and each held request
also reads its own state every POLL_S seconds as a backstop. The agent hanging up
withdraws the request; `BASTION_WAIT=0` returns 75 with the id at once, and a later run with
`BASTION_APPROVAL=<id>` uses the approval for exactly the same subject, target and command text.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import asyncssh

from bastion.approvals import ApprovalError, State
from bastion.classify import Verdict, classify
from bastion.classify.scp import is_legacy_scp
from bastion.errors import BastionError
from bastion.gateway.messages import EXIT_DENIED, EXIT_PENDING, line
from bastion.policy import Decision, Request, RequestKind
from bastion.store.targets import Target

if TYPE_CHECKING:
    from bastion.gateway.relay import AgentChannelSession
    from bastion.gateway.server import AgentConnection

POLL_S = 1.0
SHELL_TEXT = "(interactive shell)"


@dataclass(frozen=True)
class Asked:
    """What the agent asked for on this channel, as the policy and the approval queue see it."""

    request: Request
    text: str  # the exact command text, or SHELL_TEXT / the subsystem name
    verdict: Verdict | None


class Ended(Exception):
    """The channel got its answer (denied, pending, timed out); nothing more is to be done."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def asked(channel: AgentChannelSession, conn: AgentConnection) -> Asked:
    if channel.kind == "subsystem":
        name = channel.command or ""
        kind = RequestKind.SFTP if name == "sftp" else None
        if kind is None:
            raise Ended(f"denied: subsystem '{name}' on {conn.login} (no policy allows it)", EXIT_DENIED)
        return Asked(Request(kind, detail=name), name, None)
    if channel.kind == "shell":
        return Asked(Request(RequestKind.SHELL, detail=SHELL_TEXT), SHELL_TEXT, None)
    text = channel.command or ""
    if is_legacy_scp(text):
        return Asked(Request(RequestKind.SCP, detail=text), text, None)
    verdict = classify(text, conn.gateway.rules)
    return Asked(Request(RequestKind.EXEC, verdict=verdict.verdict, detail=text), text, verdict)


async def decide(conn: AgentConnection, target: Target, ask: Asked) -> Decision:
    identity = conn.identity
    assert identity is not None
    decision = conn.gateway.policy.decide(identity.roles, target.name, target.labels, ask.request)
    details = {"request": ask.request.kind.value, "command": ask.text, **decision.to_dict()}
    if ask.verdict is not None:
        details |= {"verdict": ask.verdict.verdict, "reasons": list(ask.verdict.reasons)}
    await conn.gateway.event("request.decided", subject=identity.subject, target=target.name, details=details)
    if decision.action == "deny":
        raise Ended(f"denied: '{ask.text}' on {target.name} ({decision.reason})", EXIT_DENIED)
    return decision


async def hold(conn: AgentConnection, chan: asyncssh.SSHServerChannel[bytes], target: Target, ask: Asked,
               decision: Decision) -> str:
    """Returns the id of the approval once it is approved, for `use`; raises Ended otherwise.

    The approval is not used here: the identity is checked again first (a hold can be long), so an agent
    revoked meanwhile leaves the approval unused rather than spent on a command that never ran.
    """
    gateway, identity = conn.gateway, conn.identity
    assert identity is not None
    env = dict(chan.get_environment())
    given = env.get("BASTION_APPROVAL")
    if given:
        await _still_pending(conn, given, target, ask)
        return given
    reasons = list(ask.verdict.reasons) if ask.verdict is not None else [decision.reason]
    try:
        approval = await gateway.db(
            gateway.approvals.request, requester=identity.subject, target=target.name, command=ask.text,
            kind=decision.kind, verdict=ask.verdict.verdict if ask.verdict else None, reasons=reasons,
            rule=decision.rule, required=decision.approvals_required, wait_timeout_s=decision.wait_timeout_s,
            lifetime_s=decision.approval_lifetime_s)
    except ApprovalError as exc:
        await gateway.event("request.refused", subject=identity.subject, target=target.name,
                            details={"request": ask.request.kind.value, "command": ask.text, "reason": str(exc)})
        raise Ended(f"denied: {exc}", EXIT_DENIED) from None
    required = f"approval required: request {approval.id} for '{ask.text}' on {target.name} ({decision.reason}); "
    if env.get("BASTION_WAIT") == "0":
        raise Ended(required + f"re-run with BASTION_APPROVAL={approval.id} once it is approved", EXIT_PENDING)
    _say(chan, required + f"waiting up to {_duration(decision.wait_timeout_s)}")
    try:
        state = await _wait(conn, approval.id, decision.wait_timeout_s)
    except asyncio.CancelledError:
        with contextlib.suppress(BastionError):
            await asyncio.shield(gateway.db(gateway.approvals.withdraw, approval.id, requester=identity.subject))
        raise
    if state is State.APPROVED:
        return approval.id
    if state is State.DENIED:
        final = await gateway.db(gateway.approvals.get, approval.id)
        raise Ended(f"denied: '{ask.text}' on {target.name} by {final.denied_by}: {final.denial_reason}",
                    EXIT_DENIED)
    with contextlib.suppress(BastionError):
        await gateway.db(gateway.approvals.expire, approval.id)
    raise Ended(f"approval timed out: request {approval.id} for '{ask.text}' on {target.name} "
                f"after {_duration(decision.wait_timeout_s)}", EXIT_PENDING)


async def _wait(conn: AgentConnection, approval_id: str, timeout: float) -> State:
    """Waits for a decision: woken at once by this process, and polling for decisions made elsewhere."""
    gateway = conn.gateway
    wake = gateway.approval_waiter(approval_id)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        while True:
            state = await gateway.db(gateway.approvals.state, approval_id)
            if state is not State.PENDING:
                return state
            remaining = deadline - loop.time()
            if remaining <= 0:
                return State.EXPIRED
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), min(POLL_S, remaining))
            wake.clear()
    finally:
        gateway.forget_waiter(approval_id)


async def _still_pending(conn: AgentConnection, approval_id: str, target: Target, ask: Asked) -> None:
    """A rerun of the very same request before anyone decided is told 75 (still pending), not 77 (refused)."""
    identity = conn.identity
    assert identity is not None
    with contextlib.suppress(BastionError):
        approval = await conn.gateway.db(conn.gateway.approvals.get, approval_id)
        if (await conn.gateway.db(conn.gateway.approvals.state, approval_id) is State.PENDING
                and (approval.requester, approval.target, approval.command)
                == (identity.subject, target.name, ask.text)):
            raise Ended(f"approval required: request {approval_id} for '{ask.text}' on {target.name} is still "
                        "pending", EXIT_PENDING)


async def use(conn: AgentConnection, approval_id: str, target: Target, ask: Asked, kind: str) -> None:
    """Spends the approval on this request (once, bound to requester, target, text and kind); Ended if it can't."""
    identity = conn.identity
    assert identity is not None
    try:
        await conn.gateway.db(conn.gateway.approvals.use, approval_id, requester=identity.subject,
                              target=target.name, command=ask.text, kind=kind)
    except ApprovalError as exc:
        raise Ended(f"denied: {exc}", EXIT_DENIED) from None


def _say(chan: asyncssh.SSHServerChannel[bytes], message: str) -> None:
    chan.write(line(message, pty=bool(chan.get_terminal_type())), asyncssh.EXTENDED_DATA_STDERR)


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds % 3600 == 0 and seconds >= 3600:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0 and seconds >= 60:
        return f"{seconds // 60}m"
    return f"{seconds}s"
