"""The audit chain: event records, their canonical encoding and hash, signed checkpoints, and verification.

Pure: no database, no files, no asyncio. The store and the verifier feed plain records in and read findings
out, so an auditor can re-check a chain from an export with this module alone (or a re-implementation of it).

Canonical encoding of an event (what its hash covers)
------------------------------------------------------
Take these eight fields of the event, and only these (never `hash` itself):

    seq         integer, 1 for the first event, then +1 per event, no gaps
    time        string, UTC, ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (always six fractional digits, literal ``Z``)
    type        string, dotted lower-case name such as ``session.close``
    subject     string or null (who acted: the token's subject, ``bastion`` for the server itself)
    target      string or null (the target server's name)
    session_id  string or null
    details     JSON object (``{}`` when there is nothing to add)
    prev_hash   string, the ``hash`` of the event with seq - 1; 64 ``0`` characters for seq 1

Serialize them as one JSON object with keys sorted by code point at every nesting level, no insignificant
whitespace (separators ``,`` and ``:``), non-ASCII characters written as themselves (not ``\\u`` escapes),
``null`` for absent values, integers in plain decimal, floats in Python's shortest round-trip form
(``repr``; NaN and infinities are refused), and encode the text as UTF-8. In Python that is exactly
``json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()``.
The event's ``hash`` is the lower-case hex SHA-256 of those bytes. Because ``prev_hash`` is inside the hashed
bytes, each event commits to every event before it.

Checkpoints
-----------
A checkpoint signs the chain's head so that deleting the newest events, or rewriting the whole chain with
recomputed hashes, is detectable by anyone holding the public key. The signed message is the canonical
encoding (as above) of ``{"context": "bastion.audit.checkpoint.v1", "hash": H, "seq": S, "time": T}`` where
S and H are the seq and hash of the event being covered and T is the checkpoint's own time; the signature is
Ed25519 over those bytes, stored base64 (standard alphabet, padded). The key fingerprint is OpenSSH's
(``ssh-keygen -lf``): ``SHA256:`` + unpadded base64 of SHA-256 over the key's SSH wire encoding.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

GENESIS_HASH = "0" * 64
CHECKPOINT_CONTEXT = "bastion.audit.checkpoint.v1"
_TYPE_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")


class EventType:
    """Event type names the product emits; `admin.*` takes any verb after it (`admin.target_added`)."""

    AUTH_SUCCESS = "auth.success"
    AUTH_FAILURE = "auth.failure"
    SESSION_OPEN = "session.open"
    SESSION_CLOSE = "session.close"
    REQUEST_DECIDED = "request.decided"
    APPROVAL_REQUESTED = "approval.requested"
    APPROVAL_APPROVED = "approval.approved"
    APPROVAL_DENIED = "approval.denied"
    APPROVAL_EXPIRED = "approval.expired"
    APPROVAL_USED = "approval.used"
    APPROVAL_WITHDRAWN = "approval.withdrawn"
    REVOCATION_ADDED = "revocation.added"
    POLICY_LOADED = "policy.loaded"
    SERVER_START = "server.start"
    SERVER_STOP = "server.stop"
    ADMIN_PREFIX = "admin."


def is_valid_type(name: str) -> bool:
    """Types are dotted lower-case words, so SIEM rules can match on prefixes like `approval.`."""
    return bool(_TYPE_RE.match(name))


def format_time(moment: datetime) -> str:
    """The one text form of an event time; fixed width so text order is time order."""
    if moment.tzinfo is None:
        raise ValueError("event times must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_json(value: Any) -> str:
    """The canonical JSON text described in the module docstring."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


@dataclass(frozen=True)
class EventRecord:
    """One audit event as stored and as hashed; `hash` is over every other field."""

    seq: int
    time: str
    type: str
    subject: str | None
    target: str | None
    session_id: str | None
    details: Mapping[str, Any]
    prev_hash: str
    hash: str

    def hashed_fields(self) -> dict[str, Any]:
        """The eight fields the hash covers, as a plain dict."""
        return {
            "seq": self.seq,
            "time": self.time,
            "type": self.type,
            "subject": self.subject,
            "target": self.target,
            "session_id": self.session_id,
            "details": dict(self.details),
            "prev_hash": self.prev_hash,
        }

    def computed_hash(self) -> str:
        """What `hash` should be, recomputed from the other fields."""
        return hashlib.sha256(canonical_json(self.hashed_fields()).encode("utf-8")).hexdigest()

    def as_dict(self) -> dict[str, Any]:
        """All fields, hash included: the export form."""
        return {**self.hashed_fields(), "hash": self.hash}


def seal(
    *,
    seq: int,
    time: str,
    type: str,
    prev_hash: str,
    subject: str | None = None,
    target: str | None = None,
    session_id: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> EventRecord:
    """Build the next event and compute its hash; the only way new records are made."""
    if seq < 1:
        raise ValueError("seq starts at 1")
    if not is_valid_type(type):
        raise ValueError(f"bad event type {type!r}")
    unsealed = EventRecord(seq, time, type, subject, target, session_id, dict(details or {}), prev_hash, "")
    return replace(unsealed, hash=unsealed.computed_hash())


@dataclass(frozen=True)
class CheckpointRecord:
    """A signature over (seq, hash, time) of the chain's head, with the public key that made it."""

    seq: int
    hash: str
    time: str
    signature: str
    key_fingerprint: str
    public_key: str  # raw 32-byte Ed25519 public key, base64

    def message(self) -> bytes:
        return checkpoint_message(self.seq, self.hash, self.time)


def checkpoint_message(seq: int, hash: str, time: str) -> bytes:
    """The bytes a checkpoint signs (see the module docstring)."""
    return canonical_json({"context": CHECKPOINT_CONTEXT, "hash": hash, "seq": seq, "time": time}).encode()


def key_fingerprint(public_key: Ed25519PublicKey) -> str:
    """OpenSSH-style fingerprint, so it can be compared with `ssh-keygen -lf audit.key`."""
    line = public_key.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH)
    blob = base64.b64decode(line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def sign_checkpoint(key: Ed25519PrivateKey, event: EventRecord, time: str) -> CheckpointRecord:
    """Sign the head `event` of the chain."""
    public = key.public_key()
    signature = key.sign(checkpoint_message(event.seq, event.hash, time))
    raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return CheckpointRecord(
        seq=event.seq,
        hash=event.hash,
        time=time,
        signature=base64.b64encode(signature).decode(),
        key_fingerprint=key_fingerprint(public),
        public_key=base64.b64encode(raw).decode(),
    )


def checkpoint_signature_problem(cp: CheckpointRecord, trusted: Ed25519PublicKey | None) -> str | None:
    """Why `cp`'s signature is not acceptable, or None when it is.

    With `trusted` the checkpoint must be signed by that key; without it, by the key stored beside it, which
    only proves the row is self-consistent (someone able to rewrite the database could re-sign with a key of
    their own), so auditors should keep the public key elsewhere and pass it.
    """
    try:
        stored = Ed25519PublicKey.from_public_bytes(base64.b64decode(cp.public_key, validate=True))
        signature = base64.b64decode(cp.signature, validate=True)
    except ValueError:
        return "checkpoint signature or key is malformed"
    if key_fingerprint(stored) != cp.key_fingerprint:
        return "checkpoint key fingerprint does not match its stored key"
    key = stored
    if trusted is not None:
        if key_fingerprint(trusted) != cp.key_fingerprint:
            expected = key_fingerprint(trusted)
            return f"checkpoint signed by {cp.key_fingerprint}, not by the trusted key {expected}"
        key = trusted
    try:
        key.verify(signature, cp.message())
    except InvalidSignature:
        return "bad checkpoint signature"
    return None


@dataclass(frozen=True)
class Problem:
    """The first thing found wrong: which event (or file) and why."""

    seq: int | None
    reason: str
    file: str | None = None


class ChainVerifier:
    """Checks events fed in seq order, then the checkpoints (and an anchor, if given) against what was seen.

    Incremental so the store can stream millions of rows through it without holding them. `anchor` is a
    (seq, hash) an earlier verification reported; `signed` is the newest checkpoint's seq, and
    `first_unsigned` the event after it, if any.
    """

    def __init__(
        self,
        checkpoints: Sequence[CheckpointRecord] = (),
        trusted_key: Ed25519PublicKey | None = None,
        anchor: tuple[int, str] | None = None,
    ) -> None:
        self.checkpoints = sorted(checkpoints, key=lambda c: c.seq)
        self.trusted_key = trusted_key
        self.anchor = anchor
        self.count = 0
        self.last_hash = GENESIS_HASH
        self.signed = self.checkpoints[-1].seq if self.checkpoints else 0
        self.first_unsigned: EventRecord | None = None
        self._wanted = {cp.seq for cp in self.checkpoints} | ({anchor[0]} if anchor else set())
        self._covered: dict[int, str] = {}

    @property
    def signed_hash(self) -> str | None:
        """The hash of the newest signed event, once it has been fed."""
        return self._covered.get(self.signed)

    def feed(self, event: EventRecord) -> Problem | None:
        """Check one event; the first problem means the chain is broken from there on."""
        expected = self.count + 1
        if event.seq > expected:
            missing = f"{expected}" if event.seq == expected + 1 else f"{expected}..{event.seq - 1}"
            return Problem(expected, f"seq gap: event {missing} missing (deleted)")
        if event.seq < expected:
            return Problem(expected, f"seq {event.seq} found where {expected} belongs (reordered)")
        if event.computed_hash() != event.hash:
            return Problem(event.seq, "hash mismatch: the event was edited, replaced or moved")
        if event.prev_hash != self.last_hash:
            return Problem(
                event.seq, f"prev_hash does not match event {event.seq - 1} (reordered or inserted)"
            )
        self.count = event.seq
        self.last_hash = event.hash
        if event.seq in self._wanted:
            self._covered[event.seq] = event.hash
        if event.seq == self.signed + 1:
            self.first_unsigned = event
        return None

    def finish(self) -> Problem | None:
        """After the last event: every checkpoint must cover an event that is still there, and be signed; the
        anchor's event must be there, unchanged."""
        for cp in self.checkpoints:
            if cp.seq > self.count:
                return Problem(
                    self.count + 1,
                    f"log ends at seq {self.count} but checkpoint covers seq {cp.seq}: newest events deleted",
                )
            if self._covered.get(cp.seq) != cp.hash:
                return Problem(cp.seq, f"checkpoint at seq {cp.seq} does not match the event's hash")
            why = checkpoint_signature_problem(cp, self.trusted_key)
            if why is not None:
                return Problem(cp.seq, f"{why} (checkpoint at seq {cp.seq})")
        if self.anchor is not None:
            seq, digest = self.anchor
            if seq > self.count:
                return Problem(self.count + 1, f"log ends at seq {self.count} but the anchor is at seq {seq}: "
                                               "events deleted")
            if self._covered.get(seq) != digest:
                return Problem(seq, f"event {seq} is not the one anchored: the log was rewritten up to there")
        return None


def verify_chain(
    events: Iterable[EventRecord],
    checkpoints: Sequence[CheckpointRecord] = (),
    trusted_key: Ed25519PublicKey | None = None,
) -> Problem | None:
    """The first problem in a chain given in seq order, or None when it is intact."""
    verifier = ChainVerifier(checkpoints, trusted_key)
    for event in events:
        problem = verifier.feed(event)
        if problem is not None:
            return problem
    return verifier.finish()
