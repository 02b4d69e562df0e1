"""`bastion audit verify|export|pubkey`: check the hash chain and recordings, hand events to a SIEM, publish the key."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path

from bastion.audit.keys import audit_public_key_text, load_public_key
from bastion.audit.log import export_events
from bastion.audit.verify import parse_anchor, verify_audit
from bastion.cli.common import open_config
from bastion.errors import BastionError

FORMATS = ("jsonl",)


class AuditBroken(BastionError):
    """Verification found an edited, missing, reordered or unsigned event, or an altered recording."""


def register(verbs: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    group = verbs.add_parser("audit", help="verify and export the audit trail").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    verify = group.add_parser("verify", parents=[common], help="recompute the chain and check its checkpoints")
    verify.add_argument("--recordings", action="store_true", help="also re-hash every finished recording")
    verify.add_argument("--public-key", type=Path, metavar="FILE",
                        help="trusted audit public key (PEM or OpenSSH line); default: the configured audit_key's")
    verify.add_argument("--anchor", metavar="SEQ:HASH",
                        help="an anchor an earlier verify printed (kept off this host): that event must be unchanged")
    verify.set_defaults(run=run_verify)
    export = group.add_parser("export", parents=[common], help="print events for a SIEM")
    export.add_argument("--since", metavar="TIME", help="ISO-8601 time; naive times are UTC")
    export.add_argument("--format", choices=FORMATS, default="jsonl")
    export.set_defaults(run=run_export)
    pubkey = group.add_parser("pubkey", parents=[common], help="print the audit key's public half (PEM)")
    pubkey.set_defaults(run=run_pubkey)


def run_verify(args: argparse.Namespace) -> int:
    config = open_config(args)
    if args.public_key is not None:
        try:
            text = args.public_key.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise BastionError(f"cannot read {args.public_key}: {getattr(exc, 'strerror', None) or exc}") from None
    else:
        text = audit_public_key_text(config.path(config.audit_key))
    recordings = config.path(config.recordings_dir) if args.recordings else None
    try:
        anchor = parse_anchor(args.anchor) if args.anchor is not None else None
    except ValueError as exc:
        raise BastionError(str(exc)) from None
    result = verify_audit(recordings_dir=recordings, public_key=load_public_key(text), anchor=anchor)
    if not result.ok:
        raise AuditBroken(str(result))
    print(result)
    return 0


def run_export(args: argparse.Namespace) -> int:
    open_config(args)
    since = parse_time(args.since) if args.since is not None else None
    for event in export_events(since):
        sys.stdout.write(json.dumps(event, sort_keys=True, ensure_ascii=False) + "\n")
    return 0


def run_pubkey(args: argparse.Namespace) -> int:
    config = open_config(args)
    sys.stdout.write(audit_public_key_text(config.path(config.audit_key)))
    return 0


def parse_time(text: str) -> datetime:
    """An ISO-8601 date or date-time (`2024-05-01`, `2024-05-01T12:00:00Z`, with any offset)."""
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise BastionError(f"--since {text!r} is not an ISO-8601 time such as 2024-05-01T12:00:00Z") from None
