#!/usr/bin/env bash
# Installs bastion (and asciinema, for replays) into .venv and runs the one-command demo: bastion demo [--script] …
# Needs python3 and the OpenSSH client (ssh).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -e . 'asciinema==2.4.0'
if ! command -v ssh >/dev/null; then
  echo "demo.sh: the demo uses the OpenSSH client; install it (e.g. apt-get install openssh-client)" >&2
  exit 1
fi
exec .venv/bin/bastion demo "$@"
