"""A recording that cannot be written (a full disk): the file keeps whole lines, the session stops, and what was
written is still closed and bound into the audit chain."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import VENV_BIN, Bastion

# Write failures are made with RLIMIT_FSIZE (EFBIG; Python ignores SIGXFSZ) instead of filling a disk.
_SHORT_WRITE = """
import resource, sys
from bastion.errors import StoreError
from bastion.recording import RecordingSink
sink = RecordingSink(__import__("pathlib").Path(sys.argv[1]))
sink.write(b'{"version": 2}\\n')
sink.flush()
resource.setrlimit(resource.RLIMIT_FSIZE, (1000, resource.RLIM_INFINITY))
for n in range(100):
    sink.write(b'[0.1, "o", "%s"]\\n' % (b"x" * 40))
try:
    sink.flush()
except StoreError as exc:
    print(exc)
resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
sink.write(b'[0.2, "o", "after the disk has room again"]\\n')
sink.flush()
print(sink.digest, sink.size)
"""


def test_a_short_write_is_cut_back_to_the_last_whole_line_and_nothing_follows(tmp_path: Path) -> None:
    cast = tmp_path / "short.cast"
    result = subprocess.run([sys.executable, "-c", _SHORT_WRITE, str(cast)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    error, digest_and_size = result.stdout.splitlines()
    assert error == "cannot write recording short.cast: File too large"
    data = cast.read_bytes()
    assert data == b'{"version": 2}\n'
    assert digest_and_size == f"{__import__('hashlib').sha256(data).hexdigest()} {len(data)}"


@pytest.mark.skipif(shutil.which("prlimit") is None, reason="needs prlimit (util-linux)")
def test_a_recording_that_fills_the_disk_stops_the_session_and_is_still_bound(bastion: Bastion) -> None:
    """Uses this module's own bastion: the file-size limit set on its process stays with it."""
    agent = bastion.agent("agent-full", ["tester"])
    assert bastion.ssh(agent, "web-1", "true").returncode == 0
    assert bastion.proc is not None
    files_before = (bastion.dir / "bastion.db").stat().st_size + sum(p.stat().st_size for p in bastion.casts())
    subprocess.run(["prlimit", f"--pid={bastion.proc.pid}", f"--fsize={files_before + 4_000_000}"], check=True)

    result = bastion.ssh(agent, "web-1", "seq 1 3000000")

    assert result.returncode == 255
    assert result.stderr.startswith(b"bastion: cannot write recording ") and result.stderr.endswith(
        b": File too large; session stopped\n")
    cast = bastion.casts()[-1]
    assert cast.read_bytes().endswith(b"\n")
    shown = subprocess.run([str(VENV_BIN / "asciinema"), "cat", str(cast)], capture_output=True, timeout=60)
    assert shown.returncode == 0
    recorded = shown.stdout.split(b"\n")[:-1]
    assert recorded and result.stdout.startswith(b"\n".join(recorded[:-1]))
    db = sqlite3.connect(bastion.dir / "bastion.db")
    close = json.loads(db.execute("SELECT details FROM audit_event WHERE type = 'session.close' "
                                  "ORDER BY seq DESC LIMIT 1").fetchone()[0])
    assert close["recording"].endswith(cast.name)
    assert close["recording_error"].startswith("cannot write recording ")
    assert close["recording_size"] == cast.stat().st_size
    verify = bastion.cli("audit", "verify", "--recordings", check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
