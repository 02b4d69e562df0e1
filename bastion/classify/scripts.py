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
_AWK_HARMLESS_FILES = frozenset({'"/dev/stderr"', '"/dev/stdout"'})
# gawk's network files; a getline `<` in the statement of a getline must name a file as a plain string.
_AWK_NETWORK_FILES = ('"/inet', '"/dev/tcp/', '"/dev/udp/')
_AWK_KEYWORDS = frozenset({
    "BEGIN", "END", "BEGINFILE", "ENDFILE", "function", "func", "if", "else", "while", "for", "do", "break",
    "continue", "next", "nextfile", "exit", "return", "delete", "in", "getline", "print", "printf", "switch",
    "case", "default",
})  # fmt: skip
# The last character of a token after which '/' divides: a name, a number, a string or a subscript.
_AWK_OPERAND_LAST = frozenset('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"]')
# How many readings of a program may be followed when awks disagree on whether a '/' starts a regex.
_AWK_MAX_READINGS = 16


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
    gawk's network files (`/inet/tcp/...` opens a connection); regexes and strings are skipped.

    Whether a '/' starts a regex depends on the grammar: after an operand it divides, after an operator
    it starts a regex. Where awks disagree or the token before does not settle it (after ')', '$', a
    keyword or a regex), both readings of the rest of the program are scanned and the worse result counts.
    """
    readings = [_AwkState()]
    worst: tuple[str, str] | None = None
    followed = 0
    while readings:
        followed += 1
        if followed > _AWK_MAX_READINGS:
            return ("unknown", "too many places where awks may read '/' differently")
        problem = _awk_scan(program, readings.pop(), readings)
        if problem is not None and (worst is None or (problem[0] == "write" and worst[0] != "write")):
            worst = problem
    return worst


class _AwkState:
    """Where one reading of an awk program is, and what it has seen that the next tokens depend on."""

    __slots__ = ("depth", "file_named", "getline", "in_print", "pending_redirect", "pos", "prev", "regex_at")

    def __init__(self) -> None:
        self.pos = 0
        self.prev = ";"
        self.in_print = False
        self.depth = 0
        self.pending_redirect = ""
        self.file_named = False  # a harmless output file was named: the print statement must end right there
        self.getline = ""  # "active" from getline to the end of its statement, "<" when a file name comes next
        self.regex_at = -1  # the position of a '/' this reading takes as the start of a regex

    def fork(self, slash: int) -> _AwkState:
        other = _AwkState()
        for name in self.__slots__:
            setattr(other, name, getattr(self, name))
        other.pos, other.regex_at = slash, slash
        return other


def _slash_reading(prev: str) -> str:
    """How a '/' after the token ``prev`` is read: "regex", "division", or "both" where that is not certain."""
    if prev in ("++", "--"):
        return "unknown"
    if prev == "/re/" or prev in ("$", ")") or prev in _AWK_KEYWORDS:
        return "both"
    last = prev[-1]
    if last in _AWK_OPERAND_LAST or (last == "." and prev[0] in "0123456789."):
        return "division"
    return "regex"


def _awk_scan(program: str, st: _AwkState, readings: list[_AwkState]) -> tuple[str, str] | None:
    while st.pos < len(program):
        slash = st.pos
        m = _AWK_TOKEN.match(program, st.pos)
        if m is None:
            return ("unknown", "cannot tokenize")
        tok, st.pos = m.group(), m.end()
        if (tok.isspace() and "\n" not in tok) or tok.startswith("#") or tok == "\\\n":
            continue
        if st.file_named:
            # awk joins what follows into the file name: "/dev/stderr" "x" writes the file /dev/stderrx
            if tok not in (";", "}", ")") and "\n" not in tok:
                return ("write", f"prints to a file whose name is built from several parts (... {tok})")
            st.file_named = False
        if st.pending_redirect:
            if tok not in _AWK_HARMLESS_FILES:
                return ("write", f"prints to a file ({st.pending_redirect} {tok})")
            st.pending_redirect = ""
            st.file_named = True
            continue
        if st.getline == "<":
            if not tok.startswith('"') or tok.startswith(_AWK_NETWORK_FILES):
                return ("unknown", f"getline reads from {tok}, which may be a network connection")
            st.getline = "active"
        elif st.getline and tok == "<":
            st.getline = "<"
        elif tok in (";", "{", "}") or "\n" in tok:
            st.getline = ""
        if tok == "getline":
            st.getline = "active"
        if tok in ("/", "/="):
            reading = "regex" if st.regex_at == slash else _slash_reading(st.prev)
            if reading == "unknown":
                # a division after `x++`, a regex after a prefix `++`: awks disagree, so neither reading is trusted
                return ("unknown", f"'/' after '{st.prev}' is read differently by different awks")
            if reading == "both":
                readings.append(st.fork(slash))
            elif reading == "regex":
                end = _regex_end(program, slash + 1)
                if end is None and st.regex_at == slash and _regex_unterminated(program, slash + 1):
                    return None  # this reading of an ambiguous '/' does not compile
                if end is None:
                    return ("unknown", "a regular expression awks may end in different places")
                st.pos, st.prev = end, "/re/"
                continue
        if tok == "system":
            return ("write", "calls system(), which runs a command")
        if tok in ("|", "|&"):
            return ("write", "pipes to or from a command")
        if tok.startswith("@"):
            return ("unknown", f"{tok} directive")
        if tok in ("print", "printf"):
            st.in_print, st.depth = True, 0
        elif tok in ("(", "["):
            st.depth += 1
        elif tok in (")", "]"):
            st.depth -= 1
        elif tok in (";", "}", "{") or "\n" in tok:
            st.in_print = False
        elif st.in_print and st.depth == 0 and tok in (">", ">>"):
            st.pending_redirect = tok
        st.prev = ";" if tok.isspace() else tok
    if st.pending_redirect:
        return ("unknown", "a redirection without a target")
    return None


def _regex_end(program: str, i: int) -> int | None:
    """Index just past the closing slash of a regex literal whose text starts at i, or None.

    A '/' inside a bracket expression (``/[^/]+/``) does not end the regex in most awks; an awk that
    ends it there is left with an unterminated bracket, which does not compile. Awks also differ on
    a backslash, a nested '[' or a leading ']' inside brackets, so a bracket holding a '/' must have
    none of these. None also when the regex runs past the end of the line.
    """
    n = len(program)
    while i < n:
        ch = program[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "\n":
            return None
        if ch == "/":
            return i + 1
        if ch == "[":
            end = _bracket_end(program, i + 1)
            if end is None:
                return None
            inside = program[i + 1 : end - 1]
            if "/" in inside and ("\\" in inside or "[" in inside or inside.lstrip("^").startswith("]")):
                return None
            i = end
            continue
        i += 1
    return None


def _regex_unterminated(program: str, i: int) -> bool:
    """No '/' that a backslash does not escape follows i on its line: no awk can end a regex there."""
    n = len(program)
    while i < n:
        ch = program[i]
        if ch == "\\":
            i += 2
        elif ch == "\n":
            return True
        elif ch == "/":
            return False
        else:
            i += 1
    return True


def _bracket_end(program: str, i: int) -> int | None:
    """Past the ']' that closes a bracket expression whose contents start at i ('^' and a leading ']' included)."""
    n = len(program)
    if i < n and program[i] == "^":
        i += 1
    if i < n and program[i] == "]":
        i += 1
    while i < n:
        ch = program[i]
        if ch == "\n":
            return None
        if ch == "]":
            return i + 1
        if ch == "[" and i + 1 < n and program[i + 1] in ":.=":
            close = program.find(program[i + 1] + "]", i + 2)
            if close < 0:
                return None
            i = close + 2
            continue
        i += 2 if ch == "\\" else 1
    return None
