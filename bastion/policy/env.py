"""Which environment variables a policy may let an agent set on the target.

The command sent upstream runs under ``env -i`` with a fixed environment, so that what was classified is what
runs. A variable that changes how bash, the dynamic loader or git behave would undo that (``BASH_ENV`` runs a
file before the command, ``BASH_FUNC_ls%%`` redefines ``ls``, ``LD_PRELOAD`` injects code, ``GIT_DIR`` and
``HOME`` pick other configuration), so no policy can grant them. Patterns are a name or a prefix ending in
``*`` (``APP_*``); a pattern that could match a protected name is a configuration error, which is why the
prefix form is the only wildcard: its overlap with the protected list can be decided exactly.
The list also holds variables that make common read-only programs load code or run other programs: glibc's
``GCONV_PATH``, ``LOCPATH`` and ``GLIBC_TUNABLES``, language runtimes' start-up options (``PYTHON*``, ``PERL*``,
``NODE_*``...), editors and pagers a program may start (``EDITOR``, ``MANPAGER``, ``SHELL``), OpenSSL engines, and
configuration files that can run programs or write files (``KUBECONFIG`` exec plugins, ``AWS_CONFIG_FILE``
credential processes, ``CURL_HOME``, ``WGETRC``, ``SSH_*``).
Any other variable a policy grants is trusted by the administrator not to change what read-only programs do.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

BASE_ENV = ("TERM", "LANG", "LC_*")
PROTECTED = (
    "PATH", "IFS", "ENV", "BASH_ENV", "BASHOPTS", "SHELLOPTS", "PS4", "PROMPT_COMMAND", "CDPATH", "GLOBIGNORE",
    "HOME", "XDG_*", "BASH_FUNC_*", "LD_*", "GIT_*", "PAGER", "SYSTEMD_*", "LESS*", "BASTION_*",
    "GCONV_PATH", "LOCPATH", "NLSPATH", "GLIBC_TUNABLES", "MALLOC_*", "TERMINFO*", "TERMCAP", "TZDIR",
    "PYTHON*", "PERL*", "RUBY*", "NODE_*", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS",
    "EDITOR", "VISUAL", "MANPAGER", "MANOPT", "MANPATH", "BROWSER", "SHELL", "OPENSSL_*",
    "KUBECONFIG", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "DOCKER_CONFIG", "GNUPGHOME",
    "CURL_HOME", "CURL_CA_BUNDLE", "WGETRC", "SSH_*", "TMPDIR",
)
_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\*?")


def _overlaps(a: str, b: str) -> bool:
    """Whether two name-or-prefix patterns can match the same variable name."""
    a_prefix, b_prefix = a.endswith("*"), b.endswith("*")
    a_text, b_text = a.rstrip("*"), b.rstrip("*")
    if a_prefix and b_prefix:
        return a_text.startswith(b_text) or b_text.startswith(a_text)
    if a_prefix:
        return b_text.startswith(a_text)
    if b_prefix:
        return a_text.startswith(b_text)
    return a_text == b_text


def check_pattern(pattern: str) -> str:
    """Validates one policy env pattern; ValueError says which protected name it would expose."""
    if not _PATTERN.fullmatch(pattern):
        raise ValueError(f"{pattern!r} is not a variable name or a NAME_* prefix")
    for protected in PROTECTED:
        if _overlaps(pattern, protected):
            raise ValueError(f"{pattern!r} would let the agent set {protected}, which no policy may grant")
    return pattern


def matches(name: str, patterns: Iterable[str]) -> bool:
    """Whether `name` is a valid variable name matched by one of the patterns (protected names never are)."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) or any(_overlaps(name, p) for p in PROTECTED):
        return False
    return any(_overlaps(name, p) for p in patterns)
