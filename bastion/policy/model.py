"""policies/policy.yaml as validated pydantic models, and its loading.

Validation is strict (unknown keys are errors) because a misspelt key in a security policy must not silently
fall back to a default.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bastion.policy import env
from bastion.policy.request import Action
from bastion.yamlfile import read_mapping, validate

POLICY_FILE = "policy.yaml"
ROLE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}$"
AdminPermission = Literal[
    "approvals.view", "approvals.decide", "sessions.view", "sessions.kill", "recordings.view", "audit.view"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Timing(_Strict):
    """Approval parameters; on a rule, an absent value falls back to `defaults`."""

    approvals_required: int | None = Field(default=None, ge=1, description="distinct approvers a request needs")
    wait_timeout_s: float | None = Field(default=None, gt=0, description="how long a held command waits")
    approval_lifetime_s: float | None = Field(
        default=None, gt=0, description="how long an approval stays usable after it is granted")


class Defaults(_Strict):
    approvals_required: int = Field(default=1, ge=1)
    wait_timeout_s: float = Field(default=300.0, gt=0)
    approval_lifetime_s: float = Field(default=900.0, gt=0)


class TargetMatch(_Strict):
    """Targets by name (fnmatch globs, case-sensitive) and/or labels (all must be equal); both given → both."""

    names: list[str] | None = Field(default=None, min_length=1, description="target names or globs, e.g. staging-*")
    labels: dict[str, str] = Field(default_factory=dict, description="labels the target must carry, e.g. env: prod")

    @field_validator("names")
    @classmethod
    def _globs(cls, names: list[str] | None) -> list[str] | None:
        if names is not None and any(not n or n != n.strip() for n in names):
            raise ValueError("a target name or glob is empty or has surrounding spaces")
        return names

    @model_validator(mode="after")
    def _selects(self) -> TargetMatch:
        if self.names is None and not self.labels:
            raise ValueError("give names (use ['*'] for every target) or labels")
        return self

    def matches(self, target: str, labels: Mapping[str, str]) -> bool:
        if self.names is not None and not any(fnmatch.fnmatchcase(target, glob) for glob in self.names):
            return False
        return all(labels.get(key) == value for key, value in self.labels.items())

    def text(self) -> str:
        parts = [",".join(self.names)] if self.names is not None else []
        parts += [f"{key}={value}" for key, value in sorted(self.labels.items())]
        return " ".join(parts)


class TargetRule(Timing):
    """What a role may do on the targets it matches; a kind not named is denied."""

    name: str | None = Field(default=None, pattern=ROLE_NAME, description="shown in reasons as role/name")
    match: TargetMatch
    read: Action = "deny"
    write: Action = "deny"
    shell: Action = "deny"
    sftp: Action = "deny"
    scp: Action = "deny"
    port_forwarding: Action = "deny"
    x11: Action = "deny"
    agent_forwarding: Action = "deny"
    env: list[str] = Field(
        default_factory=list,
        description="variables (NAME or NAME_* prefix) the agent may set beyond TERM, LANG, LC_*; never approve")

    @field_validator("env")
    @classmethod
    def _env(cls, patterns: list[str]) -> list[str]:
        return [env.check_pattern(p) for p in patterns]


class Role(_Strict):
    description: str = ""
    targets: list[TargetRule] = Field(default_factory=list, description="first matching rule wins")
    approve: list[TargetMatch] = Field(default_factory=list, description="targets this role may approve for")
    admin: list[AdminPermission] = Field(default_factory=list)

    @model_validator(mode="after")
    def _approver(self) -> Role:
        if self.approve and "approvals.decide" not in self.admin:
            raise ValueError("approve needs admin permission approvals.decide in the same role")
        return self


class PolicyFile(_Strict):
    """The file's shape; `Policy` adds the decisions."""

    version: Literal[1] = 1
    defaults: Defaults = Defaults()
    roles: dict[str, Role] = Field(default_factory=dict)

    @field_validator("roles")
    @classmethod
    def _role_names(cls, roles: dict[str, Role]) -> dict[str, Role]:
        for name in roles:
            if not re.match(ROLE_NAME, name):
                raise ValueError(f"role name {name!r} must be letters, digits, '.', '_', ':' or '-'")
        return roles


def read_policy_file(policies_dir: Path) -> PolicyFile:
    """Reads and validates policies_dir/policy.yaml; every problem is one ConfigError line naming the key."""
    path = Path(policies_dir) / POLICY_FILE
    label = f"{path.parent.name}/{path.name}"
    return validate(PolicyFile, read_mapping(path, label), label)
