"""bastion.yaml: one pydantic model, validated on every load; relative paths are relative to the file."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bastion.identity.settings import IdentitySettings
from bastion.yamlfile import read_mapping, validate

DEFAULT_CONFIG = "bastion.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


class ServerSettings(_Strict):
    listen: str = "127.0.0.1:2222"
    host_key: Path = Path("host_key")
    grace_period_s: float = Field(default=30.0, ge=0)
    login_timeout_s: float = Field(default=30.0, gt=0)
    keepalive_interval_s: float = Field(default=30.0, ge=0)
    recording_flush_s: float = Field(default=0.2, gt=0, le=5)
    # Serving processes (`bastion serve --workers`): one per core on a busy multi-core host.
    workers: int = Field(default=1, ge=1, le=256)

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        parse_listen(value)
        return value


class UpstreamSettings(_Strict):
    connect_timeout_s: float = Field(default=10.0, gt=0)
    keepalive_interval_s: float = Field(default=30.0, ge=0)
    # Sessions per pooled connection: keep it below the targets' sshd MaxSessions (10 by default).
    pool_max_channels: int = Field(default=8, ge=1)
    pool_idle_s: float = Field(default=60.0, ge=0)


class DemoIssuerSettings(_Strict):
    """The demo token issuer `bastion init` creates (for `bastion token issue`)."""

    issuer: str
    key: Path


class Config(_Strict):
    database: str = "bastion.db"
    recordings_dir: Path = Path("recordings")
    policies_dir: Path = Path("policies")
    secrets_key: Path = Path("secrets.key")
    audit_key: Path = Path("audit.key")
    server: ServerSettings = ServerSettings()
    upstream: UpstreamSettings = UpstreamSettings()
    identity: IdentitySettings
    demo_issuer: DemoIssuerSettings | None = None

    base_dir: Path = Field(default=Path("."), exclude=True)

    def path(self, value: Path) -> Path:
        return value if value.is_absolute() else self.base_dir / value

    @property
    def database_url(self) -> str:
        if "://" in self.database:
            return self.database
        return str(self.path(Path(self.database)))


def config_path(explicit: str | None) -> Path:
    return Path(explicit or os.environ.get("BASTION_CONFIG") or DEFAULT_CONFIG)


def load_config(path: Path) -> Config:
    raw = read_mapping(path, str(path), missing="no such file (run 'bastion init --dir DIR' or pass --config)")
    base = path.resolve().parent
    config = validate(Config, {**raw, "base_dir": base}, str(path))
    config.identity = config.identity.resolve(base)
    return config
