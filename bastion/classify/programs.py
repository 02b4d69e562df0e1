"""Check one simple command's argv against the read and write lists.

Dispatch: the program name (a bare name, or a path in one of the system directories), then the
write list, then the read list's rule for it: its options, operands and subcommands, or one of the
program-specific checks in ``special`` for programs whose arguments are a language of their own.
Wrappers (env, timeout, nice, xargs, …) are judged by the command they run; shells by their script.
"""

from __future__ import annotations

import re
from contextvars import ContextVar
from typing import TYPE_CHECKING

from bastion.classify import special
from bastion.classify.options import Parsed, cite, parse_options
from bastion.classify.rules import LOCALE_RULE, ProgramRule, is_locale_variable, safe_locale
from bastion.classify.words import Word

if TYPE_CHECKING:
    from bastion.classify.walker import Walker

_NAME = re.compile(r"[A-Za-z0-9_.+:\[\]/-]+")
_ASSIGNMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=")
# Set while checking a command that find or fd runs with file names substituted into it: no shell may
# run there, directly or through a wrapper, since a file name could land inside its script.
_SUBSTITUTING: ContextVar[str | None] = ContextVar("substituting", default=None)


def program_name(w: Walker, word: Word) -> str | None:
    text = word.text
    if text is None:
        w.unknown("the command name is only known at run time")
        return None
    if not text or not _NAME.fullmatch(text):
        w.unknown(f"unusual characters in the command name {text!r}")
        return None
    if "/" in text:
        directory, _, base = text.rpartition("/")
        if directory not in w.ctx.rules.path_dirs or not base:
            w.unknown(f"'{text}' is not in a system directory ({', '.join(w.ctx.rules.path_dirs)})")
            return None
        return base
    return text


def check_argv(w: Walker, argv: list[Word]) -> None:
    name = program_name(w, argv[0])
    if name is None:
        return
    rules = w.ctx.rules
    w.f.programs.append(name)
    reason = rules.write.get(name)
    if reason is not None:
        w.f.add_write(f"'{name}' {reason} ({rules.source}: {name})")
        return
    rule = rules.read.get(name)
    if rule is None:
        w.unknown(f"'{name}' is not on the read list")
        return
    check_program(w, rule, argv[1:])


def check_substituted_argv(w: Walker, argv: list[Word], runner: str) -> None:
    """Check a command that ``runner`` (find, fd) runs with file names in it; shells are refused, even wrapped."""
    token = _SUBSTITUTING.set(runner)
    try:
        check_argv(w, argv)
    finally:
        _SUBSTITUTING.reset(token)


def _refuse_shell(w: Walker, rule: ProgramRule) -> bool:
    runner = _SUBSTITUTING.get()
    if runner is None:
        return False
    w.unknown(f"'{runner}' would run a shell ('{rule.name}') on file names it substitutes")
    return True


def check_program(w: Walker, rule: ProgramRule, args: list[Word]) -> None:
    if rule.handler is not None:
        _HANDLERS[rule.handler](w, rule, args)
    elif rule.subcommands or rule.write_subcommands:
        _subcommand(w, rule, args)
    elif rule.options_first:
        parsed = parse_options(w, rule, args, stop_at_operand=True)
        parsed.operands = parsed.rest
        check_operands(w, rule, parsed)
    else:
        check_operands(w, rule, parse_options(w, rule, args))


def check_operands(w: Walker, rule: ProgramRule, parsed: Parsed) -> None:
    if rule.requires and not any(flag in parsed.seen for flag in rule.requires):
        w.f.add_write(f"'{rule.name}' without {' or '.join(rule.requires)} {rule.requires_reason} {cite(w, rule)}")
    operands = parsed.operands
    if not operands:
        return
    if rule.operands_require and not any(flag in parsed.seen for flag in rule.operands_require):
        w.f.add_write(f"'{rule.name} {_show(operands[0])}' {rule.operand_reason} {cite(w, rule)}")
        return
    limited = rule.operands == "none" or rule.max_operands is not None or rule.operand_pattern is not None
    if not limited:
        return
    if any(not o.static for o in operands):
        w.unknown(f"an operand of '{rule.name}' is only known at run time")
        return
    allowed = 0 if rule.operands == "none" else rule.max_operands
    bad = operands[allowed:] if allowed is not None else []
    if rule.operand_pattern is not None:
        bad += [o for o in operands if not re.fullmatch(rule.operand_pattern, o.text or "")]
    if bad:
        w.f.add_write(f"'{rule.name} {_show(bad[0])}' {rule.operand_reason} {cite(w, rule)}")


def _show(word: Word) -> str:
    return word.text if word.text is not None else "…"


def _subcommand(w: Walker, rule: ProgramRule, args: list[Word]) -> None:
    parsed = parse_options(w, rule, args, stop_at_operand=True)
    if not parsed.rest:
        if not rule.bare:
            w.unknown(f"'{rule.name}' needs a subcommand")
        return
    sub = parsed.rest[0].text
    if sub is None:
        w.unknown(f"the subcommand of '{rule.name}' is only known at run time")
        return
    reason = rule.write_subcommands.get(sub)
    if reason is not None:
        w.f.add_write(f"'{rule.name} {sub}' {reason} {cite(w, rule)}")
    elif rule.name == "git" and _git_help(w, rule, sub, parsed.rest[1:]):
        return
    elif sub in rule.subcommands:
        check_program(w, rule.subcommands[sub], parsed.rest[1:])
    else:
        w.unknown(f"'{rule.name} {sub}' is not on the read list")


def _git_help(w: Walker, rule: ProgramRule, sub: str, args: list[Word]) -> bool:
    """git turns ``git <sub> --help`` into ``git help <sub>``, which runs the manual viewer or browser the
    repository's configuration names (man.viewer is a list that no forced setting can empty)."""
    if any(word.text == "--help" for word in args):
        w.f.add_write(f"'{rule.name} {sub} --help' {rule.write['--help']} {cite(w, rule)}")
        return True
    if args and args[0].text is None and args[0].may_flag:
        w.unknown(f"the first argument of '{rule.name} {sub}' is only known at run time and may be --help")
        return True
    return False


def _wrapper(w: Walker, rule: ProgramRule, args: list[Word]) -> None:
    """env, timeout, nice, nohup, stdbuf, time, command, builtin: judged by what they run."""
    parsed = parse_options(w, rule, args, stop_at_operand=True)
    rest = parsed.rest
    if rule.name == "command" and ("-v" in parsed.seen or "-V" in parsed.seen):
        return
    if rule.name == "env":
        if rest and rest[0].text == "-":
            w.f.add_write(f"'env -' clears the environment, undoing the gateway's settings {cite(w, rule)}")
            rest = rest[1:]
        while rest and rest[0].text is not None and _ASSIGNMENT.match(rest[0].text):
            var, _, value = (rest[0].text or "").partition("=")
            if not w.ctx.rules.assignment_allowed(var):
                w.unknown(f"'env {var}=…' can change what the command does")
            elif is_locale_variable(var) and not safe_locale(value):
                w.unknown(f"'env {rest[0].text}' {LOCALE_RULE}")
            rest = rest[1:]
        if rest and rest[0].text is None:
            w.unknown("an argument of 'env' known only at run time may be an assignment")
            return
    rest = rest[rule.skip_operands :]
    if not rest:
        if not rule.bare:
            w.unknown(f"'{rule.name}' without a command")
        return
    if rule.shell is not None:
        _script_of_words(w, rule, rest)
    else:
        check_argv(w, rest)


def _script_of_words(w: Walker, rule: ProgramRule, words: list[Word]) -> None:
    """watch joins its arguments with spaces and runs them with sh -c."""
    if _refuse_shell(w, rule):
        return
    if any(not word.static for word in words):
        w.unknown(f"'{rule.name}' runs a script known only at run time")
        return
    from bastion.classify.walker import run_script

    run_script(w.ctx, " ".join(word.text or "" for word in words), rule.shell or "posix")


def _shell(w: Walker, rule: ProgramRule, args: list[Word]) -> None:
    """bash -c SCRIPT / sh -c / zsh -c: classify the script itself; anything else reads a script we cannot see."""
    if _refuse_shell(w, rule):
        return
    parsed = parse_options(w, rule, args, stop_at_operand=True)  # later words are $0, $1, …
    if "-c" not in parsed.seen:
        w.unknown(f"'{rule.name}' without -c runs a script from its input or a file")
        return
    if not parsed.rest or parsed.rest[0].text is None:
        w.unknown(f"the script of '{rule.name} -c' is only known at run time")
        return
    from bastion.classify.walker import run_script

    run_script(w.ctx, parsed.rest[0].text, rule.shell or "posix")


def _xargs(w: Walker, rule: ProgramRule, args: list[Word]) -> None:
    """xargs appends words from its input: the command must accept any extra arguments."""
    parsed = parse_options(w, rule, args, stop_at_operand=True)
    command = parsed.rest or [Word("echo", "echo")]
    replace = next((parsed.seen[o] for o in ("-I", "-J", "--replace", "-i") if o in parsed.seen), None)
    if replace is not None or any(o in parsed.seen for o in ("-i", "--replace")):
        token = (replace.text if replace is not None else None) or "{}"
        command = [_replaced(word, token) for word in command]
    else:
        command = [*command, Word(None, "", True, True)]
    check_argv(w, command)


def _replaced(word: Word, token: str) -> Word:
    if word.text is None or token not in word.text:
        return word
    prefix = word.text.split(token, 1)[0]
    return Word(None, prefix, False, prefix == "" or prefix.startswith("-"))


def _kv(w: Walker, rule: ProgramRule, args: list[Word]) -> None:
    """dd-style KEY=VALUE operands: only listed keys read; of= and friends write."""
    for arg in args:
        if arg.text is None:
            w.unknown(f"an operand of '{rule.name}' is only known at run time")
            continue
        key = arg.text.split("=", 1)[0]
        reason = rule.write.get(key)
        if reason is not None:
            w.f.add_write(f"'{rule.name} {key}=' {reason} {cite(w, rule)}")
        elif "=" not in arg.text or key not in rule.kv_allow:
            w.unknown(f"'{rule.name} {arg.text}' is not an allowed operand")


def _test(w: Walker, rule: ProgramRule, args: list[Word]) -> None:
    """test/[ with -v evaluates array subscripts (and so commands); a run-time word could become -v."""
    for arg in args:
        if arg.text is None and (arg.splits or arg.may_flag):
            w.unknown(f"an argument of '{rule.name}' known only at run time may become an operator")
        elif arg.text in rule.write:
            w.f.add_write(f"'{rule.name} {arg.text}' {rule.write[arg.text]} {cite(w, rule)}")


_HANDLERS = {
    "wrapper": _wrapper,
    "shell": _shell,
    "xargs": _xargs,
    "kv": _kv,
    "test": _test,
    "find": special.find,
    "fd": special.fd,
    "sed": special.sed,
    "awk": special.awk,
    "tar": special.tar,
    "tree": special.tree,
    "git": _subcommand,
}
