"""The exact command line the gateway sends upstream, so the target runs what was classified.

sshd hands the command to the target user's login shell with ``-c``; everything here is quoted for
a POSIX login shell so that it yields exactly ``env -i … bash --noprofile --norc -c TEXT``: no
profile or rc file, a cleared environment with a fixed PATH, and git and pagers neutralised.
Targets without bash get a plain argv (only for commands that are nothing more than that).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping

from bastion.classify.parse import Unparsable, parse
from bastion.classify.rules import CommandRules, is_locale_variable, safe_locale
from bastion.classify.verdict import Findings
from bastion.classify.walker import Context, Walker
from bastion.errors import Refused

SAFE_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
# Highest-precedence git config: overrides the repository's own settings that run programs.
GIT_NEUTRAL = (
    ("core.fsmonitor", "false"),
    ("core.hooksPath", "/dev/null"),
    ("core.pager", "cat"),
    ("core.sshCommand", "false"),
    # signature checks (log --format=%G?, %(signature), …) pick the program by signature format
    ("gpg.program", "false"),
    ("gpg.openpgp.program", "false"),
    ("gpg.x509.program", "false"),
    ("gpg.ssh.program", "false"),
    ("log.showSignature", "false"),
    ("protocol.allow", "never"),
)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def fixed_environment() -> dict[str, str]:
    """The variables every command runs with; they override whatever the caller passes.

    No locale is set here: bash then reads the script in the C locale, or in the locale the caller
    passes, which must satisfy ``safe_locale`` (``upstream_command`` drops any other value, and the
    gateway filters an agent's environment with the same rule).
    """
    env = {
        "PATH": SAFE_PATH,
        "GIT_PAGER": "cat",
        "PAGER": "cat",
        "SYSTEMD_PAGER": "cat",
        "LESSSECURE": "1",
        "GIT_OPTIONAL_LOCKS": "0",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_COUNT": str(len(GIT_NEUTRAL)),
        # git's own format for -c propagation, read by git versions older than GIT_CONFIG_COUNT (2.31)
        "GIT_CONFIG_PARAMETERS": " ".join(f"'{k}={v}'" for k, v in GIT_NEUTRAL),
    }
    for i, (key, value) in enumerate(GIT_NEUTRAL):
        env[f"GIT_CONFIG_KEY_{i}"] = key
        env[f"GIT_CONFIG_VALUE_{i}"] = value
    return env


def upstream_command(text: str, *, shell: str = "bash", env: Mapping[str, str] | None = None) -> str:
    """The command line for the target's login shell; ``env`` adds allowed variables (TERM, LANG, LC_*).

    LANG, LANGUAGE and LC_* values that ``safe_locale`` refuses are dropped: bash would read the script
    in that character set, where a backslash or quote byte can belong to a multibyte character, and so
    tokenise it differently from the classifier.
    """
    if shell not in ("bash", "sh"):
        raise ValueError(f"unknown target shell {shell!r} (bash or sh)")
    if "\0" in text:
        raise Refused("the command contains a NUL byte")
    variables = {
        k: v
        for k, v in (env or {}).items()
        if _NAME.fullmatch(k) and "\0" not in v and (not is_locale_variable(k) or safe_locale(v))
    }
    variables.update(fixed_environment())
    prefix = ["exec", "/usr/bin/env", "-i", *(f"{k}={v}" for k, v in variables.items())]
    if shell == "bash":
        argv = ["bash", "--noprofile", "--norc", "-c", text]
    else:
        simple = simple_argv(text)
        if simple is None:
            raise Refused("this target has no bash: only plain commands without shell syntax can run")
        argv = simple
    return " ".join(shlex.quote(part) if i else part for i, part in enumerate([*prefix, *argv]))


def simple_argv(text: str, rules: CommandRules | None = None) -> list[str] | None:
    """The argv of a command that is one simple command of static words, else None."""
    try:
        root = parse(text).root_node
    except Unparsable:
        return None
    named = [c for c in root.children if c.is_named]
    if len(named) != 1 or named[0].type != "command" or any(not c.is_named for c in root.children):
        return None
    command = named[0]
    walker = Walker(Context(rules or CommandRules(), Findings()), text.encode("utf-8"))
    argv: list[str] = []
    for child in command.children:
        if child.type == "command_name":
            child = child.children[0]
        elif child.type in ("variable_assignment", "file_redirect", "heredoc_redirect", "herestring_redirect"):
            return None
        words = walker.fields(child)
        if walker.f.unknown or len(words) != 1 or words[0].text is None:
            return None
        argv.append(words[0].text)
    return argv or None
