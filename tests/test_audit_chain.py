"""The pure chain: canonical encoding, sealing, verification and checkpoint signatures, driven with lists."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import assume, given
from hypothesis import strategies as st

from bastion.audit.chain import (
    GENESIS_HASH,
    EventRecord,
    EventType,
    checkpoint_signature_problem,
    format_time,
    seal,
    sign_checkpoint,
    verify_chain,
)

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def build(specs: list[dict]) -> list[EventRecord]:
    chain: list[EventRecord] = []
    for index, spec in enumerate(specs):
        prev = chain[-1].hash if chain else GENESIS_HASH
        moment = format_time(T0 + timedelta(microseconds=index))
        chain.append(seal(seq=index + 1, time=moment, prev_hash=prev, **spec))
    return chain


def mixed() -> list[EventRecord]:
    return build(
        [
            {"type": EventType.SERVER_START, "subject": "bastion"},
            {"type": EventType.AUTH_SUCCESS, "subject": "agent-7", "details": {"roles": ["ops"]}},
            {"type": EventType.SESSION_OPEN, "subject": "agent-7", "target": "web-1", "session_id": "s1"},
            {
                "type": EventType.REQUEST_DECIDED,
                "subject": "agent-7",
                "target": "web-1",
                "session_id": "s1",
                "details": {"command": "df -h", "verdict": "READ", "decision": "allow", "rule": "r1"},
            },
            {"type": EventType.SESSION_CLOSE, "session_id": "s1", "details": {"exit_status": 0}},
        ]
    )


def test_hash_is_sha256_of_the_documented_encoding() -> None:
    event = mixed()[3]
    text = json.dumps(
        {k: v for k, v in event.as_dict().items() if k != "hash"},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    assert event.hash == hashlib.sha256(text.encode("utf-8")).hexdigest()
    assert '"prev_hash"' in text and " " not in text.replace("df -h", "")


def test_non_ascii_is_hashed_as_utf8_not_escapes() -> None:
    event = build([{"type": "admin.note", "details": {"text": "größe"}}])[0]
    assert "größe".encode() in json.dumps(event.hashed_fields(), ensure_ascii=False).encode()
    assert event.computed_hash() == event.hash


def test_time_format_is_fixed_width_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert format_time(datetime(2025, 1, 2, 5, 4, 3, tzinfo=plus_two)) == "2025-01-02T03:04:03.000000Z"
    with pytest.raises(ValueError):
        format_time(datetime(2025, 1, 2))


def test_genesis_links_to_zeros_and_each_event_to_the_last() -> None:
    chain = mixed()
    assert chain[0].prev_hash == "0" * 64
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(chain))
    assert verify_chain(chain) is None


def test_seal_refuses_bad_types() -> None:
    with pytest.raises(ValueError):
        seal(seq=1, time="t", type="Session Open", prev_hash=GENESIS_HASH)


def test_deleted_event_is_a_gap() -> None:
    chain = mixed()
    problem = verify_chain(chain[:2] + chain[3:])
    assert problem is not None and problem.seq == 3 and "missing" in problem.reason


def test_reordered_and_rehashed_events_break_the_links() -> None:
    """Even an attacker who recomputes each moved event's hash cannot fake the links."""
    chain = mixed()
    a, b = chain[1], chain[2]
    moved_b = seal(**{**b.hashed_fields(), "seq": 2, "prev_hash": a.prev_hash})
    moved_a = seal(**{**a.hashed_fields(), "seq": 3})
    problem = verify_chain([chain[0], moved_b, moved_a, *chain[3:]])
    assert problem is not None and problem.seq == 3 and "prev_hash" in problem.reason


def test_checkpoint_signature_round_trip_and_forgery() -> None:
    key = Ed25519PrivateKey.generate()
    chain = mixed()
    cp = sign_checkpoint(key, chain[-1], format_time(T0))
    assert verify_chain(chain, [cp], key.public_key()) is None
    assert checkpoint_signature_problem(cp, None) is None

    forged = replace(cp, signature=base64.b64encode(b"\0" * 64).decode())
    problem = verify_chain(chain, [forged])
    assert problem is not None and problem.seq == 5 and "bad checkpoint signature" in problem.reason

    moved = replace(cp, seq=4, hash=chain[3].hash)
    problem = verify_chain(chain, [moved])
    assert problem is not None and "bad checkpoint signature" in problem.reason


def test_checkpoint_from_another_key_fails_against_the_trusted_key() -> None:
    chain = mixed()
    mine, theirs = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    cp = sign_checkpoint(theirs, chain[-1], format_time(T0))
    problem = verify_chain(chain, [cp], mine.public_key())
    assert problem is not None and "not by the trusted key" in problem.reason


def test_truncated_tail_behind_a_checkpoint() -> None:
    chain = mixed()
    cp = sign_checkpoint(Ed25519PrivateKey.generate(), chain[-1], format_time(T0))
    problem = verify_chain(chain[:3], [cp])
    assert problem is not None and problem.seq == 4 and "newest events deleted" in problem.reason


def test_rewritten_chain_does_not_match_its_checkpoint() -> None:
    chain = mixed()
    cp = sign_checkpoint(Ed25519PrivateKey.generate(), chain[2], format_time(T0))
    fixed = ("seq", "time", "prev_hash")
    specs = [{k: v for k, v in e.hashed_fields().items() if k not in fixed} for e in chain]
    specs[1]["subject"] = "someone-else"
    problem = verify_chain(build(specs), [cp])
    assert problem is not None and problem.seq == 3 and "does not match" in problem.reason


# Property tests: any chain verifies, any single-field change is caught at that event.

json_leaf = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
json_value = st.recursive(
    json_leaf | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
names = st.none() | st.text(min_size=1, max_size=12)
event_spec = st.fixed_dictionaries(
    {
        "type": st.sampled_from(
            [v for k, v in vars(EventType).items() if k.isupper() and not k.endswith("PREFIX")]
        ),
        "subject": names,
        "target": names,
        "session_id": names,
        "details": st.dictionaries(st.text(max_size=8), json_value, max_size=4),
    }
)
chains = st.lists(event_spec, min_size=1, max_size=12).map(build)

FIELD_VALUES = {
    "seq": st.integers(min_value=-5, max_value=50),
    "time": st.text(max_size=30),
    "type": st.sampled_from(["auth.success", "admin.anything", "session.close"]),
    "subject": names,
    "target": names,
    "session_id": names,
    "details": st.dictionaries(st.text(max_size=8), json_value, max_size=4),
    "prev_hash": st.text("0123456789abcdef", min_size=64, max_size=64),
    "hash": st.text("0123456789abcdef", min_size=64, max_size=64),
}


@given(chains)
def test_any_built_chain_verifies(chain: list[EventRecord]) -> None:
    assert verify_chain(chain) is None


@given(chains, st.data())
def test_any_single_field_change_is_caught_at_that_event(
    chain: list[EventRecord], data: st.DataObject
) -> None:
    index = data.draw(st.integers(min_value=0, max_value=len(chain) - 1))
    name = data.draw(st.sampled_from(sorted(FIELD_VALUES)))
    original = chain[index]
    value = data.draw(FIELD_VALUES[name])
    assume(json.dumps(value, sort_keys=True) != json.dumps(getattr(original, name), sort_keys=True))
    tampered = [*chain[:index], replace(original, **{name: value}), *chain[index + 1 :]]
    problem = verify_chain(tampered)
    assert problem is not None
    assert problem.seq == original.seq
