"""sed and awk: their scripts are small programs, scanned for the commands that write or execute.

The scanners are deliberately strict: anything they do not understand is UNKNOWN, so a script
written to confuse them gains nothing.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from bastion.classify.options import cite, parse_options
from bastion.classify.rules import ProgramRule
from bastion.classify.words import Word

if TYPE_CHECKING:
    from bastion.classify.walker import Walker

_SED_SIMPLE = set("dDgGhHlnNpPxzF=}{")
_SED_TO_EOL = set("aic#rR")
_SED_LABEL = set(":btTv")
_SED_ADDR = re.compile(r"\s*(?:[0-9]+(?:~[0-9]+)?|\$|/(?:[^/\\\n]|\\.)*/[IM]*|\\(.)(?:(?!\1)[^\\\n]|\\.)*\1[IM]*)")
_SED_ADDR2 = re.compile(r"\s*,\s*(?:[0-9]+|\$|[+~][0-9]+|/(?:[^/\\\n]|\\.)*/[IM]*)")


def _static_scripts(w: Walker, rule: ProgramRule, words: list[Word | None]) -> list[str] | None:
    scripts = []
    for word in words:
        if word is None or word.text is None:
            w.unknown(f"the script of '{rule.name}' is only known at run time")
            return None
        scripts.append(word.text)
    return scripts


def sed(w: Walker, rule: ProgramRule, args: list[Word]) -> None:
    parsed = parse_options(w, rule, args)
    if parsed.values("-f", "--file"):
        w.unknown("'sed -f' reads its script from a file")
        return
    words = parsed.values("-e", "--expression")
    if not words:
        if not parsed.operands:
            return
        words = [parsed.operands[0]]
    scripts = _static_scripts(w, rule, words)
    if scripts is None:
        return
    for script in scripts:
        problem = sed_problem(script)
        if problem is None:
            continue
        kind, reason = problem
        if kind == "write":
            w.f.add_write(f"'sed {reason} {cite(w, rule)}")
        else:
            w.unknown(f"sed script {script[:40]!r}: {reason}")


def sed_problem(script: str) -> tuple[str, str] | None:
    """('write', why) for w/W/e commands and s///w or s///e; ('unknown', why) when unsure."""
    i, n = 0, len(script)
    while i < n:
        ch = script[i]
        if ch in " \t\n;":
            i += 1
            continue
        m = _SED_ADDR.match(script, i)
        if m and m.end() > i:
            i = m.end()
            m2 = _SED_ADDR2.match(script, i)
            if m2:
                i = m2.end()
        while i < n and script[i] in " \t!":
            i += 1
        if i >= n:
            return ("unknown", "an address without a command")
        cmd = script[i]
        i += 1
        if cmd in "wWe":
            return ("write", f"{cmd}' command writes a file or runs a command'")
        if cmd in _SED_SIMPLE or cmd in "qQlL":
            while i < n and script[i].isdigit():
                i += 1
        elif cmd in _SED_TO_EOL:
            i = _to_eol(script, i)
        elif cmd in _SED_LABEL:
            i = _sed_label_end(script, i)
        elif cmd in "sy":
            result = _sed_substitute(script, i, cmd)
            if isinstance(result, tuple):
                return result
            i = result
        else:
            return ("unknown", f"unknown command {cmd!r}")
    return None


def _sed_label_end(script: str, i: int) -> int:
    """End of the label (or ``v`` version) that starts at i: GNU sed ends it at whitespace or ';'.

    '}' ends it here too, although sed may read it as part of the label: stopping early only makes
    more of the script be checked as commands.
    """
    n = len(script)
    while i < n and script[i] in " \t":
        i += 1
    while i < n and script[i] not in " \t\n\r\v\f;}":
        i += 1
    return i


def _to_eol(script: str, i: int) -> int:
    while i < len(script) and script[i] != "\n":
        i += 2 if script[i] == "\\" else 1
    return i


def _sed_part(script: str, i: int, delim: str) -> int | None:
    while i < len(script):
        ch = script[i]
        if ch == "\\":
            i += 2
        elif ch == delim:
            return i + 1
        else:
            i += 1
    return None


def _sed_substitute(script: str, i: int, cmd: str) -> int | tuple[str, str]:
    if i >= len(script) or script[i] in "\\\n":
        return ("unknown", f"bad '{cmd}' delimiter")
    delim = script[i]
    start = i + 1
    mid = _sed_part(script, start, delim)
    end = _sed_part(script, mid, delim) if mid is not None else None
    if mid is None or end is None:
        return ("unknown", f"unterminated '{cmd}' command")
    if "[" in script[start:mid]:
        return ("unknown", "a bracket expression may hide the delimiter")
    i = end
    if cmd == "y":
        return i
    while i < len(script) and script[i] not in ";\n}":
        flag = script[i]
        if flag in "we":
            return ("write", f"s///{flag}' writes a file or runs a command'")
        if flag not in "gpiImM0123456789 \t":
            return ("unknown", f"unknown s/// flag {flag!r}")
        i += 1
    return i


_AWK_TOKEN = re.compile(
    r'\s+|#[^\n]*|"(?:[^"\\\n]|\\.)*"|[A-Za-z_][A-Za-z0-9_]*|[0-9.]+(?:[eE][-+]?[0-9]+)?'
    r"|\|\||&&|>>|\|&|[<>!=]=|\+\+|--|[-+*/%^]=|@[A-Za-z_]+|\\\n|.",
    re.S,
)
_AWK_OPERAND_END = re.compile(r'[A-Za-z0-9_)\]"$.]')
_AWK_HARMLESS_FILES = frozenset({'"/dev/stderr"', '"/dev/stdout"'})
# gawk's network files; a getline `<` in the statement of a getline must name a file as a plain string.
_AWK_NETWORK_FILES = ('"/inet', '"/dev/tcp/', '"/dev/udp/')


def awk(w: Walker, rule: ProgramRule, args: list[Word]) -> None:
    parsed = parse_options(w, rule, args)
    if any(name in parsed.seen for name in ("-f", "--file", "-E", "--exec", "-i", "--include", "-l", "--load")):
        w.unknown(f"'{rule.name}' loads a program file we cannot see")
        return
    words = parsed.values("-e", "--source") or parsed.operands[:1]
    scripts = _static_scripts(w, rule, words)
    for script in scripts or []:
        problem = awk_problem(script)
        if problem is None:
            continue
        kind, reason = problem
        if kind == "write":
            w.f.add_write(f"'{rule.name}' program {reason} {cite(w, rule)}")
        else:
            w.unknown(f"awk program {script[:40]!r}: {reason}")


def awk_problem(program: str) -> tuple[str, str] | None:
    """Finds system(), pipes, print/printf redirected to a file, and getline from a file that may be one of
    gawk's network files (`/inet/tcp/...` opens a connection); regexes and strings are skipped."""
    prev = ";"
    in_print = False
    depth = 0
    pos = 0
    pending_redirect = ""
    getline = ""  # "active" from getline to the end of its statement, "<" when a file name comes next
    while pos < len(program):
        m = _AWK_TOKEN.match(program, pos)
        if m is None:
            return ("unknown", "cannot tokenize")
        tok, pos = m.group(), m.end()
        if (tok.isspace() and "\n" not in tok) or tok.startswith("#") or tok == "\\\n":
            continue
        if pending_redirect:
            if tok not in _AWK_HARMLESS_FILES:
                return ("write", f"prints to a file ({pending_redirect} {tok})")
            pending_redirect = ""
        if getline == "<":
            if not tok.startswith('"') or tok.startswith(_AWK_NETWORK_FILES):
                return ("unknown", f"getline reads from {tok}, which may be a network connection")
            getline = "active"
        elif getline and tok == "<":
            getline = "<"
        elif tok in (";", "{", "}") or "\n" in tok:
            getline = ""
        if tok == "getline":
            getline = "active"
        if tok == "/" and prev in ("++", "--"):
            # a division after `x++`, a regex after a prefix `++`: awks disagree, so neither reading is trusted
            return ("unknown", f"'/' after '{prev}' is read differently by different awks")
        if tok == "/" and not _AWK_OPERAND_END.fullmatch(prev[-1:]):
            end = _regex_end(program, pos)
            if end is None:
                return ("unknown", "unterminated regular expression")
            pos, prev = end, "/re/"
            continue
        if tok == "system":
            return ("write", "calls system(), which runs a command")
        if tok in ("|", "|&"):
            return ("write", "pipes to or from a command")
        if tok.startswith("@"):
            return ("unknown", f"{tok} directive")
        if tok in ("print", "printf"):
            in_print, depth = True, 0
        elif tok in ("(", "["):
            depth += 1
        elif tok in (")", "]"):
            depth -= 1
        elif tok in (";", "}", "{") or "\n" in tok:
            in_print = False
        elif in_print and depth == 0 and tok in (">", ">>"):
            pending_redirect = tok
        prev = ";" if tok.isspace() else tok
    if pending_redirect:
        return ("unknown", "a redirection without a target")
    return None


def _regex_end(program: str, i: int) -> int | None:
    """Index just past the closing slash of a regex literal that starts at i, or None."""
    in_bracket = False
    while i < len(program):
        ch = program[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "\n":
            return None
        if ch == "[":
            in_bracket = True
        elif ch == "]":
            in_bracket = False
        elif ch == "/" and not in_bracket:
            return i + 1
        i += 1
    return None
