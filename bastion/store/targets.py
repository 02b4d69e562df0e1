"""Registered targets: where a login name routes to, with the sealed credential and the pinned host key."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

import peewee

from bastion.errors import BastionError, NotFound
from bastion.store.db import BaseModel, UtcDateTimeField, register


@register
class TargetRow(BaseModel):
    name = peewee.CharField(unique=True)
    host = peewee.CharField()
    port = peewee.IntegerField()
    user = peewee.CharField()
    credential_kind = peewee.CharField()  # "key" or "password"
    credential = peewee.TextField()  # AES-GCM sealed, see bastion.secrets
    host_key = peewee.TextField()  # "TYPE BASE64"
    labels = peewee.TextField(default="{}")
    shell = peewee.CharField(default="bash")  # "sh" for hosts without bash: they get plain argv only
    created = UtcDateTimeField()

    class Meta:
        table_name = "targets"


@dataclass(frozen=True)
class Target:
    name: str
    host: str
    port: int
    user: str
    credential_kind: str
    sealed_credential: str = field(repr=False)
    host_key: str
    labels: dict[str, str]
    shell: str = "bash"


def _to_target(row: TargetRow) -> Target:
    return Target(
        name=row.name,
        host=row.host,
        port=row.port,
        user=row.user,
        credential_kind=row.credential_kind,
        sealed_credential=row.credential,
        host_key=row.host_key,
        labels=json.loads(row.labels),
        shell=row.shell,
    )


def add(target: Target) -> None:
    try:
        TargetRow.create(
            name=target.name,
            host=target.host,
            port=target.port,
            user=target.user,
            credential_kind=target.credential_kind,
            credential=target.sealed_credential,
            host_key=target.host_key,
            labels=json.dumps(target.labels, sort_keys=True),
            shell=target.shell,
            created=datetime.now(UTC),
        )
    except peewee.IntegrityError:
        raise BastionError(f"target {target.name} already exists (remove it first)") from None


def get(name: str) -> Target:
    row = TargetRow.get_or_none(TargetRow.name == name)
    if row is None:
        raise NotFound(f"no target named {name}")
    return _to_target(row)


def find(name: str) -> Target | None:
    row = TargetRow.get_or_none(TargetRow.name == name)
    return None if row is None else _to_target(row)


def all_targets() -> list[Target]:
    return [_to_target(row) for row in TargetRow.select().order_by(TargetRow.name)]


def remove(name: str) -> None:
    if TargetRow.delete().where(TargetRow.name == name).execute() == 0:
        raise NotFound(f"no target named {name}")
