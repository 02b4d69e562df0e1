"""Programs whose arguments form a language of their own: find, fd, tar, tree (here) and sed, awk (scripts.py).

find and fd run commands (-exec, --exec); those commands are judged like any other, except that a
shell is refused there, directly or behind a wrapper (env, nice, timeout, watch, …): the file name
substituted for ``{}`` could land inside its script. Both substitute ``{}`` anywhere inside a word, so
every word containing it is only known at run time (``sed -n 't{}'`` runs a script the name completes).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from bastion.classify.options import cite, parse_options
from bastion.classify.rules import ProgramRule
from bastion.classify.scripts import awk, sed
from bastion.classify.words import Word

if TYPE_CHECKING:
    from bastion.classify.walker import Walker

__all__ = ["awk", "fd", "find", "sed", "tar", "tree"]

_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "csh", "tcsh", "fish", "busybox"})
_FIND_EXEC = frozenset({"-exec", "-execdir", "-ok", "-okdir"})
_FD_EXEC = ("--exec", "--exec-batch")
_FIND_OPERATORS = frozenset({"!", "(", ")", ",", "-a", "-o", "-not", "-and", "-or"})
_FIND_PLACEHOLDER = re.compile(r"\{\}")
# fd's {}, {/}, {//}, {.} and {/.}, and anything else of that shape in case a version adds one
_FD_PLACEHOLDER = re.compile(r"\{[/.]*\}")


def _substituted(word: Word, pattern: re.Pattern[str], placeholder: Word) -> Word:
    """``word`` with the file name put in for a placeholder anywhere inside it."""
    if word.text is None:
        return word
    m = pattern.search(word.text)
    if m is None:
        return word
    if m.start() == 0:
        return Word(None, placeholder.prefix, placeholder.splits, placeholder.may_flag)
    prefix = word.text[: m.start()]
    return Word(None, prefix, placeholder.splits, prefix.startswith("-"))


def _exec(
    w: Walker, rule: ProgramRule, command: list[Word], placeholder: Word, pattern: re.Pattern[str], *, implied: bool
) -> None:
    """Check the command find or fd runs; ``implied``: the file names go at the end when no word has a placeholder."""
    from bastion.classify.programs import check_substituted_argv, program_name

    if not command:
        w.unknown(f"'{rule.name}' runs an empty command")
        return
    argv = [_substituted(word, pattern, placeholder) for word in command]
    if implied and all(new is old for new, old in zip(argv, command, strict=True)):
        argv.append(placeholder)
    name = program_name(w, argv[0])
    if name is None:
        return
    if name in _SHELLS:
        w.unknown(f"'{rule.name}' runs the shell '{name}' on file names it substitutes")
        return
    check_substituted_argv(w, argv, rule.name)


def find(w: Walker, rule: ProgramRule, args: list[Word]) -> None:
    """find [-H -L -P -Olevel -D opts] [paths…] [expression]; every primary is checked against the rule."""
    i = 0
    while (i < len(args) and args[i].text in ("-H", "-L", "-P")) or (
        i < len(args) and (args[i].text or "").startswith(("-O", "-D"))
    ):
        i += 2 if args[i].text == "-D" else 1
    paths_safe = True
    while i < len(args):
        word = args[i]
        if word.text is None:
            if word.may_flag:
                w.unknown("a path given to 'find' known only at run time may become an expression")
                return
            paths_safe = paths_safe and not word.splits
        elif word.text.startswith("-") or word.text in _FIND_OPERATORS:
            break
        i += 1
    placeholder = Word(None, "./" if paths_safe else "", False, not paths_safe)
    while i < len(args):
        i = _find_primary(w, rule, args, i, placeholder)


def _find_primary(w: Walker, rule: ProgramRule, args: list[Word], i: int, placeholder: Word) -> int:
    word = args[i]
    text = word.text
    if text is None:
        w.unknown("a 'find' expression word known only at run time may become a primary")
        return len(args)
    if text in _FIND_OPERATORS:
        return i + 1
    reason = rule.write.get(text)
    if reason is not None:
        w.f.add_write(f"'find {text}' {reason} {cite(w, rule)}")
    if text in _FIND_EXEC:
        end = _find_exec_end(w, args, i)
        if end is None:
            return len(args)
        if reason is None:
            if end < len(args) and args[end].text == "+":
                placeholder = Word(None, placeholder.prefix, True, placeholder.may_flag)
            _exec(w, rule, args[i + 1 : end], placeholder, _FIND_PLACEHOLDER, implied=False)
        return end + 1
    kind = rule.options.get(text)
    if kind is None:
        w.unknown(f"'find {text}' is not an allowed primary")
        return len(args)
    if kind == "value":
        if i + 1 < len(args) and args[i + 1].splits:
            w.unknown(f"the argument of 'find {text}' may split into several words at run time")
        return i + 2
    return i + 1


def _find_exec_end(w: Walker, args: list[Word], i: int) -> int | None:
    """Where the command of ``args[i]`` (-exec, -execdir, -ok, -okdir) ends; None if that is unclear.

    ';' always ends it. '+' ends -exec and -execdir only right after a word that is exactly '{}'
    (POSIX); elsewhere it is an argument of the command. Older GNU find also ended at '+' after a word
    merely containing '{}', and other finds may end -ok at '{} +': those cases are refused, as are a word
    known only at run time that may become ';' or '+', and one before '+' (it may become '{}').
    """
    action = args[i].text
    for end in range(i + 1, len(args)):
        word = args[end]
        if word.text is None:
            if _may_end(word):
                w.unknown(f"a word of the command 'find {action}' runs, known only at run time, may end it")
                return None
            continue
        if word.text == ";":
            return end
        if word.text != "+" or end == i + 1:
            continue
        if args[end - 1].text is None:
            w.unknown(f"the word before '+' in 'find {action}', known only at run time, may be '{{}}' and end it")
            return None
        if "{}" not in args[end - 1].text:
            continue
        if args[end - 1].text != "{}" or action in ("-ok", "-okdir"):
            w.unknown(f"find versions disagree on whether this '+' ends the command of 'find {action}'")
            return None
        return end
    return len(args)


def _may_end(word: Word) -> bool:
    """May a word known only at run time become ';' or '+', which end the command of find and fd?"""
    return word.text is None and (word.splits or word.prefix in ("", ";", "+"))


def fd(w: Walker, rule: ProgramRule, args: list[Word]) -> None:
    """fd's -x/--exec and -X/--exec-batch take the rest of the line (or up to ';') as a command.

    The command may start inside the option's word (``--exec=rm``, ``-xrm``, ``-Hx rm``), and a long
    option is taken for --exec when it is a prefix of one, in case fd accepts abbreviations.
    """
    for i, word in enumerate(args):
        start = _fd_exec(rule, word.text)
        if start is None:
            continue
        end = next((j for j in range(i + 1, len(args)) if args[j].text == ";"), len(args))
        if any(_may_end(word) for word in args[i + 1 : end]):
            w.unknown("a word of the command 'fd' runs, known only at run time, may be the ';' that ends it")
            return
        parse_options(w, rule, args[:i])
        attached = [Word(start, start)] if start else []
        _exec(w, rule, [*attached, *args[i + 1 : end]], Word(None, "", True, True), _FD_PLACEHOLDER, implied=True)
        if end + 1 < len(args):
            fd(w, rule, args[end + 1 :])
        return
    parse_options(w, rule, args)


def _fd_exec(rule: ProgramRule, text: str | None) -> str | None:
    """None if ``text`` does not start fd's command, else the part of the command attached to it ('' if none)."""
    if text is None or not text.startswith("-") or text in ("-", "--"):
        return None
    if text.startswith("--"):
        name, _, attached = text.partition("=")
        return attached if any(o.startswith(name) for o in _FD_EXEC) else None
    for j, ch in enumerate(text[1:], start=2):
        if ch in "xX":
            return text[j:].removeprefix("=")
        if rule.options.get("-" + ch) == "value":
            return None
    return None


def tar(w: Walker, rule: ProgramRule, args: list[Word]) -> None:
    """Only listing an archive reads; a remote archive name (host:file) runs rsh/ssh."""
    if args and args[0].text is None:
        w.unknown("the first argument of 'tar' is only known at run time and may be a bundle of options")
        return
    if args and not (args[0].text or "").startswith("-"):
        args = _old_style(w, rule, args)
        if args is None:
            return
    parsed = parse_options(w, rule, args)
    if not any(flag in parsed.seen for flag in rule.requires):
        w.f.add_write(f"'tar' without -t {rule.requires_reason} {cite(w, rule)}")
    if "--force-local" in parsed.seen:
        return
    for archive in parsed.values("-f", "--file"):
        if archive is not None and _maybe_remote(archive.text):
            w.unknown("'tar -f' with a name that may be host:file contacts another host")
            return


def _old_style(w: Walker, rule: ProgramRule, args: list[Word]) -> list[Word] | None:
    """``tar tfv a.tar`` as ``tar -t -f a.tar -v``: each letter that takes a value takes the next word in turn."""
    bundle = args[0].text or ""
    out: list[Word] = []
    rest = 1
    for letter in bundle:
        if not letter.isalnum():
            w.unknown(f"'tar {bundle}': {letter!r} is not an option letter")
            return None
        option = "-" + letter
        out.append(Word(option, option))
        if rule.options.get(option) == "value" and rest < len(args):
            out.append(args[rest])
            rest += 1
    return [*out, *args[rest:]]


def _maybe_remote(name: str | None) -> bool:
    """GNU tar reads ``host:file`` (a colon with no '/' before it) as a file on another host."""
    if name is None:
        return True
    colon = name.find(":")
    return colon >= 0 and "/" not in name[:colon]


def tree(w: Walker, rule: ProgramRule, args: list[Word]) -> None:
    """tree's own option loop, rewritten as getopt-style words for the rule's options.

    In a bundle every value letter takes the next word and the bundle goes on (``-Lo 1 out`` is
    ``-L 1 -o out``); tree 2 lets -L take the digits right after it instead. A long option that takes
    a value matches any word starting with its name and, without '=', takes the next word.
    """
    longs = [name for name in rule.longs if rule.options[name] == "value"]
    out: list[Word] = []
    i = 0
    while i < len(args):
        word = args[i]
        i += 1
        text = word.text
        if text is None or text == "-" or not text.startswith("-"):
            out.append(word)
            continue
        if text == "--":
            out.extend(args[i - 1 :])
            break
        if text.startswith("--"):
            name = next((name for name in longs if text.startswith(name)), None)
            if name is None or text[len(name) : len(name) + 1] == "=":
                out.append(word)
            else:
                out.extend([Word(name, name), *args[i : i + 1]])
                i += 1
            continue
        j = 1
        while j < len(text):
            opt = "-" + text[j]
            j += 1
            if opt == "-L" and text[j : j + 1].isdigit():
                digits = len(text[j:]) - len(text[j:].lstrip("0123456789"))
                out.append(Word(opt + text[j : j + digits], opt + text[j : j + digits]))
                j += digits
            elif rule.options.get(opt) == "value":
                out.extend([Word(opt, opt), *args[i : i + 1]])
                i += 1
            else:
                out.append(Word(opt, opt))
    parse_options(w, rule, out)
