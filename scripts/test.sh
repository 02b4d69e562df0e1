#!/usr/bin/env bash
# Sets up everything the tests need on a fresh machine, then runs them.
# Installs: a .venv with bastion[test]; OpenSSH server and client with apt when sshd is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/sbin/sshd ] || ! command -v ssh >/dev/null || ! command -v ssh-keygen >/dev/null; then
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq openssh-server openssh-client >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'

.venv/bin/ruff check bastion tests scripts
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
