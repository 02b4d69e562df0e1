"""The audit chain on PostgreSQL, where the advisory lock (not BEGIN IMMEDIATE) serialises writers.

Runs when BASTION_TEST_POSTGRES_URL names a database it may drop the audit tables in, and psycopg2 is
installed; skipped otherwise.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bastion.audit.keys import audit_public_key_text
from bastion.audit.verify import verify_audit
from bastion.store.db import connect
from bastion.store.events import Event

URL = os.environ.get("BASTION_TEST_POSTGRES_URL", "")
pytest.importorskip("psycopg2")
pytestmark = pytest.mark.skipif(not URL, reason="BASTION_TEST_POSTGRES_URL is not set")

WRITER = """
import sys, time
from pathlib import Path
from bastion.audit.log import AuditLog
from bastion.store.db import connect

url, key_path, name, go = sys.argv[1:]
connect(url)
log = AuditLog(signing_key_path=key_path, checkpoint_every=50)
Path(f"{go}.{name}").touch()
while not Path(go).exists():
    time.sleep(0.005)
for i in range(200):
    log.append("request.decided", subject=name, details={"i": i})
    time.sleep(0.002 * (i % 2))
log.close()
"""


@pytest.fixture
def pg():
    database = connect(URL)
    database.execute_sql("DROP TABLE IF EXISTS audit_event, audit_checkpoint")
    database.close()
    database = connect(URL)
    yield database
    database.close()


def test_two_processes_make_one_chain_on_postgres(pg, tmp_path: Path) -> None:
    key_path = tmp_path / "audit.key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-m", "PKCS8", "-f", str(key_path)], check=True
    )
    go = tmp_path / "go"
    names = ("p1", "p2")
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, URL, str(key_path), name, str(go)]) for name in names
    ]
    deadline = time.monotonic() + 60
    while not all(Path(f"{go}.{n}").exists() for n in names) and time.monotonic() < deadline:
        time.sleep(0.01)
    go.touch()
    assert [w.wait(timeout=120) for w in writers] == [0, 0]

    result = verify_audit(public_key=audit_public_key_text(key_path))
    assert result.ok, str(result)
    assert result.events == 400
    subjects = [row.subject for row in Event.select(Event.subject).order_by(Event.seq)]
    assert sum(1 for _ in itertools.groupby(subjects)) > 4, "the writers did not overlap"

    pg.execute_sql("UPDATE audit_event SET details = '{}' WHERE seq = 123")
    assert verify_audit().first_bad_seq == 123
