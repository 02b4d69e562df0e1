"""`bastion init --dir DIR`: a complete, working setup with fresh keys, refusing to overwrite one."""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from bastion import secrets
from bastion.config import load_config
from bastion.errors import BastionError
from bastion.paths import shipped_policies
from bastion.store import db

CONFIG_TEMPLATE = """\
# bastion configuration. Relative paths are relative to this file.
database: bastion.db            # or postgresql://user@host/dbname for several bastion processes
recordings_dir: recordings
policies_dir: policies
secrets_key: secrets.key        # encrypts stored credentials; keep it out of backups of the database
audit_key: audit.key            # signs audit checkpoints
server:
  listen: 127.0.0.1:2222
  host_key: host_key
  grace_period_s: 30            # SIGTERM lets live sessions run this long before closing them
identity:
  trusted_user_cas: [user_ca.pub]
  principals: ["*"]             # a certificate must name at least one principal matching these
  token_extension: token@bastion
  roles_claim: roles
  issuers:
    - issuer: {issuer}
      audience: bastion
      algorithms: [EdDSA]
      public_keys: [issuer.pub]
demo_issuer:                    # used by 'bastion token issue'; production tokens come from your IdP
  issuer: {issuer}
  key: issuer.key
"""

DEMO_ISSUER = "https://bastion.invalid/demo-issuer"


def register(verbs: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = verbs.add_parser("init", help="create a new bastion setup in DIR")
    parser.add_argument("--dir", required=True, type=Path, help="directory to create (may exist if empty)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    target: Path = args.dir
    if target.exists() and any(target.iterdir()):
        raise BastionError(f"{target} is not empty; refusing to overwrite an existing setup")
    target.mkdir(parents=True, exist_ok=True)
    host_key = _ed25519_openssh()
    _write_private(target / "host_key", host_key)
    _write_public(target / "host_key.pub", _openssh_public(host_key, "bastion-host-key"))
    ca = _ed25519_openssh()
    _write_private(target / "user_ca", ca)
    _write_public(target / "user_ca.pub", _openssh_public(ca, "bastion-user-ca"))
    issuer = ed25519.Ed25519PrivateKey.generate()
    _write_private(target / "issuer.key", issuer.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    _write_public(target / "issuer.pub", issuer.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    _write_private(target / "audit.key", ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    secrets.create_key(target / "secrets.key")
    (target / "recordings").mkdir(mode=0o750)
    shutil.copytree(shipped_policies(), target / "policies")
    (target / "bastion.yaml").write_text(CONFIG_TEMPLATE.format(issuer=DEMO_ISSUER))
    config = load_config(target / "bastion.yaml")
    db.connect(config.database_url).close()
    print(f"bastion: initialised {target}; next: bastion --config {target / 'bastion.yaml'} target add …")
    return 0


def _ed25519_openssh() -> bytes:
    return ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())


def _openssh_public(private_pem: bytes, comment: str) -> bytes:
    key = serialization.load_ssh_private_key(private_pem, password=None)
    line = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return line + f" {comment}\n".encode()


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _write_public(path: Path, data: bytes) -> None:
    path.write_bytes(data)
