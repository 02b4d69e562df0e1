"""`bastion target add|list|show|remove`: registered servers, their sealed credentials and pinned host keys."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
from pathlib import Path

import asyncssh

from bastion.cli.common import open_config, print_table
from bastion.errors import BastionError
from bastion.gateway.upstream import parse_host_key, scan_host_key
from bastion.secrets import SecretBox
from bastion.store import targets

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
RESERVED = {"admin"}


def register(verbs: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    group = verbs.add_parser("target", help="register and inspect targets").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    add = group.add_parser("add", parents=[common], help="register a target")
    add.add_argument("name")
    add.add_argument("--host", required=True)
    add.add_argument("--port", type=int, default=22)
    add.add_argument("--user", required=True, help="login on the target")
    cred = add.add_mutually_exclusive_group(required=True)
    cred.add_argument("--key-file", type=Path, help="private key the bastion logs in with")
    cred.add_argument("--password-env", metavar="VAR", help="environment variable holding the password")
    pin = add.add_mutually_exclusive_group(required=True)
    pin.add_argument("--host-key", metavar="'TYPE BASE64'", help="the target's host public key")
    pin.add_argument("--scan", action="store_true", help="fetch the host key now and pin it")
    add.add_argument("--label", action="append", default=[], metavar="k=v")
    add.add_argument("--shell", choices=("bash", "sh"), default="bash",
                     help="sh: the host has no bash; it then only runs plain READ commands")
    add.set_defaults(run=run_add)
    for action, runner, help_text in (("list", run_list, "list targets"), ("show", run_show, "show one target"),
                                      ("remove", run_remove, "remove a target")):
        sub = group.add_parser(action, parents=[common], help=help_text)
        if action != "list":
            sub.add_argument("name")
        sub.set_defaults(run=runner)


def run_add(args: argparse.Namespace) -> int:
    config = open_config(args)
    if not NAME.match(args.name) or args.name in RESERVED:
        raise BastionError(f"target name {args.name!r} is reserved or not a valid login name")
    labels = dict(_label(text) for text in args.label)
    box = SecretBox(config.path(config.secrets_key))
    kind, secret = _credential(args)
    host_key = asyncio.run(scan_host_key(args.host, args.port)) if args.scan else args.host_key.strip()
    key = parse_host_key(host_key)
    host_key = key.export_public_key("openssh").decode().strip()
    targets.add(targets.Target(
        name=args.name, host=args.host, port=args.port, user=args.user, credential_kind=kind,
        sealed_credential=box.seal(secret, args.name), host_key=host_key, labels=labels, shell=args.shell))
    print(f"target {args.name}: {args.user}@{args.host}:{args.port}, host key pinned {key.get_fingerprint()}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    open_config(args)
    rows = [(t.name, t.host, t.port, t.user, t.credential_kind, _fingerprint(t.host_key),
             ",".join(f"{k}={v}" for k, v in sorted(t.labels.items()))) for t in targets.all_targets()]
    print_table(("NAME", "HOST", "PORT", "USER", "CREDENTIAL", "HOST KEY", "LABELS"), rows)
    return 0


def run_show(args: argparse.Namespace) -> int:
    open_config(args)
    t = targets.get(args.name)
    rows = [("name", t.name), ("host", t.host), ("port", t.port), ("user", t.user),
            ("credential", f"{t.credential_kind} (encrypted at rest, never shown)"),
            ("host key", t.host_key), ("fingerprint", _fingerprint(t.host_key)),
            ("labels", ", ".join(f"{k}={v}" for k, v in sorted(t.labels.items())) or "-"), ("shell", t.shell)]
    print_table(("FIELD", "VALUE"), rows)
    return 0


def run_remove(args: argparse.Namespace) -> int:
    open_config(args)
    targets.remove(args.name)
    print(f"target {args.name} removed")
    return 0


def _credential(args: argparse.Namespace) -> tuple[str, bytes]:
    if args.key_file is not None:
        try:
            data = args.key_file.read_bytes()
            asyncssh.import_private_key(data)
        except OSError as exc:
            raise BastionError(f"cannot read {args.key_file}: {exc.strerror}") from None
        except (asyncssh.KeyImportError, ValueError):
            raise BastionError(f"{args.key_file} is not an unencrypted private key") from None
        return "key", data
    value = os.environ.get(args.password_env)
    if not value:
        raise BastionError(f"environment variable {args.password_env} is empty or not set")
    return "password", value.encode()


def _label(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise BastionError(f"label {text!r} must be k=v")
    return key, value


def _fingerprint(host_key: str) -> str:
    return parse_host_key(host_key).get_fingerprint()
