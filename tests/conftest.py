import logging
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bastion.store.db import connect
from tests.harness import SSHD, Bastion, Sshd


def pytest_configure(config: pytest.Config) -> None:
    logging.getLogger("asyncssh").setLevel(logging.INFO)


@pytest.fixture(scope="session")
def openssh() -> None:
    for tool in ("ssh", "ssh-keygen"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: scripts/test.sh installs OpenSSH")
    if not Path(SSHD).exists():
        pytest.fail("sshd is missing: scripts/test.sh installs openssh-server")


@pytest.fixture(scope="module")
def sshd(openssh: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    server = Sshd(tmp_path_factory.mktemp("sshd")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def bastion(sshd: Sshd, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bastion]:
    """A bastion serving one target, web-1, that routes to the test sshd."""
    b = Bastion(tmp_path_factory.mktemp("bastion")).init()
    b.add_target("web-1", sshd)
    b.serve()
    yield b
    b.stop()


@pytest.fixture
def db(tmp_path: Path):
    """A fresh store (SQLite) bound for this test."""
    database = connect(tmp_path / "bastion.db")
    yield database
    database.close()


@pytest.fixture
def key_path(tmp_path: Path) -> Path:
    """An audit signing key, as `bastion init` makes it."""
    path = tmp_path / "audit.key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-m", "PKCS8", "-f", str(path)], check=True)
    return path
