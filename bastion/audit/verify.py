"""`bastion audit verify`: the chain in the database, its checkpoints, and optionally the recordings.

Streams the events through the pure `ChainVerifier`, collecting each `session.close` event's recording claim
(`recording` path relative to the recordings dir, `recording_sha256`, `recording_size`) on the way, then
re-hashes those files. Stops at the first problem, since everything after a break is suspect anyway.

Only what a checkpoint signs is proof against someone who can write the database: events after the newest
checkpoint can be rewritten with fresh hashes, and so can everything if the checkpoints are deleted. So:
- an unsigned tail longer or older than a running bastion leaves one (it signs every `CHECKPOINT_EVERY` events
  and every `CHECKPOINT_INTERVAL_S`) is a failure: the bastion stopped without signing, or checkpoints were
  removed;
- the summary names the signed head as an anchor, `SEQ:HASH`. An auditor who keeps it and passes it back with
  `--anchor` has the chain checked against it, which no rewrite of the database can pass.
Sessions opened but not closed (live ones, or those of a bastion that stopped) are counted: their recordings
are not bound yet.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from bastion.audit.chain import ChainVerifier, EventRecord, EventType, Problem
from bastion.audit.keys import load_public_key
from bastion.audit.log import CHECKPOINT_EVERY, CHECKPOINT_INTERVAL_S
from bastion.store import events as store

# How far an intact log's unsigned tail may reach: what a running bastion leaves, with room for several
# processes and a busy moment.
UNSIGNED_EVENTS_MAX = 2 * CHECKPOINT_EVERY
UNSIGNED_AGE_MAX = timedelta(seconds=3 * CHECKPOINT_INTERVAL_S)


@dataclass(frozen=True)
class VerifyResult:
    """What the auditor is told: intact, or the first bad event / file and why."""

    ok: bool
    first_bad_seq: int | None
    file: str | None
    reason: str
    events: int
    checkpoints: int
    recordings: int

    def __str__(self) -> str:
        if self.ok:
            return self.reason
        where = f"seq {self.first_bad_seq}" if self.first_bad_seq is not None else "the log"
        if self.file is not None:
            where = f"recording {self.file} ({where})"
        return f"audit broken at {where}: {self.reason}"


@dataclass(frozen=True)
class _RecordingClaim:
    seq: int
    path: Any
    sha256: Any
    size: Any


def verify_audit(
    *,
    recordings_dir: str | Path | None = None,
    public_key: Ed25519PublicKey | str | None = None,
    anchor: tuple[int, str] | None = None,
    now: datetime | None = None,
) -> VerifyResult:
    """Verify the connected database's chain and checkpoints, and the recordings given `recordings_dir`.

    `public_key` (an Ed25519 key, PEM text or an OpenSSH line) is the key checkpoints must be signed with;
    without it each checkpoint is checked against the key stored beside it (`checkpoint_signature_problem`).
    `anchor` is a (seq, hash) an earlier verification reported: that event must still be there, unchanged.
    """
    trusted = load_public_key(public_key) if isinstance(public_key, str) else public_key
    # Checkpoints first: every event they cover was committed before them, so the events read next include it.
    checkpoints = store.list_checkpoints()
    verifier = ChainVerifier(checkpoints, trusted, anchor)
    claims: list[_RecordingClaim] = []
    unclosed: set[str] = set()
    problem: Problem | None = None
    for event in store.iter_events():
        problem = verifier.feed(event)
        if problem is not None:
            break
        if event.type == EventType.SESSION_OPEN and event.session_id:
            unclosed.add(event.session_id)
        elif event.type == EventType.SESSION_CLOSE and event.session_id:
            unclosed.discard(event.session_id)
        claim = _claim(event)
        if claim is not None:
            claims.append(claim)
    problem = problem or verifier.finish()
    if problem is None and verifier.first_unsigned is not None:
        problem = _check_unsigned(verifier.first_unsigned, verifier.count - verifier.signed,
                                  now or datetime.now(UTC))
    if problem is None and recordings_dir is not None:
        problem = _check_recordings(Path(recordings_dir), claims)

    checked = len(claims) if recordings_dir is not None else 0
    if problem is not None:
        return VerifyResult(
            False, problem.seq, problem.file, problem.reason, verifier.count, len(checkpoints), 0
        )
    summary = f"audit intact: {verifier.count} events, {len(checkpoints)} checkpoints"
    if recordings_dir is not None:
        summary += f", {checked} recordings"
    if verifier.signed:
        summary += f"; signed through anchor {verifier.signed}:{verifier.signed_hash}"
    if verifier.count > verifier.signed:
        summary += f"; {verifier.count - verifier.signed} newer events not signed yet"
    if unclosed:
        summary += f"; {len(unclosed)} sessions not closed (live, or their bastion stopped): recordings not bound"
    return VerifyResult(True, None, None, summary, verifier.count, len(checkpoints), checked)


def parse_anchor(text: str) -> tuple[int, str]:
    """`SEQ:HASH` as printed by a verification; ValueError when it is not one."""
    found = re.fullmatch(r"([1-9][0-9]*):([0-9a-fA-F]{64})", text)
    if found is None:
        raise ValueError(f"an anchor is SEQ:HASH (a SHA-256 in hex), as verify prints it, not {text!r}")
    return int(found.group(1)), found.group(2).lower()


def _check_unsigned(first: EventRecord, count: int, now: datetime) -> Problem | None:
    """An unsigned tail a running bastion would not have left, or None."""
    age = now - datetime.fromisoformat(first.time)
    if count <= UNSIGNED_EVENTS_MAX and age <= UNSIGNED_AGE_MAX:
        return None
    return Problem(
        first.seq,
        f"{count} events after the last checkpoint are not signed, the oldest from {first.time}: "
        "a bastion stopped without signing them, or checkpoints were removed",
    )


def _claim(event: EventRecord) -> _RecordingClaim | None:
    if event.type != EventType.SESSION_CLOSE or "recording" not in event.details:
        return None
    d = event.details
    return _RecordingClaim(event.seq, d["recording"], d.get("recording_sha256"), d.get("recording_size"))


def _check_recordings(root: Path, claims: list[_RecordingClaim]) -> Problem | None:
    base = root.resolve()
    for claim in claims:
        name = str(claim.path)
        if (
            not isinstance(claim.path, str)
            or not isinstance(claim.sha256, str)
            or not isinstance(claim.size, int)
        ):
            return Problem(claim.seq, "session.close names a recording without its SHA-256 and size", name)
        path = (base / claim.path).resolve()
        if not path.is_relative_to(base):
            return Problem(claim.seq, "recording path leaves the recordings directory", name)
        try:
            digest, size = file_digest(path)
        except FileNotFoundError:
            return Problem(claim.seq, "recording is missing", name)
        except OSError as err:
            return Problem(claim.seq, f"recording cannot be read: {err.strerror}", name)
        if size != claim.size:
            return Problem(claim.seq, f"recording size is {size}, the audit log says {claim.size}", name)
        if digest != claim.sha256.lower():
            return Problem(claim.seq, "recording SHA-256 differs from the audit log (altered)", name)
    return None


def file_digest(path: str | Path) -> tuple[str, int]:
    """SHA-256 (hex) and size of a file, read in chunks."""
    with open(path, "rb") as fh:
        digest = hashlib.file_digest(fh, "sha256")
        return digest.hexdigest(), fh.tell()


def recording_details(recordings_dir: str | Path, path: str | Path) -> dict[str, Any]:
    """The `session.close` details that bind a finished recording into the chain.

    `path` may be absolute or relative to `recordings_dir`; it is stored relative so the data dir can move.
    """
    root = Path(recordings_dir).resolve()
    full = (root / path).resolve()
    digest, size = file_digest(full)
    return {
        "recording": full.relative_to(root).as_posix(),
        "recording_sha256": digest,
        "recording_size": size,
    }
