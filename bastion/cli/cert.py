"""`bastion cert issue`: an OpenSSH user certificate carrying a verified token, signed by the bastion's user CA."""

from __future__ import annotations

import argparse
import secrets
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bastion.cli.common import open_config
from bastion.cli.token import parse_duration
from bastion.config import Config
from bastion.errors import BastionError
from bastion.identity.issue import issue_certificate, load_ca_key, load_public_key
from bastion.identity.model import IdentityRefused
from bastion.identity.token import verify_token


def register(verbs: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    group = verbs.add_parser("cert", help="issue agent certificates").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    issue = group.add_parser(
        "issue", parents=[common], help="sign a user certificate carrying a token",
        description="Verifies the token exactly as the gateway would (for the key being certified), then signs "
                    "an OpenSSH user certificate carrying it, valid for --validity but never past the token's "
                    "expiry. The CA private key is the file named like the first identity.trusted_user_cas "
                    "entry without its .pub suffix (user_ca beside user_ca.pub, as bastion init writes it).")
    issue.add_argument("--token", required=True, metavar="FILE|-", help="file holding the JWT, or - for stdin")
    issue.add_argument("--pubkey", required=True, type=Path, metavar="KEY.pub", help="the agent's public key")
    issue.add_argument("--validity", type=parse_duration, default=timedelta(hours=1),
                       help="how long the certificate is valid (default 1h; capped at the token's expiry)")
    issue.add_argument("-o", "--output", type=Path, metavar="FILE", help="write the certificate here (default: stdout)")
    issue.set_defaults(run=run_issue)


def run_issue(args: argparse.Namespace) -> int:
    config = open_config(args)
    token = _read_token(args.token)
    public_key = load_public_key(args.pubkey)
    ca = load_ca_key(ca_private_key_path(config))
    serial = secrets.randbits(63)
    try:
        verified = verify_token(token, config.identity, cert_public_key=public_key)
        certificate = issue_certificate(ca, public_key, token, settings=config.identity, validity=args.validity,
                                        key_id=verified.subject, serial=serial)
    except IdentityRefused as exc:
        raise BastionError(f"the token does not verify ({exc.reason}); no certificate issued") from None
    until = min(datetime.now(UTC) + args.validity, verified.expires)
    capped = " (capped at the token's expiry)" if until == verified.expires else ""
    if args.output is None:
        sys.stdout.write(certificate.decode() + "\n")
    else:
        try:
            args.output.write_bytes(certificate + b"\n")
        except OSError as exc:
            raise BastionError(f"cannot write {args.output}: {exc.strerror}") from None
    print(f"bastion: certificate for {verified.subject}, serial {serial}, valid until "
          f"{until.strftime('%Y-%m-%dT%H:%M:%SZ')}{capped}", file=sys.stderr)
    return 0


def ca_private_key_path(config: Config) -> Path:
    """The user CA's private key: the first trusted CA file without `.pub` (bastion.yaml names no private key)."""
    public = config.identity.trusted_user_cas[0]
    if public.suffix != ".pub":
        raise BastionError(f"cannot locate the CA private key: {public} does not end in .pub")
    return public.with_suffix("")


def _read_token(source: str) -> str:
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text()
    except OSError as exc:
        raise BastionError(f"cannot read the token from {source}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise BastionError(f"{source} does not hold a token (not text)") from None
    token = text.strip()
    if not token:
        raise BastionError(f"no token in {'stdin' if source == '-' else source}")
    return token
