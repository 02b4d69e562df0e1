"""Classify a bash command line as READ, WRITE or UNKNOWN, failing closed.

How it decides
--------------
The text is parsed with tree-sitter-bash and the whole tree is walked (``walker``); every word is
decoded the way bash will (quotes, backslashes, ``$'…'``, concatenation) before it is matched
(``words``). Every simple command must be a program on the read list, called with options and
operands its rule allows (``programs``, ``options``; find, fd, tar, sed and awk have their own
checks in ``special`` and ``scripts``). Redirections to files, and unknown syntax, decide too.

Words known only at run time
----------------------------
``$x``, ``$(…)``, globs and brace expansions are *dynamic*. In the command-name position they are
UNKNOWN. In an argument position they matter when they can become an option: an unquoted
expansion can become any number of words (``find . $X`` with ``X=-delete``), and a glob such as
``*`` can match a file named ``-delete``. A dynamic word is therefore accepted only where no
option of the program can write (rules marked ``any_flags`` that list no ``write`` option, no
``requires`` and no write subcommand), after ``--``, as the value of an option (and then only if it
cannot split), or when its known prefix (``/var/log/*``, ``./$f``) proves it cannot start with
``-``. Words ``xargs`` appends from its input are dynamic words too. ``find`` and ``test`` accept no
such word in their expressions. Arithmetic on variables (``$((x))``, ``[[ $x -eq 0 ]]``, the offset
and length of ``${x:1:n}``) is UNKNOWN because bash evaluates array subscripts in the variable's
value, which can run commands.

git and repository configuration
--------------------------------
A repository's own config can make read subcommands run programs (core.fsmonitor, core.pager,
hooks, the gpg programs, the manual viewer). ``upstream_command`` therefore runs every command with git
configuration injected through the environment (``GIT_CONFIG_COUNT``/``GIT_CONFIG_PARAMETERS``, which override
repository config and reach nested shells too) that neutralises them, plus ``GIT_PAGER=cat`` and
``GIT_OPTIONAL_LOCKS=0``. A command cannot undo this: assignments to ``GIT_*``, ``git -c``, and ``env -i``,
``env -u`` (which would drop the injected variables) are refused. Per-path drivers chosen by ``.gitattributes``
(textconv, external diff, filters) cannot be neutralised by name, so subcommands and options that run them
(``status``, ``diff``, ``show``, ``blame``, ``log -p``, ``ls-files -m``/``-d``) are not on the read list and
classify UNKNOWN or WRITE.

Locale
------
bash reads a script in the character set of its locale, and ``bash -c`` applies an assignment such as
``LC_ALL=zh_TW.BIG5`` before it parses the next command: in BIG5 or GBK a backslash or quote byte can
be the second half of a character, so the rest of the script would be tokenised differently from
what was classified. LANG, LANGUAGE and LC_* may therefore only be set (in the command, through
``env``, or by the gateway) to C, POSIX or a UTF-8 locale; ``safe_locale`` is that rule.

The classifier never raises: an internal error is an UNKNOWN verdict with the reason.
"""

from __future__ import annotations

from bastion.classify.rules import CommandRules, ProgramRule, load_rules, safe_locale
from bastion.classify.upstream import upstream_command
from bastion.classify.verdict import Findings, Verdict
from bastion.classify.walker import Context, run_script

__all__ = ["CommandRules", "ProgramRule", "Verdict", "classify", "load_rules", "safe_locale", "upstream_command"]


def classify(text: str, rules: CommandRules) -> Verdict:
    """Classify one command line; never raises."""
    command = text if isinstance(text, str) else repr(text)
    try:
        if not isinstance(text, str):
            return Verdict(command, "UNKNOWN", ["UNKNOWN: the command is not text"])
        if not text.strip():
            return Verdict(command, "UNKNOWN", ["UNKNOWN: the command is empty (it would start a shell)"])
        findings = Findings()
        run_script(Context(rules, findings), text, "bash")
        return findings.verdict(command)
    except Exception as exc:  # the classifier must fail closed, whatever went wrong inside it
        return Verdict(command, "UNKNOWN", [f"UNKNOWN: internal error while classifying ({type(exc).__name__})"])
