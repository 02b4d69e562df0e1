"""The asyncssh hook through the real OpenSSH client: the server sees the exact value `ssh-keygen` set.

A small asyncssh server stands in for the gateway here; it wires the hook the way the gateway is meant to.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from bastion.identity import IdentityRefused, IdentitySettings, authenticate, certext, verify_certificate

ISS = "https://idp.example"


@dataclass
class Seen:
    """What the test server observed across connections."""

    certificates: list[tuple[str, bytes]] = field(default_factory=list)
    authenticated: list[tuple[str, bytes]] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)


class NoRevocations:
    def is_revoked(self, jti: str | None, serial: int, key_fingerprint: str) -> bool:
        return False


def make_server_class(settings: IdentitySettings, seen: Seen, verdict: Callable[[bytes], Any]) -> type:
    class Server(asyncssh.SSHServer):
        def begin_auth(self, username: str) -> bool:
            return True

        def public_key_auth_supported(self) -> bool:
            return True

        def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
            return False

        def validate_ca_key(self, username: str, key: asyncssh.SSHKey) -> bool:
            return False

        def validate_certificate(self, username: str, cert_blob: bytes) -> Any:
            seen.certificates.append((username, cert_blob))
            return verdict(cert_blob)

        def certificate_authenticated(self, username: str, cert_blob: bytes) -> None:
            seen.authenticated.append((username, cert_blob))

    return Server


class Harness:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.ca = self.keygen("ca")
        self.agent = self.keygen("agent")
        issuer_key = ed25519.Ed25519PrivateKey.generate()
        self.issuer_key = issuer_key
        (root / "issuer.pub").write_bytes(
            issuer_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        self.settings = IdentitySettings.model_validate(
            {"trusted_user_cas": ["ca.pub"], "issuers": [{"issuer": ISS, "public_keys": ["issuer.pub"]}]}
        ).resolve(root)
        self.seen = Seen()
        self.port = 0

    def keygen(self, name: str) -> Path:
        path = self.root / name
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(path)], check=True)
        return path

    def token(self, **changes: Any) -> str:
        now = int(time.time())
        claims = {"iss": ISS, "aud": "bastion", "sub": "agent-7", "iat": now, "exp": now + 600, **changes}
        return jwt.encode(claims, self.issuer_key, algorithm="EdDSA")

    def certify(self, value: str | None, *principals: str) -> None:
        args = ["ssh-keygen", "-q", "-s", str(self.ca), "-I", "agent-7", "-V", "+1h"]
        if principals:
            args += ["-n", ",".join(principals)]
        if value is not None:
            args += ["-O", f"extension:token@bastion={value}"]
        subprocess.run([*args, f"{self.agent}.pub"], check=True)

    async def serve(self, verdict: Callable[[bytes], Any]) -> asyncssh.SSHAcceptor:
        certext.install()
        seen = self.seen

        async def handle(process: asyncssh.SSHServerProcess) -> None:
            seen.commands.append(process.command or "")
            process.stdout.write("ran\n")
            process.exit(0)

        acceptor = await asyncssh.create_server(
            make_server_class(self.settings, seen, verdict),
            "127.0.0.1",
            0,
            server_host_keys=[asyncssh.generate_private_key("ssh-ed25519")],
            authorized_client_keys=certext.authorized_ca_keys(self.settings),
            process_factory=handle,
        )
        self.port = acceptor.sockets[0].getsockname()[1]
        return acceptor

    async def ssh(self, login: str = "web-1", command: str = "df -h") -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            "ssh",
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "IdentityAgent=none",
            "-o",
            "LogLevel=ERROR",
            "-i",
            str(self.agent),
            "-p",
            str(self.port),
            f"{login}@127.0.0.1",
            command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
        return proc.returncode or 0, out.decode(), err.decode()


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


async def test_server_sees_the_exact_extension_value(harness: Harness) -> None:
    value = harness.token() + "~and/odd=bytes+"
    harness.certify(value, "agent-7")
    async with await harness.serve(lambda blob: True):
        status, out, _ = await harness.ssh()
    assert (status, out) == (0, "ran\n")
    assert harness.seen.commands == ["df -h"]
    # asyncssh validates the certificate twice per login; the server hears about it once.
    [(login, blob)] = harness.seen.certificates
    assert login == "web-1"
    assert verify_certificate(blob, harness.settings).token == value.encode()
    # The signature proved possession of exactly this certificate's key.
    assert harness.seen.authenticated == [("web-1", blob)]


async def test_refusal_in_the_hook_stops_authentication(harness: Harness) -> None:
    harness.certify(harness.token(), "agent-7")
    async with await harness.serve(lambda blob: False):
        status, out, err = await harness.ssh()
    assert status == 255
    assert "Permission denied" in err
    assert out == ""
    assert harness.seen.commands == []
    assert len(harness.seen.certificates) == 1
    assert harness.seen.authenticated == []


async def test_async_hook_is_awaited(harness: Harness) -> None:
    async def verdict(blob: bytes) -> bool:
        await asyncio.sleep(0)
        return False

    harness.certify(harness.token(), "agent-7")
    async with await harness.serve(verdict):
        status, _, _ = await harness.ssh()
    assert status == 255
    assert harness.seen.commands == []


def authenticate_verdict(harness: Harness) -> Callable[[bytes], bool]:
    """The gateway's wiring in miniature: authenticate, remember the reason of a refusal."""

    def verdict(blob: bytes) -> bool:
        try:
            authenticate(blob, harness.settings, NoRevocations())
        except IdentityRefused as refused:
            harness.seen.refusals.append(refused.reason)
            return False
        return True

    return verdict


@pytest.mark.parametrize(
    ("principals", "token_changes", "refusal"),
    [
        (("agent-7",), {}, None),
        (("agent-7", "other"), {"exp": int(time.time()) - 600}, "token-expired"),
        (("agent-7",), {"aud": "elsewhere"}, "wrong-audience"),
    ],
)
async def test_authenticate_wired_into_the_hook(
    harness: Harness, principals: tuple[str, ...], token_changes: dict, refusal: str | None
) -> None:
    harness.certify(harness.token(**token_changes), *principals)
    async with await harness.serve(authenticate_verdict(harness)):
        status, out, _ = await harness.ssh()
    if refusal is None:
        assert (status, out, harness.seen.refusals) == (0, "ran\n", [])
    else:
        assert (status, harness.seen.commands, harness.seen.refusals) == (255, [], [refusal])


async def test_certificate_without_principals_is_refused_by_asyncssh(harness: Harness) -> None:
    harness.certify(harness.token())
    async with await harness.serve(authenticate_verdict(harness)):
        status, _, _ = await harness.ssh()
    # The token was fine; the `principals=` pattern in authorized_ca_keys matched no principal.
    assert (status, harness.seen.refusals, harness.seen.commands) == (255, [], [])
    assert harness.seen.authenticated == []


async def test_principal_patterns_scope_the_ca(harness: Harness) -> None:
    harness.settings = harness.settings.model_copy(update={"principals": ["bastion-*"]})
    harness.certify(harness.token(), "agent-7")
    async with await harness.serve(lambda blob: True):
        refused_status, _, _ = await harness.ssh()
    harness.certify(harness.token(), "bastion-agent-7")
    async with await harness.serve(lambda blob: True):
        status, out, _ = await harness.ssh()
    assert (refused_status, status, out) == (255, 0, "ran\n")


async def test_missing_extension_reaches_the_hook_as_no_token(harness: Harness) -> None:
    harness.certify(None, "agent-7")
    async with await harness.serve(authenticate_verdict(harness)):
        status, _, _ = await harness.ssh()
    assert (status, harness.seen.refusals) == (255, ["no-token"])


def test_install_is_idempotent() -> None:
    certext.install()
    certext.install()
    patched = asyncssh.connection.SSHServerConnection._validate_openssh_certificate
    assert patched is certext._validate_openssh_certificate


def test_other_asyncssh_versions_refuse_to_import() -> None:
    probe = "import asyncssh; asyncssh.__version__ = '2.24.1'; import bastion.identity.certext"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.returncode != 0
    assert "ImportError" in result.stderr
    assert "2.24.1" in result.stderr
