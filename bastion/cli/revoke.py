"""`bastion revoke`: refuse a token id, certificate serial or key from now on, for new connections and new
channels on live ones, in every bastion process sharing the database; `bastion revoke list` shows them."""

from __future__ import annotations

import argparse
import re

from bastion.audit.log import AuditLog
from bastion.cli.common import open_config, print_table
from bastion.errors import BastionError, StoreError
from bastion.store import revocations

_FINGERPRINT = re.compile(r"^SHA256:[A-Za-z0-9+/]{43}$")
_MAX_SERIAL = 2**64 - 1
_LABELS = {"jti": "token id", "serial": "certificate serial", "key": "key"}


def register(verbs: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = verbs.add_parser(
        "revoke", parents=[common], help="revoke a token id, certificate serial or key; 'revoke list' shows them",
        usage="%(prog)s (--jti ID | --serial N | --key-fingerprint SHA256:…) [--reason TEXT]\n"
              "       %(prog)s list")
    parser.add_argument("action", nargs="?", choices=["list"], metavar="list", help="list what is revoked")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--jti", metavar="ID", help="the token's jti claim")
    what.add_argument("--serial", metavar="N", help="the certificate's serial (as ssh-keygen -L shows it)")
    what.add_argument("--key-fingerprint", metavar="SHA256:…", help="the agent key (as ssh-keygen -l shows it)")
    parser.add_argument("--reason", default="", metavar="TEXT", help="why, for the audit log")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    given = [(kind, value) for kind, value in (("jti", args.jti), ("serial", args.serial),
                                               ("key", args.key_fingerprint)) if value is not None]
    if args.action == "list":
        if given or args.reason:
            raise BastionError("'revoke list' takes no --jti, --serial, --key-fingerprint or --reason")
        return run_list(args)
    if not given:
        raise BastionError("name what to revoke: --jti ID, --serial N or --key-fingerprint SHA256:…")
    kind, value = given[0]
    return run_add(args, kind, _canonical(kind, value))


def run_add(args: argparse.Namespace, kind: str, value: str) -> int:
    config = open_config(args)
    if not revocations.add(kind, value, args.reason):
        print(f"bastion: {_LABELS[kind]} {value} was already revoked")
        return 0
    audit = AuditLog(signing_key_path=config.path(config.audit_key))
    try:
        audit.append("revocation.added", details={"kind": kind, "value": value, "reason": args.reason})
        audit.close()
    except StoreError as exc:
        raise BastionError(f"{_LABELS[kind]} {value} revoked, but {exc}") from None
    print(f"bastion: {_LABELS[kind]} {value} revoked")
    return 0


def run_list(args: argparse.Namespace) -> int:
    open_config(args)
    rows = [(r.kind, r.value, r.created.strftime("%Y-%m-%dT%H:%M:%SZ"), r.reason or "-")
            for r in revocations.all_revocations()]
    print_table(("KIND", "VALUE", "REVOKED", "REASON"), rows)
    return 0


def _canonical(kind: str, value: str) -> str:
    """The form the gateway compares with: a decimal serial, a fingerprint as ssh-keygen prints it."""
    value = value.strip()
    if kind == "serial":
        if not value.isdigit() or int(value) > _MAX_SERIAL:
            raise BastionError(f"--serial {value!r}: expected a certificate serial (0 to {_MAX_SERIAL})")
        return str(int(value))
    if kind == "key":
        if not _FINGERPRINT.match(value):
            raise BastionError(f"--key-fingerprint {value!r}: expected SHA256:… as ssh-keygen -l prints it")
        return value
    if not value or len(value) > 255:
        raise BastionError("--jti: expected the token's jti claim (1 to 255 characters)")
    return value
