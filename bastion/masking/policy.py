"""The masking policy (policies/masking.yaml) and the effective rules for one session.

Masking is on unless a policy entry explicitly turns it off for the session's roles or target: a missing
file means every built-in detector applies, so forgetting the policy can only hide more, never less.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from bastion.masking.detectors import BUILTIN, BUILTIN_NAMES, Detector, custom_detector
from bastion.yamlfile import read_mapping, validate

_NAME = r"^[a-z0-9][a-z0-9-]{0,62}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CustomRule(_Strict):
    """A site-specific secret format; a group named `value` keeps the rest of the match visible."""

    name: str = Field(pattern=_NAME)
    pattern: str = Field(min_length=1)
    ignore_case: bool = False
    enabled: bool = True

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        try:
            compiled = re.compile(pattern.encode("utf-8"))
        except re.error as err:
            raise ValueError(f"does not compile: {err}") from None
        if compiled.match(b""):
            raise ValueError("matches the empty string")
        return pattern


class Override(_Strict):
    """Changes masking for sessions matching every selector given; an absent selector matches anything."""

    roles: list[str] | None = None
    targets: list[str] | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    enabled: bool | None = None
    disable: list[str] = Field(default_factory=list)
    enable: list[str] = Field(default_factory=list)

    def matches(self, roles: frozenset[str], target: str, labels: dict[str, str]) -> bool:
        if self.roles is not None and not roles.intersection(self.roles):
            return False
        if self.targets is not None and not any(fnmatch.fnmatchcase(target, g) for g in self.targets):
            return False
        return all(labels.get(k) == v for k, v in self.labels.items())

    def summary(self, index: int) -> str:
        where = [f"{key}={','.join(vals)}" for key, vals in (("roles", self.roles), ("targets", self.targets)) if vals]
        where += [f"label {k}={v}" for k, v in sorted(self.labels.items())]
        what = [] if self.enabled is None else ["masking " + ("on" if self.enabled else "off")]
        what += [f"disable {n}" for n in self.disable] + [f"enable {n}" for n in self.enable]
        return f"overrides[{index}] ({'; '.join(where) or 'every session'}): {', '.join(what) or 'no change'}"


@dataclass(frozen=True)
class MaskingRules:
    """The detectors that apply to one session, in priority order, and why."""

    detectors: tuple[Detector, ...]
    applied: tuple[str, ...] = ()

    @property
    def enabled(self) -> bool:
        return bool(self.detectors)

    def describe(self) -> list[str]:
        """Lines for `bastion policy explain`: what is masked and which overrides made it so."""
        if not self.detectors:
            lines = ["masking: off"]
        else:
            builtin = list(dict.fromkeys(d.name for d in self.detectors if not d.custom))
            custom = [d.name for d in self.detectors if d.custom]
            lines = ["masking: on", "detectors: " + (", ".join(builtin) or "none")]
            if custom:
                lines.append("custom: " + ", ".join(custom))
        return lines + [f"applied {a}" for a in self.applied]


class MaskingPolicy(_Strict):
    """policies/masking.yaml: default detectors, custom regexes, per role/target/label overrides."""

    version: Literal[1] = 1
    detectors: list[str] = Field(default_factory=lambda: list(BUILTIN_NAMES))
    custom: list[CustomRule] = Field(default_factory=list)
    overrides: list[Override] = Field(default_factory=list)
    _custom: dict[str, Detector] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _names_known(self) -> MaskingPolicy:
        known = set(BUILTIN_NAMES)
        for i, rule in enumerate(self.custom):
            if rule.name in BUILTIN_NAMES:
                raise ValueError(f"custom[{i}].name: {rule.name!r} is a built-in detector: list it under detectors "
                                 "(if the file lists them) and remove or rename this rule")
            if rule.name in known:
                raise ValueError(f"custom[{i}].name: {rule.name!r} is already a detector")
            known.add(rule.name)
        lists = [("detectors", self.detectors, set(BUILTIN_NAMES))]
        for i, o in enumerate(self.overrides):
            lists += [(f"overrides[{i}].disable", o.disable, known), (f"overrides[{i}].enable", o.enable, known)]
        for key, names, allowed in lists:
            unknown = [n for n in names if n not in allowed]
            if unknown:
                raise ValueError(f"{key}: unknown detector {unknown[0]!r}")
        self._custom = {r.name: custom_detector(r.name, r.pattern, r.ignore_case) for r in self.custom}
        return self

    def for_session(self, roles: Iterable[str], target: str, labels: dict[str, str]) -> MaskingRules:
        """The effective rules: defaults, then every matching override in file order."""
        role_set = frozenset(roles)
        names = set(self.detectors) | {r.name for r in self.custom if r.enabled}
        on = True
        applied: list[str] = []
        for i, override in enumerate(self.overrides):
            if not override.matches(role_set, target, labels):
                continue
            if override.enabled is not None:
                on = override.enabled
            names = (names - set(override.disable)) | set(override.enable)
            applied.append(override.summary(i))
        if not on:
            return MaskingRules((), tuple(applied))
        ordered = [d for d in BUILTIN if d.name in names] + [d for n, d in self._custom.items() if n in names]
        return MaskingRules(tuple(ordered), tuple(applied))


def load_masking(path: str | Path) -> MaskingPolicy:
    """Reads and validates the masking policy; every problem is one ConfigError line naming the key."""
    path = Path(path)
    if not path.exists():
        return MaskingPolicy()
    return validate(MaskingPolicy, read_mapping(path, str(path)), str(path))
