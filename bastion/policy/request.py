"""What the gateway asks (a Request) and what the policy answers (a Decision)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

Action = Literal["allow", "approve", "deny"]
Kind = Literal["read", "write", "shell", "sftp", "scp", "port_forwarding", "x11", "agent_forwarding", "env"]

# allow > approve > deny: across several roles the most permissive action wins.
RANK: dict[str, int] = {"deny": 0, "approve": 1, "allow": 2}


class RequestKind(StrEnum):
    EXEC = "exec"
    SHELL = "shell"
    SFTP = "sftp"
    SCP = "scp"
    PORT_FORWARD = "port_forward"
    REMOTE_FORWARD = "remote_forward"
    X11 = "x11"
    AGENT_FORWARD = "agent_forward"
    ENV = "env"


_KIND_OF: dict[RequestKind, Kind] = {
    RequestKind.SHELL: "shell",
    RequestKind.SFTP: "sftp",
    RequestKind.SCP: "scp",
    RequestKind.PORT_FORWARD: "port_forwarding",
    RequestKind.REMOTE_FORWARD: "port_forwarding",
    RequestKind.X11: "x11",
    RequestKind.AGENT_FORWARD: "agent_forwarding",
    RequestKind.ENV: "env",
}

# How each kind is named in the one line the agent reads.
LABEL: dict[Kind, str] = {
    "read": "READ",
    "write": "WRITE",
    "shell": "shell",
    "sftp": "sftp",
    "scp": "scp",
    "port_forwarding": "port forwarding",
    "x11": "X11 forwarding",
    "agent_forwarding": "agent forwarding",
    "env": "env",
}


@dataclass(frozen=True)
class Request:
    """One request on a channel; `verdict` is the classifier's for EXEC, `detail` only feeds messages (and
    names the variable for ENV)."""

    kind: RequestKind
    verdict: str | None = None
    detail: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", RequestKind(self.kind))  # "exec" and RequestKind.EXEC are the same request

    @property
    def policy_kind(self) -> Kind:
        """EXEC READ → read; any other verdict, or none, → write: what was not proven READ is held as WRITE."""
        if self.kind is RequestKind.EXEC:
            return "read" if self.verdict == "READ" else "write"
        return _KIND_OF[self.kind]

    @property
    def note(self) -> str:
        """The prefix that tells the agent why a non-READ command counts as WRITE."""
        if self.kind is not RequestKind.EXEC or self.verdict in ("READ", "WRITE"):
            return ""
        if self.verdict == "UNKNOWN":
            return "UNKNOWN is treated as WRITE; "
        return "an unclassified command is treated as WRITE; "


@dataclass(frozen=True)
class Decision:
    """The answer for one request. `rule` and `reason` are safe to show the agent: they name a rule, nothing more."""

    action: Action
    rule: str
    reason: str
    kind: Kind
    approvals_required: int = 0
    wait_timeout_s: float = 300.0
    approval_lifetime_s: float = 900.0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"action": self.action, "kind": self.kind, "rule": self.rule, "reason": self.reason}
        if self.action == "approve":
            out |= {"approvals_required": self.approvals_required, "wait_timeout_s": self.wait_timeout_s,
                    "approval_lifetime_s": self.approval_lifetime_s}
        return out
