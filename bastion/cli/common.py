"""Helpers every verb group uses: loading the config and opening the database once."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from bastion.config import Config, config_path, load_config
from bastion.store import db
from bastion.textfmt import aligned


def open_config(args: argparse.Namespace) -> Config:
    config = load_config(config_path(args.config))
    db.connect(config.database_url)
    return config


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Plain aligned columns (for terminals and scripts alike)."""
    sys.stdout.write(aligned(headers, [["" if c is None else str(c) for c in row] for row in rows]))
