"""Revoked token ids, certificate serials and key fingerprints; checked at every login and channel open."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import peewee

from bastion.store.db import BaseModel, UtcDateTimeField, register

KINDS = ("jti", "serial", "key")


@register
class RevocationRow(BaseModel):
    kind = peewee.CharField()
    value = peewee.CharField()
    created = UtcDateTimeField()
    reason = peewee.TextField(default="")

    class Meta:
        table_name = "revocations"
        indexes = ((("kind", "value"), True),)


@dataclass(frozen=True)
class Revocation:
    kind: str
    value: str
    created: datetime
    reason: str


def add(kind: str, value: str, reason: str = "") -> bool:
    """Records a revocation; False when it was already there."""
    assert kind in KINDS
    try:
        RevocationRow.create(kind=kind, value=value, created=datetime.now(UTC), reason=reason)
    except peewee.IntegrityError:
        return False
    return True


def all_revocations() -> list[Revocation]:
    query = RevocationRow.select().order_by(RevocationRow.created)
    return [Revocation(r.kind, r.value, r.created, r.reason) for r in query]


class StoreRevocations:
    """The identity core's RevocationCheck, backed by the shared database (so every process sees it at once)."""

    def is_revoked(self, jti: str | None, serial: int, key_fingerprint: str) -> bool:
        """One indexed lookup per value, in SQL written once: it runs at every login and every channel."""
        wanted = [("serial", str(serial)), ("key", key_fingerprint)]
        if jti:
            wanted.append(("jti", jti))
        db = RevocationRow._meta.database
        one = f"(kind = {db.param} AND value = {db.param})"
        sql = f"SELECT 1 FROM {RevocationRow._meta.table_name} WHERE {' OR '.join([one] * len(wanted))} LIMIT 1"
        return db.execute_sql(sql, [part for pair in wanted for part in pair]).fetchone() is not None
