"""The read and write allowlists (policies/commands.yaml) as validated, pre-indexed objects.

Option names ending in ``=`` take a value (``-k=`` accepts ``-k2`` and ``-k 2``; ``--key=`` accepts
``--key=2`` and ``--key 2``); names ending in ``?`` take an optional value that must be attached.
Everything is indexed once at load so that classifying a command does no per-call set building.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bastion.errors import ConfigError
from bastion.yamlfile import read_mapping, validate

Kind = Literal["flag", "value", "optional"]
HANDLERS = ("find", "sed", "awk", "tar", "tree", "shell", "wrapper", "xargs", "git", "fd", "test", "kv")
_OPTION_RE = re.compile(r"^(-[^-\s=?]|--?[A-Za-z0-9][A-Za-z0-9_.-]*)[=?]?$")
# Locales whose character sets cannot change how bash splits the rest of a script into tokens: in a
# multibyte set such as BIG5 or GBK a backslash or quote byte can be part of a character.
_SAFE_LOCALE = re.compile(r"C|POSIX|[A-Za-z][A-Za-z0-9_]*\.(?:UTF-8|utf8)(?:@[A-Za-z0-9_]+)?")


LOCALE_RULE = "may change how bash tokenises the script (LANG, LANGUAGE and LC_* may only be C, POSIX or UTF-8)"


def is_locale_variable(name: str) -> bool:
    return name in ("LANG", "LANGUAGE") or name.startswith("LC_")


def safe_locale(value: str) -> bool:
    """May LANG, LANGUAGE or LC_* hold ``value``? Only C, POSIX and UTF-8 locales (``en_US.UTF-8@euro``)."""
    return _SAFE_LOCALE.fullmatch(value) is not None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProgramRule(_Strict):
    """How one read program (or one of its subcommands) may be called and still only read."""

    name: str = ""
    style: Literal["gnu", "plain", "short"] = "gnu"
    any_flags: bool = False
    flags: list[str] = Field(default_factory=list)
    write: dict[str, str] = Field(default_factory=dict)
    numeric: bool = False
    operands: Literal["any", "none", "static"] = "any"
    max_operands: int | None = None
    operand_pattern: str | None = None
    operand_reason: str = "this operand changes state"
    requires: list[str] = Field(default_factory=list)
    requires_reason: str = ""
    operands_require: list[str] = Field(default_factory=list)
    handler: str | None = None
    shell: Literal["bash", "posix", "zsh"] | None = None
    skip_operands: int = 0
    kv_allow: list[str] = Field(default_factory=list)
    subcommands: dict[str, ProgramRule] = Field(default_factory=dict)
    options_anywhere: bool = False
    options_first: bool = False
    write_subcommands: dict[str, str] = Field(default_factory=dict)
    bare: bool = True

    # Derived indexes, filled by _index(); excluded from validation input.
    options: dict[str, Kind] = Field(default_factory=dict, exclude=True)
    longs: tuple[str, ...] = Field(default=(), exclude=True)
    write_longs: tuple[str, ...] = Field(default=(), exclude=True)

    @property
    def guarded(self) -> bool:
        """Some option, missing option or subcommand makes a call write: run-time words must not become one."""
        return bool(self.write or self.requires or self.write_subcommands)

    @field_validator("flags")
    @classmethod
    def _option_names(cls, names: list[str]) -> list[str]:
        for name in names:
            if not _OPTION_RE.match(name):
                raise ValueError(f"not an option name: {name!r}")
        return names

    @field_validator("handler")
    @classmethod
    def _known_handler(cls, handler: str | None) -> str | None:
        if handler is not None and handler not in HANDLERS:
            raise ValueError(f"unknown handler {handler!r} (known: {', '.join(HANDLERS)})")
        return handler

    def _index(self, name: str, outer: ProgramRule | None = None) -> ProgramRule:
        """Index options; ``outer`` is the enclosing rule when its options may follow the subcommand."""
        options: dict[str, Kind] = dict(outer.options) if outer is not None else {}
        write = dict(outer.write) if outer is not None else {}
        for spec in [*self.flags, *self.write]:
            options[spec.rstrip("=?")] = _kind(spec)
        write.update({spec.rstrip("=?"): reason for spec, reason in self.write.items()})
        indexed = self.model_copy(
            update={
                "name": name,
                "options": options,
                "write": write,
                "longs": tuple(sorted(o for o in options if o.startswith("--"))),
                "write_longs": tuple(sorted(o for o in write if o.startswith("--"))),
                "options_anywhere": self.options_anywhere or (outer is not None and outer.options_anywhere),
            }
        )
        inherit = indexed if indexed.options_anywhere else None
        subs = {key: sub._index(f"{name} {key}", inherit) for key, sub in self.subcommands.items()}
        return indexed.model_copy(update={"subcommands": subs})


def _kind(spec: str) -> Kind:
    if spec.endswith("="):
        return "value"
    if spec.endswith("?"):
        return "optional"
    return "flag"


class CommandRules(_Strict):
    """The whole commands.yaml: read programs, write programs, and the environment that may be set."""

    version: Literal[1] = 1
    source: str = "policies/commands.yaml"
    path_dirs: list[str] = Field(default_factory=lambda: ["/bin", "/usr/bin", "/sbin", "/usr/sbin"])
    assignments: list[str] = Field(default_factory=list)
    read: dict[str, ProgramRule] = Field(default_factory=dict)
    write: dict[str, str] = Field(default_factory=dict)

    def indexed(self) -> CommandRules:
        overlap = sorted(set(self.read) & set(self.write))
        if overlap:
            raise ValueError(f"programs on both the read and the write list: {', '.join(overlap)}")
        return self.model_copy(update={"read": {k: v._index(k) for k, v in self.read.items()}})

    def assignment_allowed(self, name: str) -> bool:
        return any(
            name == allowed or (allowed.endswith("*") and name.startswith(allowed[:-1])) for allowed in self.assignments
        )


def load_rules(path: Path) -> CommandRules:
    """Read and validate commands.yaml; raise ConfigError naming the bad key."""
    path = Path(path)
    try:
        stat = path.stat()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    return _load_cached(str(path.resolve()), stat.st_mtime_ns, stat.st_size, f"{path.parent.name}/{path.name}")


@lru_cache(maxsize=8)
def _load_cached(path: str, _mtime: int, _size: int, label: str) -> CommandRules:
    data = read_mapping(Path(path), label)
    try:
        return validate(CommandRules, {**data, "source": label}, label).indexed()
    except ValueError as exc:
        raise ConfigError(f"{label}: {exc}") from None
