"""`bastion policy check|explain|classify`: the policies/ directory, tried without a server or a database."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bastion.classify import classify, load_rules
from bastion.classify.cli import classify_jsonl
from bastion.config import config_path, load_config
from bastion.errors import BastionError
from bastion.masking import load_masking
from bastion.policy import BASE_ENV, Decision, Policy, Request, RequestKind, load_policy

COMMANDS_FILE = "commands.yaml"
MASKING_FILE = "masking.yaml"
# What explain shows besides the command itself, in this order.
OTHER_KINDS = (RequestKind.SHELL, RequestKind.SFTP, RequestKind.SCP, RequestKind.PORT_FORWARD,
               RequestKind.X11, RequestKind.AGENT_FORWARD)


def register(verbs: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    group = verbs.add_parser("policy", help="check and try the policies").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    where = argparse.ArgumentParser(add_help=False, parents=[common])
    where.add_argument("--policies", metavar="DIR", type=Path,
                       help="policies directory (default: policies_dir of bastion.yaml)")
    check = group.add_parser("check", parents=[where], help="validate policy.yaml, commands.yaml and masking.yaml")
    check.set_defaults(run=run_check)
    explain = group.add_parser("explain", parents=[where], help="show the classification, decisions and masking",
                               description="Example: bastion policy explain --role reader --target web-1 -- df -h")
    explain.add_argument("--role", action="append", required=True, metavar="R", help="a policy role (repeatable)")
    explain.add_argument("--target", required=True, metavar="T", help="target name")
    explain.add_argument("--label", action="append", default=[], metavar="k=v", help="a target label (repeatable)")
    explain.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND (optional: without it, no exec)")
    explain.set_defaults(run=run_explain)
    jsonl = group.add_parser("classify", parents=[where], help="classify commands: JSON strings in, JSON lines out")
    jsonl.add_argument("--jsonl", action="store_true", required=True, help="one JSON string per stdin line")
    jsonl.set_defaults(run=run_classify)


def policies_dir(args: argparse.Namespace) -> Path:
    """--policies when given, else the config's policies_dir; never opens the database."""
    if args.policies is not None:
        return args.policies
    config = load_config(config_path(args.config))
    return config.path(config.policies_dir)


def run_check(args: argparse.Namespace) -> int:
    where = policies_dir(args)
    policy = load_policy(where)
    print(f"{where / 'policy.yaml'}: ok ({len(policy.role_names)} roles: {', '.join(policy.role_names) or 'none'})")
    rules = load_rules(where / COMMANDS_FILE)
    print(f"{where / COMMANDS_FILE}: ok ({len(rules.read)} read programs, {len(rules.write)} write programs)")
    masking_path = where / MASKING_FILE
    masking = load_masking(masking_path)
    state = "ok" if masking_path.exists() else "absent, every built-in detector applies"
    print(f"{masking_path}: {state} ({len(masking.overrides)} overrides)")
    return 0


def run_explain(args: argparse.Namespace) -> int:
    where = policies_dir(args)
    policy = load_policy(where)
    roles = frozenset(args.role)
    labels = dict(_label(text) for text in args.label)
    words = args.command[1:] if args.command[:1] == ["--"] else args.command
    lines = [f"roles: {', '.join(sorted(roles))}"]
    lines += [f"role {r}: not in policy.yaml (ignored)" for r in sorted(roles) if r not in policy.role_names]
    lines += [f"target: {args.target}", "labels: " + (", ".join(f"{k}={v}" for k, v in sorted(labels.items())) or "-")]
    if words:
        lines += _exec_lines(policy, where, roles, args.target, labels, " ".join(words))
    for kind in OTHER_KINDS:
        d = policy.decide(roles, args.target, labels, Request(kind))
        lines.append(f"{d.kind.replace('_', ' ')}: {_summary(d)}")
    lines.append("env: " + ", ".join([*BASE_ENV, *policy.allowed_env(roles, args.target, labels)]))
    lines.append(f"may approve on {args.target}: {'yes' if policy.may_approve(roles, args.target, labels) else 'no'}")
    lines.append("admin: " + (", ".join(sorted(policy.admin_permissions(roles))) or "none"))
    lines += load_masking(where / MASKING_FILE).for_session(roles, args.target, labels).describe()
    print("\n".join(lines))
    return 0


def _exec_lines(policy: Policy, where: Path, roles: frozenset[str], target: str, labels: dict[str, str],
                command: str) -> list[str]:
    verdict = classify(command, load_rules(where / COMMANDS_FILE))
    d = policy.decide(roles, target, labels, Request(RequestKind.EXEC, verdict.verdict, command))
    lines = [f"command: {command}", f"verdict: {verdict.verdict}"]
    lines += [f"verdict reason: {reason}" for reason in verdict.reasons]
    lines += [f"exec: {d.action}", f"exec rule: {d.rule}", f"exec reason: {d.reason}"]
    if d.action == "approve":
        lines += [f"exec approvals required: {d.approvals_required}", f"exec wait timeout: {d.wait_timeout_s:g}s",
                  f"exec approval lifetime: {d.approval_lifetime_s:g}s"]
    return lines


def _summary(d: Decision) -> str:
    return f"{d.action} ({d.rule})"


def run_classify(args: argparse.Namespace) -> int:
    return classify_jsonl(load_rules(policies_dir(args) / COMMANDS_FILE), sys.stdin, sys.stdout)


def _label(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise BastionError(f"label {text!r} must be k=v")
    return key, value
