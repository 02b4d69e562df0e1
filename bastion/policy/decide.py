"""The decision for one request: roles × target × request kind → allow, approve or deny, with the rule's name."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from bastion.policy import env
from bastion.policy.model import PolicyFile, Role, TargetRule, read_policy_file
from bastion.policy.request import LABEL, RANK, Action, Decision, Kind, Request, RequestKind

DEFAULT_DENY = "default: deny"


@dataclass(frozen=True)
class _Match:
    """The first rule of one role that matches the target."""

    role: str
    index: int
    rule: TargetRule

    @property
    def ident(self) -> str:
        return f"{self.role}/{self.rule.name or f'targets[{self.index}]'}"

    def title(self, what: str, action: Action) -> str:
        return f"{self.role} on {self.rule.match.text()}: {what} → {action}"


class Policy:
    """The loaded policy; every method is pure and cheap enough to call per request."""

    def __init__(self, spec: PolicyFile) -> None:
        self.spec = spec

    @property
    def role_names(self) -> list[str]:
        return sorted(self.spec.roles)

    def _roles(self, roles: Iterable[str]) -> list[tuple[str, Role]]:
        """Known roles in name order (so ties resolve the same way every time); unknown names are ignored."""
        return [(name, self.spec.roles[name]) for name in sorted(set(roles)) if name in self.spec.roles]

    def _matches(self, roles: Iterable[str], target: str, labels: Mapping[str, str]) -> list[_Match]:
        found = []
        for name, role in self._roles(roles):
            for index, rule in enumerate(role.targets):
                if rule.match.matches(target, labels):
                    found.append(_Match(name, index, rule))
                    break
        return found

    def decide(self, roles: Iterable[str], target: str, labels: Mapping[str, str], req: Request) -> Decision:
        """Most permissive action across the identity's roles; see the package docstring for ties."""
        if req.kind is RequestKind.ENV:
            return self._decide_env(roles, target, labels, req.detail)
        kind = req.policy_kind
        what = LABEL[kind]
        matches = self._matches(roles, target, labels)
        if not matches:
            return self._default(roles, target, kind, f"{req.note}{what}")
        best = max(RANK[getattr(m.rule, kind)] for m in matches)
        winners = [m for m in matches if RANK[getattr(m.rule, kind)] == best]
        action: Action = getattr(winners[0].rule, kind)
        if action != "approve":
            win = winners[0]
            verb = "is allowed" if action == "allow" else "is denied"
            return Decision(action, win.title(kind, action), f"{req.note}{what} {verb} (rule {win.ident})", kind)
        timed = [(m, self._timing(m.rule)) for m in winners]
        # Among rules that all say approve, the strictest one decides: most approvers, then shortest lifetime/wait.
        win, (count, wait, lifetime) = min(timed, key=lambda mt: (-mt[1][0], mt[1][2], mt[1][1]))
        needs = "approval" if count == 1 else f"{count} approvals"
        return Decision(action, win.title(kind, action), f"{req.note}{what} needs {needs} (rule {win.ident})", kind,
                        approvals_required=count, wait_timeout_s=wait, approval_lifetime_s=lifetime)

    def _timing(self, rule: TargetRule) -> tuple[int, float, float]:
        d = self.spec.defaults
        return (rule.approvals_required or d.approvals_required, rule.wait_timeout_s or d.wait_timeout_s,
                rule.approval_lifetime_s or d.approval_lifetime_s)

    def _default(self, roles: Iterable[str], target: str, kind: Kind, what: str) -> Decision:
        known = [name for name, _ in self._roles(roles)]
        if not known:
            why = "this identity has no role the policy knows"
        else:
            noun = "roles" if len(known) > 1 else "role"
            why = f"no rule of {noun} {', '.join(known)} matches target {target}"
        return Decision("deny", DEFAULT_DENY, f"{what} is denied: {why} ({DEFAULT_DENY})", kind)

    def _decide_env(self, roles: Iterable[str], target: str, labels: Mapping[str, str], name: str | None) -> Decision:
        if name and env.matches(name, env.BASE_ENV):
            return Decision("allow", "default: TERM, LANG, LC_*", f"env {name} is always passed", "env")
        for match in self._matches(roles, target, labels):
            if name and env.matches(name, match.rule.env):
                return Decision("allow", match.title("env", "allow"),
                                f"env {name} is allowed (rule {match.ident})", "env")
        return Decision("deny", DEFAULT_DENY, f"env {name or '(unnamed)'} is not passed to {target} ({DEFAULT_DENY})",
                        "env")

    def allowed_env(self, roles: Iterable[str], target: str, labels: Mapping[str, str]) -> list[str]:
        """Names and NAME_* prefixes granted beyond TERM, LANG, LC_*; none of them can match a protected name."""
        granted: list[str] = []
        for match in self._matches(roles, target, labels):
            granted += [p for p in match.rule.env if p not in granted]
        return granted

    def may_approve(self, roles: Iterable[str], target: str, labels: Mapping[str, str]) -> bool:
        """True when one of the roles has an approve scope matching the target (such a role also holds
        approvals.decide: the loader insists). Whether the approver is the requester is the caller's check."""
        return any(m.matches(target, labels) for _, role in self._roles(roles) for m in role.approve)

    def admin_permissions(self, roles: Iterable[str]) -> frozenset[str]:
        return frozenset(p for _, role in self._roles(roles) for p in role.admin)


def load_policy(policies_dir: Path) -> Policy:
    """Reads policies_dir/policy.yaml; ConfigError naming the key on any problem."""
    return Policy(read_policy_file(policies_dir))
