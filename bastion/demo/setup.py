"""The demo directory: a bastion made by `bastion init`, the demo target's homes, identities, and an ssh_config.

Layout of DIR:
  bastion/          the bastion's data dir (bastion.yaml, keys, bastion.db, recordings/, policies/)
  target/home/*/    the demo target's logins: `web` (target demo-web) and `staging` (target staging-demo)
  agents/           each identity's key and certificate (token inside), as an agent or approver would hold them
  ssh_config        one Host per identity, so `ssh -F DIR/ssh_config demo-web@reader.bastion 'ls -la'` is enough
  known_hosts       the bastion's host key, pinned
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import asyncssh
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from bastion.cli import init
from bastion.cli.cert import ca_private_key_path
from bastion.config import Config, load_config
from bastion.errors import BastionError
from bastion.identity.issue import issue_certificate, issue_token, load_ca_key
from bastion.secrets import SecretBox
from bastion.store import db, targets

VALIDITY = timedelta(hours=12)
HOST_KEY_ALIAS = "bastion-demo"
DEMO_GRACE_S = 5


@dataclass(frozen=True)
class Person:
    """One demo identity: `name` is its token subject and its ssh_config Host (`NAME.bastion`)."""

    name: str
    roles: tuple[str, ...]
    login: str
    about: str

    @property
    def host(self) -> str:
        return f"{self.name}.bastion"


PEOPLE = (
    Person("reader", ("reader",), "demo-web", "agent: reads anywhere; its changes wait for a human"),
    Person("operator", ("operator",), "staging-demo", "agent: works freely on staging-*, nothing else here"),
    Person("approver-1", ("approver",), "admin", "on-call human: approves and denies held requests"),
    Person("approver-2", ("approver", "reader"), "admin", "on-call human who also runs commands as a reader"),
    Person("auditor", ("auditor",), "admin", "human: reviews sessions and recordings"),
)
# target name → login (home directory) on the demo target
TARGETS = {"demo-web": "web", "staging-demo": "staging"}
SEED = {
    "web": {
        "README.txt": "demo-web: a home directory inside the bastion demo target.\n",
        "app.env": "APP_ENV=demo\nDB_PASSWORD=hunter2-demo-only\nLOG_LEVEL=info\n",
        "logs/app.log": "2024-05-01T12:00:00Z INFO started\n2024-05-01T12:00:05Z INFO healthy\n",
    },
    "staging": {"README.txt": "staging-demo: operator agents may change things here without approval.\n"},
}


class DemoDir:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.data = self.root / "bastion"
        self.config_path = self.data / "bastion.yaml"
        self.agents = self.root / "agents"
        self.target_root = self.root / "target"
        self.ssh_config = self.root / "ssh_config"
        self.known_hosts = self.root / "known_hosts"

    def home(self, target: str) -> Path:
        return self.target_root / "home" / TARGETS[target]

    def create(self) -> Config:
        """`bastion init` in DIR/bastion, the target's homes, and a key and certificate for every identity."""
        if self.root.exists() and any(self.root.iterdir()):
            raise BastionError(f"{self.root} is not empty; the demo needs a new or empty directory")
        with contextlib.redirect_stdout(io.StringIO()):
            init.run(argparse.Namespace(dir=self.data))
        text = self.config_path.read_text()
        self.config_path.write_text(text.replace("grace_period_s: 30", f"grace_period_s: {DEMO_GRACE_S}"))
        config = load_config(self.config_path)
        db.connect(config.database_url)
        for login, files in SEED.items():
            for name, content in files.items():
                path = self.target_root / "home" / login / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(content)
        self.agents.mkdir()
        for person in PEOPLE:
            self._identity(config, person)
        return config

    def _identity(self, config: Config, person: Person) -> None:
        """A key pair and a certificate carrying a token, through the same code as `token issue` and `cert issue`."""
        key = ed25519.Ed25519PrivateKey.generate()
        private = self.agents / person.name
        fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                           serialization.NoEncryption()))
        public = key.public_key()
        demo = config.demo_issuer
        assert demo is not None, "bastion init writes a demo_issuer"
        issuer = config.identity.issuer(demo.issuer)
        assert issuer is not None, "bastion init trusts its demo issuer"
        token = issue_token(config.path(demo.key), iss=demo.issuer, sub=person.name, roles=person.roles,
                            ttl=VALIDITY, aud=issuer.audience, pubkey=public, roles_claim=config.identity.roles_claim)
        ca = load_ca_key(ca_private_key_path(config))
        cert = issue_certificate(ca, public, token, settings=config.identity, validity=VALIDITY, key_id=person.name)
        (self.agents / f"{person.name}-cert.pub").write_bytes(cert + b"\n")
        (self.agents / f"{person.name}.pub").write_bytes(
            public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH) + b"\n")

    def register_targets(self, config: Config, port: int, host_key: str, credential: asyncssh.SSHKey) -> None:
        """Both targets are the embedded demo target, with different logins; its host key is pinned."""
        box = SecretBox(config.path(config.secrets_key))
        secret = credential.export_private_key("openssh")
        for name, login in TARGETS.items():
            targets.add(targets.Target(
                name=name, host="127.0.0.1", port=port, user=login, credential_kind="key",
                sealed_credential=box.seal(secret, name), host_key=host_key, labels={"env": "demo"}))

    def write_ssh_config(self, port: int) -> None:
        host_key = " ".join((self.data / "host_key.pub").read_text().split()[:2])
        self.known_hosts.write_text(f"{HOST_KEY_ALIAS} {host_key}\n")
        lines = [
            "# bastion demo. Every Host here is the same bastion: the host name says who you are, the login name",
            "# is the target:  ssh -F ssh_config demo-web@reader.bastion 'ls -la'",
            "",
        ]
        for person in PEOPLE:
            lines += [f"Host {person.host}", f"    User {person.login}",
                      f'    IdentityFile "{self.agents / person.name}"',
                      f'    CertificateFile "{self.agents / person.name}-cert.pub"', ""]
        lines += ["Host *.bastion", "    HostName 127.0.0.1", f"    Port {port}", f"    HostKeyAlias {HOST_KEY_ALIAS}",
                  f'    UserKnownHostsFile "{self.known_hosts}"', "    StrictHostKeyChecking yes",
                  "    IdentitiesOnly yes", "    IdentityAgent none", "    BatchMode yes", "    LogLevel ERROR", ""]
        self.ssh_config.write_text("\n".join(lines))
