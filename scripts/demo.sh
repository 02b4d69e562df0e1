#!/usr/bin/env bash
# Installs bastion into .venv and runs the one-command demo.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -e .
exec .venv/bin/bastion demo "$@"
