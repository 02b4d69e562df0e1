"""Database setup: SQLite in WAL mode by default, PostgreSQL when the config names a postgresql:// URL.

Each concept keeps its peewee model in its own module under `bastion.store`; every model derives from
`BaseModel` and is registered with `register` so `connect` can create the tables it needs.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import peewee
from playhouse.db_url import connect as connect_url

# How long a SQLite write waits for another process's lock before it fails.
BUSY_TIMEOUT_S = 10.0

database = peewee.DatabaseProxy()
_models: list[type[peewee.Model]] = []


class UtcDateTimeField(peewee.Field):
    """A moment in UTC, kept as ISO-8601 text so SQLite and PostgreSQL sort and return it the same way."""

    field_type = "VARCHAR(40)"

    def db_value(self, value: datetime | None) -> str | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("UtcDateTimeField needs an aware datetime")
        return value.astimezone(UTC).isoformat(timespec="microseconds")

    def python_value(self, value: str | None) -> datetime | None:
        return None if value is None else datetime.fromisoformat(value)


class BaseModel(peewee.Model):
    class Meta:
        database = database


def register(model: type[peewee.Model]) -> type[peewee.Model]:
    """Class decorator: the model's table is created by `connect`."""
    _models.append(model)
    return model


def connect(url_or_path: str | Path) -> peewee.Database:
    """Open the database, bind the proxy and create missing tables (safe to call from several processes)."""
    text = str(url_or_path)
    if text.startswith(("postgres://", "postgresql://")):
        db: peewee.Database = connect_url(text)
    else:
        db = peewee.SqliteDatabase(
            text,
            pragmas={"journal_mode": "wal", "synchronous": "normal", "foreign_keys": 1,
                     "busy_timeout": int(BUSY_TIMEOUT_S * 1000)},
            check_same_thread=False,
        )
    database.initialize(db)
    db.connect(reuse_if_open=True)
    _import_models()
    db.create_tables(_models, safe=True)
    return db


def _import_models() -> None:
    """Import every model module so `register` has run for all of them before tables are created."""
    import importlib
    import pkgutil

    import bastion.store as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name != "db":
            importlib.import_module(f"bastion.store.{info.name}")
