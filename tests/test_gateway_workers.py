"""`bastion serve --workers N`: several serving processes on one socket, one audit chain, one clean stop."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import Bastion, Sshd, wait_for


def _workers(b: Bastion) -> list[int]:
    assert b.proc is not None
    out = subprocess.run(["pgrep", "-P", str(b.proc.pid)], capture_output=True, text=True).stdout
    return sorted(int(pid) for pid in out.split())


def _events(b: Bastion, kind: str) -> list[str]:
    with sqlite3.connect(b.dir / "bastion.db") as db:
        return [row[0] for row in db.execute("select details from audit_event where type = ? order by seq", (kind,))]


@pytest.fixture
def pair(sshd: Sshd, tmp_path: Path) -> Iterator[Bastion]:
    b = Bastion(tmp_path / "workers").init()
    b.add_target("web-1", sshd)
    b.serve("--workers", "2")
    wait_for(lambda: len(_events(b, "server.start")) == 2, "both workers to start")
    workers = _workers(b)
    yield b
    if b.proc is not None and b.proc.poll() is None:
        b.proc.kill()
        b.proc.wait()
    for pid in workers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_two_workers_serve_one_port_and_stop_together(pair: Bastion) -> None:
    workers = _workers(pair)
    assert len(workers) == 2
    agent = pair.agent("agent-w", ["tester"])
    for n in range(6):
        result = pair.ssh(agent, "web-1", f"echo {n}")
        assert (result.returncode, result.stdout) == (0, f"{n}\n".encode()), result.stderr
    assert pair.stop() == 0
    stops = _events(pair, "server.stop")
    assert sorted(int(d.split(":")[1].rstrip("}")) for d in stops) == workers
    with sqlite3.connect(pair.dir / "bastion.db") as db:
        assert db.execute("select count(*) from sessions where ended is not null").fetchone()[0] == 6
    assert pair.cli("audit", "verify", "--recordings").returncode == 0


def test_a_worker_that_dies_takes_the_gateway_down(pair: Bastion) -> None:
    first, second = _workers(pair)
    os.kill(first, signal.SIGKILL)
    assert pair.proc is not None
    assert pair.proc.wait(60) == 1
    assert f"worker {first} exited" in pair.log()
    with pytest.raises(ProcessLookupError):
        os.kill(second, 0)


def test_workers_must_be_at_least_one(sshd: Sshd, tmp_path: Path) -> None:
    b = Bastion(tmp_path / "zero").init()
    result = b.cli("serve", "--workers", "0", check=False)
    assert result.returncode == 1 and result.stderr.strip() == "bastion: --workers: at least 1"


def test_workers_of_a_killed_supervisor_stop_and_free_the_port(pair: Bastion) -> None:
    workers = _workers(pair)
    assert pair.proc is not None
    pair.proc.kill()
    pair.proc.wait()
    wait_for(lambda: not any(_alive(pid) for pid in workers), "the workers to stop after their supervisor")
    assert len(_events(pair, "server.stop")) == 2


def test_a_port_someone_already_serves_is_refused(pair: Bastion) -> None:
    again = pair.cli("serve", "--workers", "2", "--listen", f"127.0.0.1:{pair.port}", check=False)
    assert again.returncode == 1
    assert again.stderr.strip().startswith(f"bastion: cannot listen on 127.0.0.1:{pair.port}")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
