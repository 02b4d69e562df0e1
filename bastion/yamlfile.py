"""YAML files validated into pydantic models: bastion.yaml and the policy files.

Every problem becomes one ConfigError line that names the file and, for a validation error, the key
(`server.grace_period_s: …`, `roles.reader.targets[0].write: …`), never a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from bastion.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


def read_mapping(path: Path, label: str, *, missing: str = "no such file") -> dict[str, Any]:
    """The file's top-level mapping (an empty file is an empty mapping)."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{label}: {missing}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{label}: cannot read: {err.__class__.__name__}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise ConfigError(f"{label}: invalid YAML" + (f" at line {mark.line + 1}" if mark else "")) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{label}: expected a mapping at the top level")
    return data


def validate(model: type[M], data: dict[str, Any], label: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(f"{label}: {first_problem(err)}") from None


def first_problem(err: ValidationError) -> str:
    problem = err.errors(include_input=False, include_url=False)[0]
    msg = problem["msg"].removeprefix("Value error, ")
    loc = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in problem["loc"]).lstrip(".")
    return f"{loc}: {msg}" if loc else msg
