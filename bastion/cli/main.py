"""Entry point: parses the verb, runs it, and turns user errors into one `bastion:` line."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from bastion.cli import audit, cert, demo, init, policy, replay, revoke, serve, target, token
from bastion.errors import BastionError

VERB_GROUPS = (init, serve, target, policy, audit, replay, token, cert, revoke, demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bastion", description="SSH gateway with segregation of duties.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="FILE", help="bastion.yaml (default: $BASTION_CONFIG or ./bastion.yaml)")
    parser.add_argument("--config", metavar="FILE", dest="global_config", help=argparse.SUPPRESS)
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="COMMAND")
    for group in VERB_GROUPS:
        group.register(verbs, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "config", None) is None:
        args.config = args.global_config
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.run(args) or 0)
    except BastionError as exc:
        print(f"bastion: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
