#!/usr/bin/env bash
# Installs bastion into .venv and runs the one-command demo.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -e .
if ! .venv/bin/bastion demo --help >/dev/null 2>&1; then
  echo "The one-command demo is not there yet. README.md, 'Quick start by hand', shows the same steps." >&2
  exit 1
fi
exec .venv/bin/bastion demo "$@"
