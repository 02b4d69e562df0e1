"""The `identity:` section of bastion.yaml.

Validated once, at load: a typo, an unsafe algorithm list or a key file that does not parse is a `ConfigError`
before the gateway accepts a single connection, so the verification code can trust these objects.
"""

from __future__ import annotations

import os
from pathlib import Path

import jwt
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bastion.errors import ConfigError
from bastion.identity.keys import check_keys

# Symmetric algorithms: only usable with an explicitly configured shared secret, never with a public key.
HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
# What pyjwt can verify, minus "none" (never) — checked here so an unknown name fails at load, not at login.
KNOWN_ALGORITHMS = frozenset(jwt.algorithms.get_default_algorithms()) - {"none"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IssuerSettings(_Strict):
    """One token issuer (`iss`) and the keys its tokens must be signed with."""

    issuer: str = Field(min_length=1)
    audience: str = Field(default="bastion", min_length=1)
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256", "EdDSA"], min_length=1)
    public_keys: list[Path] = Field(default_factory=list)
    jwks_file: Path | None = None
    shared_secret_env: str | None = None

    @field_validator("algorithms")
    @classmethod
    def _known_algorithms(cls, algorithms: list[str]) -> list[str]:
        for name in algorithms:
            if name.lower() == "none":
                raise ValueError("the 'none' algorithm is never accepted")
            if name not in KNOWN_ALGORITHMS:
                raise ValueError(f"unknown algorithm {name!r}")
        return algorithms

    @model_validator(mode="after")
    def _keys_fit_algorithms(self) -> IssuerSettings:
        hmac = HMAC_ALGORITHMS.intersection(self.algorithms)
        if hmac and not self.shared_secret_env:
            names = ", ".join(sorted(hmac))
            raise ValueError(f"{names} needs shared_secret_env (an HMAC key is never a public key)")
        if set(self.algorithms) - HMAC_ALGORITHMS and not (self.public_keys or self.jwks_file):
            raise ValueError("asymmetric algorithms need public_keys or jwks_file")
        return self

    def resolve(self, base_dir: Path) -> IssuerSettings:
        """Return a copy whose key paths are absolute, relative ones taken from `base_dir`."""
        return self.model_copy(
            update={
                "public_keys": [_absolute(p, base_dir) for p in self.public_keys],
                "jwks_file": _absolute(self.jwks_file, base_dir) if self.jwks_file else None,
            }
        )

    def shared_secret(self) -> bytes:
        """The HMAC secret from the environment; read when needed so it never sits in a config object."""
        assert self.shared_secret_env is not None
        value = os.environ.get(self.shared_secret_env)
        if not value:
            raise ConfigError(f"issuer {self.issuer}: environment variable {self.shared_secret_env} is empty")
        return value.encode()


class IdentitySettings(_Strict):
    """Which CAs may certify agents, which issuers may vouch for them, how their roles become policy roles.

    Role mapping: when `role_map` is empty, the names in the roles claim are the policy roles as they are.
    When it is not empty, only mapped names count: an unmapped group is ignored, even if it happens to equal a
    policy role name, so adding one mapping never silently keeps the IdP's raw group names in force.
    """

    trusted_user_cas: list[Path] = Field(min_length=1)
    # A certificate must name at least one principal matching these patterns. Principals never route (the
    # login name is the target) and never identify (the token does): they only scope a CA shared with other
    # systems, e.g. ["bastion-agent"] keeps certificates made for plain server logins out.
    principals: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    token_extension: str = Field(default="token@bastion", min_length=1)
    require_key_binding: bool = False
    roles_claim: str = Field(default="roles", min_length=1)
    role_map: dict[str, list[str]] = Field(default_factory=dict)
    clock_skew_s: int = Field(default=60, ge=0, le=60)
    issuers: list[IssuerSettings] = Field(min_length=1)

    @field_validator("principals")
    @classmethod
    def _plain_patterns(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            if not pattern or any(c in pattern for c in ',"\n '):
                raise ValueError(f"principal pattern {pattern!r}: empty, or holds a comma, quote or space")
        return patterns

    @field_validator("issuers")
    @classmethod
    def _unique_issuers(cls, issuers: list[IssuerSettings]) -> list[IssuerSettings]:
        names = [i.issuer for i in issuers]
        if len(names) != len(set(names)):
            raise ValueError("each issuer may appear only once")
        return issuers

    def resolve(self, base_dir: Path) -> IdentitySettings:
        """A copy with absolute paths; every key is loaded once so a bad file fails now, not at login."""
        resolved = self.model_copy(
            update={
                "trusted_user_cas": [_absolute(p, base_dir) for p in self.trusted_user_cas],
                "issuers": [i.resolve(base_dir) for i in self.issuers],
            }
        )
        check_keys(resolved)
        return resolved

    def issuer(self, iss: str) -> IssuerSettings | None:
        """The configured issuer named `iss`, if any."""
        return next((i for i in self.issuers if i.issuer == iss), None)

    def map_roles(self, names: frozenset[str]) -> frozenset[str]:
        """Policy roles for the IdP's role or group names (see the class docstring)."""
        if not self.role_map:
            return names
        return frozenset(role for name in names for role in self.role_map.get(name, ()))


def _absolute(path: Path, base_dir: Path) -> Path:
    path = path.expanduser()
    return path if path.is_absolute() else (base_dir / path)
