"""`bastion token issue`: a JWT signed with the demo issuer key `bastion init` made (demos and tests only)."""

from __future__ import annotations

import argparse
import re
from datetime import timedelta
from pathlib import Path

from bastion.cli.common import open_config
from bastion.errors import BastionError
from bastion.identity.issue import issue_token, load_public_key

_DURATION = re.compile(r"^(\d+)([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """`90`, `90s`, `15m`, `1h`, `2d`: a positive duration, as `--ttl` and `--validity` take it."""
    match = _DURATION.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise argparse.ArgumentTypeError(f"expected a positive duration like 90s, 15m, 1h or 2d, got {text!r}")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def register(verbs: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    group = verbs.add_parser("token", help="issue demo tokens").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    issue = group.add_parser(
        "issue", parents=[common], help="print a JWT signed with the demo issuer key",
        description="Signs a JWT with demo_issuer.key from the config and prints it. For demos and tests: "
                    "production tokens come from your identity provider.")
    issue.add_argument("--sub", required=True, help="the subject (who the agent is)")
    issue.add_argument("--roles", required=True, metavar="R1,R2", help="comma-separated role names")
    issue.add_argument("--ttl", type=parse_duration, default=timedelta(hours=1), help="lifetime (default 1h)")
    issue.add_argument("--pubkey", type=Path, metavar="KEY.pub",
                       help="bind the token to this OpenSSH public key (adds cnf.jkt)")
    issue.set_defaults(run=run_issue)


def run_issue(args: argparse.Namespace) -> int:
    config = open_config(args)
    demo = config.demo_issuer
    if demo is None:
        raise BastionError("no demo_issuer in the config; tokens come from your identity provider")
    issuer = config.identity.issuer(demo.issuer)
    if issuer is None:
        raise BastionError(f"demo_issuer {demo.issuer} is not among identity.issuers, so its tokens would be refused")
    if not args.sub.strip():
        raise BastionError("--sub must not be empty")
    roles = [role.strip() for role in args.roles.split(",") if role.strip()]
    pubkey = load_public_key(args.pubkey) if args.pubkey is not None else None
    print(issue_token(config.path(demo.key), iss=demo.issuer, sub=args.sub, roles=roles, ttl=args.ttl,
                      aud=issuer.audience, pubkey=pubkey, roles_claim=config.identity.roles_claim))
    return 0
