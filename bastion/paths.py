"""Where the shipped policies are: beside the package in a source checkout, or under the install prefix."""

from __future__ import annotations

import sys
from pathlib import Path

from bastion.errors import ConfigError


def shipped_policies() -> Path:
    candidates = (
        Path(__file__).resolve().parent.parent / "policies",
        Path(sys.prefix) / "share" / "bastion" / "policies",
    )
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise ConfigError("shipped policies not found; reinstall bastion")
