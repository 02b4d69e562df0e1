"""policy.yaml: the shipped roles, how rules and roles combine, env grants, approvers and admin permissions."""

import subprocess
import sys
from pathlib import Path

import pytest

from bastion.policy import DEFAULT_DENY, Policy, Request, RequestKind, load_policy
from bastion.policy.schema import policy_schema

POLICIES = Path(__file__).resolve().parent.parent / "policies"
EXEC_READ = Request(RequestKind.EXEC, "READ", "ls")
EXEC_WRITE = Request(RequestKind.EXEC, "WRITE", "touch x")
EXEC_UNKNOWN = Request(RequestKind.EXEC, "UNKNOWN", "./run")
SHELL = Request(RequestKind.SHELL)


@pytest.fixture(scope="module")
def shipped() -> Policy:
    return load_policy(POLICIES)


def policy(tmp_path: Path, text: str) -> Policy:
    (tmp_path / "policy.yaml").write_text(text)
    return load_policy(tmp_path)


def test_shipped_schema_is_the_generated_one() -> None:
    generated = subprocess.run([sys.executable, "-m", "bastion.policy.schema"], capture_output=True, text=True,
                               check=True).stdout
    assert generated == policy_schema()
    assert (POLICIES / "policy.schema.json").read_text() == generated, (
        "regenerate: python -m bastion.policy.schema > policies/policy.schema.json")


@pytest.mark.parametrize(("role", "target", "req", "action"), [
    ("reader", "web-1", EXEC_READ, "allow"),
    ("reader", "prod-db", EXEC_WRITE, "approve"),
    ("reader", "web-1", EXEC_UNKNOWN, "approve"),
    ("reader", "web-1", SHELL, "deny"),
    ("operator", "staging-api", EXEC_READ, "allow"),
    ("operator", "staging-api", EXEC_WRITE, "allow"),
    ("operator", "staging-api", SHELL, "allow"),
    ("operator", "prod-api", EXEC_READ, "allow"),
    ("operator", "prod-api", EXEC_UNKNOWN, "approve"),
    ("operator", "prod-api", SHELL, "approve"),
    ("operator", "web-1", EXEC_READ, "deny"),
    ("operator", "Staging-api", EXEC_READ, "deny"),
    ("approver", "web-1", EXEC_READ, "deny"),
    ("auditor", "web-1", EXEC_READ, "deny"),
])
def test_shipped_roles(shipped: Policy, role: str, target: str, req: Request, action: str) -> None:
    assert shipped.decide(frozenset({role}), target, {}, req).action == action


@pytest.mark.parametrize("kind", [RequestKind.SFTP, RequestKind.SCP, RequestKind.PORT_FORWARD,
                                  RequestKind.REMOTE_FORWARD, RequestKind.X11, RequestKind.AGENT_FORWARD])
def test_shipped_roles_deny_transfers_and_forwarding(shipped: Policy, kind: RequestKind) -> None:
    every = frozenset(shipped.role_names)
    for target in ("web-1", "staging-1", "prod-1"):
        assert shipped.decide(every, target, {}, Request(kind, detail="127.0.0.1:80")).action == "deny"


def test_shipped_admin_permissions_and_approver_scope(shipped: Policy) -> None:
    assert shipped.admin_permissions(frozenset({"approver"})) == {
        "approvals.view", "approvals.decide", "sessions.view", "sessions.kill"}
    assert shipped.admin_permissions(frozenset({"auditor"})) == {
        "approvals.view", "sessions.view", "recordings.view", "audit.view"}
    assert shipped.admin_permissions(frozenset({"reader", "operator"})) == frozenset()
    assert shipped.may_approve(frozenset({"approver"}), "prod-db", {})
    assert not shipped.may_approve(frozenset({"auditor", "operator"}), "prod-db", {})


def test_decision_names_the_rule_and_tells_the_agent_why(shipped: Policy) -> None:
    d = shipped.decide(frozenset({"reader"}), "web-1", {}, EXEC_UNKNOWN)
    assert d.rule == "reader on *: write → approve"
    assert d.reason == "UNKNOWN is treated as WRITE; WRITE needs approval (rule reader/all-targets)"
    assert (d.approvals_required, d.wait_timeout_s, d.approval_lifetime_s) == (1, 300, 900)
    assert d.to_dict() == {"action": "approve", "kind": "write", "rule": d.rule, "reason": d.reason,
                           "approvals_required": 1, "wait_timeout_s": 300, "approval_lifetime_s": 900}
    denied = shipped.decide(frozenset({"reader"}), "web-1", {}, SHELL)
    assert (denied.rule, denied.reason) == ("reader on *: shell → deny", "shell is denied (rule reader/all-targets)")
    assert denied.to_dict() == {"action": "deny", "kind": "shell", "rule": denied.rule, "reason": denied.reason}


def test_request_kind_may_be_given_as_text(shipped: Policy) -> None:
    assert Request("exec", "READ").kind is RequestKind.EXEC  # type: ignore[arg-type]
    assert shipped.decide(frozenset({"reader"}), "web-1", {}, Request("shell")).rule == "reader on *: shell → deny"  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Request("telnet")  # type: ignore[arg-type]


def test_an_exec_without_a_verdict_is_held_as_a_write(shipped: Policy) -> None:
    d = shipped.decide(frozenset({"reader"}), "web-1", {}, Request(RequestKind.EXEC))
    assert (d.action, d.kind) == ("approve", "write")
    assert d.reason.startswith("an unclassified command is treated as WRITE; ")


def test_no_known_role_is_denied_everything(shipped: Policy) -> None:
    for roles in (frozenset(), frozenset({"root", "admin"})):
        d = shipped.decide(roles, "web-1", {}, EXEC_READ)
        assert (d.action, d.rule) == ("deny", DEFAULT_DENY)
        assert d.reason == "READ is denied: this identity has no role the policy knows (default: deny)"
    d = shipped.decide(frozenset({"operator", "ghost"}), "web-1", {}, EXEC_READ)
    assert d.reason == "READ is denied: no rule of role operator matches target web-1 (default: deny)"


def test_most_permissive_role_wins(shipped: Policy) -> None:
    both = frozenset({"reader", "operator"})
    assert shipped.decide(both, "staging-1", {}, EXEC_WRITE).rule == "operator on staging-*: write → allow"
    assert shipped.decide(both, "prod-1", {}, SHELL).action == "approve"
    assert shipped.decide(both, "web-1", {}, EXEC_WRITE).rule == "reader on *: write → approve"


TWO_APPROVERS = """
defaults: {wait_timeout_s: 120}
roles:
  dba:
    targets:
      - name: databases
        match: {labels: {tier: db}}
        read: allow
        write: approve
        approvals_required: 2
        approval_lifetime_s: 60
  dev:
    targets:
      - match: {names: ["*"]}
        write: approve
        wait_timeout_s: 30
"""


def test_strictest_approve_rule_sets_every_number(tmp_path: Path) -> None:
    p = policy(tmp_path, TWO_APPROVERS)
    d = p.decide(frozenset({"dev", "dba"}), "pg-1", {"tier": "db"}, EXEC_WRITE)
    assert (d.rule, d.approvals_required, d.wait_timeout_s, d.approval_lifetime_s) == (
        "dba on tier=db: write → approve", 2, 120, 60)
    assert d.reason == "WRITE needs 2 approvals (rule dba/databases)"
    alone = p.decide(frozenset({"dev"}), "pg-1", {"tier": "db"}, EXEC_WRITE)
    assert (alone.rule, alone.approvals_required, alone.wait_timeout_s, alone.approval_lifetime_s) == (
        "dev on *: write → approve", 1, 30, 900)
    assert alone.reason == "WRITE needs approval (rule dev/targets[0])"
    assert p.decide(frozenset({"dev", "dba"}), "pg-1", {"tier": "db"}, EXEC_READ).rule == "dba on tier=db: read → allow"


def test_first_matching_rule_of_a_role_wins_and_unnamed_kinds_are_denied(tmp_path: Path) -> None:
    p = policy(tmp_path, """
roles:
  ops:
    targets:
      - match: {names: [vault-*]}
        read: allow
      - match: {names: ["*"]}
        read: allow
        write: allow
        shell: allow
""")
    ops = frozenset({"ops"})
    assert p.decide(ops, "vault-1", {}, EXEC_WRITE).rule == "ops on vault-*: write → deny"
    assert p.decide(ops, "vault-1", {}, SHELL).action == "deny"
    assert p.decide(ops, "web-1", {}, SHELL).action == "allow"


def test_names_and_labels_must_both_match(tmp_path: Path) -> None:
    p = policy(tmp_path, """
roles:
  r:
    targets:
      - match: {names: [web-*, 'api-?'], labels: {env: prod, region: eu}}
        read: allow
""")
    r = frozenset({"r"})
    prod_eu = {"env": "prod", "region": "eu", "team": "x"}
    assert p.decide(r, "web-1", prod_eu, EXEC_READ).action == "allow"
    assert p.decide(r, "api-7", prod_eu, EXEC_READ).action == "allow"
    assert p.decide(r, "api-17", prod_eu, EXEC_READ).action == "deny"
    assert p.decide(r, "web-1", {"env": "prod"}, EXEC_READ).action == "deny"
    assert p.decide(r, "WEB-1", prod_eu, EXEC_READ).action == "deny"
    assert p.decide(r, "db-1", prod_eu, EXEC_READ).rule == DEFAULT_DENY


def test_env_base_names_granted_patterns_and_protected_names(tmp_path: Path) -> None:
    p = policy(tmp_path, """
roles:
  app:
    targets:
      - match: {names: [app-*]}
        env: [APP_*, DEBUG]
""")
    app = frozenset({"app"})

    def env(name: str | None, target: str = "app-1") -> str:
        return p.decide(app, target, {}, Request(RequestKind.ENV, detail=name)).action

    assert [env("TERM"), env("LANG"), env("LC_ALL"), env("APP_MODE"), env("DEBUG")] == ["allow"] * 5
    assert [env("DEBUG", "web-1"), env("DEBUGGER"), env("PATH"), env("LD_PRELOAD"), env(None)] == ["deny"] * 5
    assert env("BASH_FUNC_ls%%") == "deny"
    assert p.allowed_env(app, "app-1", {}) == ["APP_*", "DEBUG"]
    assert p.allowed_env(app, "web-1", {}) == []
    assert p.decide(app, "app-1", {}, Request(RequestKind.ENV, detail="APP_X")).rule == "app on app-*: env → allow"


def test_approve_scopes_follow_names_and_labels(tmp_path: Path) -> None:
    p = policy(tmp_path, """
roles:
  dba-oncall:
    approve: [{labels: {tier: db}}, {names: [pg-*]}]
    admin: [approvals.view, approvals.decide]
""")
    oncall = frozenset({"dba-oncall"})
    assert p.may_approve(oncall, "x", {"tier": "db"})
    assert p.may_approve(oncall, "pg-2", {})
    assert not p.may_approve(oncall, "web-1", {"tier": "web"})
    assert not p.may_approve(frozenset({"other"}), "pg-2", {})


def test_the_policy_core_stays_pure() -> None:
    code = ("import sys, bastion.policy; "
            "print([m for m in ('asyncio', 'asyncssh', 'peewee', 'bastion.store', 'bastion.gateway') "
            "if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
