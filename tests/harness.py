"""Real components for integration tests: an OpenSSH sshd as the target, `bastion serve` as a subprocess,
agent keys and certificates made with ssh-keygen, and the OpenSSH ssh client to drive them."""

from __future__ import annotations

import getpass
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import yaml

from bastion.identity.issue import issue_token

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
VENV_BIN = Path(sys.executable).parent
BASTION = [sys.executable, "-m", "bastion"]
DEMO_ISSUER = "https://bastion.invalid/demo-issuer"
# Transport tests use this role so that what they run is allowed; decision tests use the shipped roles.
TESTER_ROLE = "tester"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def wait_for(predicate: Callable[[], bool], what: str, limit: float = 60.0) -> None:
    """Polls `predicate` every 50 ms; AssertionError naming `what` after `limit` seconds."""
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def keygen(path: Path, kind: str = "ed25519") -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", path.name, "-f", str(path)], check=True)
    return path


def read_public(path: Path) -> str:
    return " ".join(Path(str(path) + ".pub").read_text().split()[:2])


@dataclass
class Sshd:
    """A real OpenSSH server on a free loopback port, with its own config, host key and authorized keys."""

    root: Path
    port: int = 0
    user: str = field(default_factory=getpass.getuser)
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Sshd:
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        keygen(self.root / "host_key")
        keygen(self.root / "client_key")
        (self.root / "authorized_keys").write_text(Path(str(self.root / "client_key") + ".pub").read_text())
        os.chmod(self.root / "authorized_keys", 0o600)
        # SetEnv SHLVL=1: bash sources the login user's ~/.bashrc for sessions started by sshd only when it is a
        # top-level shell, so this keeps a developer's .bashrc (pyenv init: ~140 ms of CPU here) out of every
        # session; tests and bench measure the bastion and a plain target, not this machine's shell start-up.
        (self.root / "sshd_config").write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {self.root}/host_key\n"
            f"PidFile {self.root}/sshd.pid\nAuthorizedKeysFile {self.root}/authorized_keys\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
            "PermitRootLogin prohibit-password\nAcceptEnv LANG LC_*\nSubsystem sftp internal-sftp\n"
            "MaxStartups 500\nMaxSessions 100\nLogLevel ERROR\nSetEnv SHLVL=1\n"
        )
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        with open(self.root / "sshd.log", "wb") as log:
            self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.root / "sshd_config")], stderr=log)
        wait_port(self.port)
        return self

    @property
    def host_key(self) -> str:
        return read_public(self.root / "host_key")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@dataclass
class Agent:
    """An agent's key pair and certificate, as an agent would hold them."""

    key: Path
    cert: Path
    subject: str


@dataclass
class Bastion:
    """A bastion data dir made by `bastion init`, and its `serve` process."""

    root: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def dir(self) -> Path:
        return self.root / "data"

    @property
    def config(self) -> Path:
        return self.dir / "bastion.yaml"

    def cli(self, *args: str, env: dict[str, str] | None = None, input: bytes | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([*BASTION, "--config", str(self.config), *args], capture_output=True, text=True,
                                env={**os.environ, **(env or {})}, input=input and input.decode())
        if check and result.returncode != 0:
            raise AssertionError(f"bastion {' '.join(args)} failed: {result.stderr}")
        return result

    def init(self) -> Bastion:
        self.root.mkdir(parents=True, exist_ok=True)
        subprocess.run([*BASTION, "init", "--dir", str(self.dir)], check=True, capture_output=True)
        self.add_role(TESTER_ROLE, {"description": "Tests of the transport: everything allowed everywhere.",
                                    "targets": [{"name": "everything", "match": {"names": ["*"]},
                                                 "read": "allow", "write": "allow", "shell": "allow"}]})
        return self

    def add_role(self, name: str, spec: dict[str, object]) -> None:
        """Adds a role to this bastion's policy.yaml (the shipped roles stay as they are)."""
        path = self.dir / "policies" / "policy.yaml"
        policy = yaml.safe_load(path.read_text())
        policy["roles"][name] = spec
        path.write_text(yaml.safe_dump(policy, sort_keys=False))

    def add_target(self, name: str, sshd: Sshd, *extra: str, host_key: str | None = None) -> None:
        self.cli("target", "add", name, "--host", "127.0.0.1", "--port", str(sshd.port), "--user", sshd.user,
                 "--key-file", str(sshd.root / "client_key"), "--host-key", host_key or sshd.host_key, *extra)

    def serve(self, *extra: str) -> Bastion:
        self.port = free_port()
        with open(self.root / f"serve-{self.port}.log", "wb") as log:
            self.proc = subprocess.Popen([*BASTION, "serve", "--config", str(self.config), "--listen",
                                          f"127.0.0.1:{self.port}", "-v", *extra], stderr=log)
        wait_port(self.port)
        with open(self.root / "known_hosts", "a") as known:
            known.write(f"[127.0.0.1]:{self.port} {read_public(self.dir / 'host_key')}\n")
        return self

    def log(self) -> str:
        return (self.root / f"serve-{self.port}.log").read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def token(self, subject: str, roles: list[str], ttl: timedelta = timedelta(hours=1), **kw: object) -> str:
        return issue_token(self.dir / "issuer.key", iss=DEMO_ISSUER, sub=subject, roles=roles, ttl=ttl, **kw)

    def agent(self, subject: str, roles: list[str] | None = None, *, token: str | None = None,
              ca: Path | None = None, validity: str = "+1h", principals: str | None = "",
              extension: str = "token@bastion", serial: int | None = None) -> Agent:
        """An agent key and a certificate signed by real `ssh-keygen -s` carrying its token."""
        home = self.root / "agents"
        home.mkdir(exist_ok=True)
        key = home / f"{subject}-{len(list(home.iterdir()))}"
        keygen(key)
        token = token if token is not None else self.token(subject, roles or [TESTER_ROLE])
        cmd = ["ssh-keygen", "-q", "-s", str(ca or self.dir / "user_ca"), "-I", subject, "-V", validity]
        if principals is not None:  # None: a certificate with no principals at all
            cmd += ["-n", principals or subject]
        if serial is not None:
            cmd += ["-z", str(serial)]
        if extension:
            cmd += ["-O", f"extension:{extension}={token}"]
        subprocess.run([*cmd, str(key) + ".pub"], check=True, capture_output=True)
        return Agent(key, Path(str(key) + "-cert.pub"), subject)

    def second_process(self) -> Bastion:
        """Another `bastion serve` on the same data dir and database (as several processes would share it)."""
        other = Bastion(self.root)
        return other.serve()

    def ssh_args(self, agent: Agent | None, login: str, *options: str) -> list[str]:
        base = ["ssh", "-F", "/dev/null", "-p", str(self.port), "-o", "BatchMode=yes",
                "-o", f"UserKnownHostsFile={self.root / 'known_hosts'}", "-o", "StrictHostKeyChecking=yes",
                "-o", "IdentitiesOnly=yes", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=20"]
        if agent is not None:
            base += ["-i", str(agent.key), "-o", f"CertificateFile={agent.cert}"]
        return [*base, *options, f"{login}@127.0.0.1"]

    def ssh(self, agent: Agent | None, login: str, command: str | None = None, *options: str,
            input: bytes | None = None, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
        args = self.ssh_args(agent, login, *options) + ([command] if command is not None else [])
        return subprocess.run(args, input=input if input is not None else b"", capture_output=True, timeout=timeout)

    def casts(self) -> list[Path]:
        return sorted((self.dir / "recordings").rglob("*.cast"), key=lambda p: p.stat().st_mtime)


def asciinema_cat(path: Path) -> str:
    result = subprocess.run([str(VENV_BIN / "asciinema"), "cat", str(path)], capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result.stdout.decode(errors="replace")


def rss_kb(pid: int) -> int:
    match = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    assert match
    return int(match.group(1))
