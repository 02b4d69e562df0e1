"""Decode tree-sitter word nodes into the argv bash will build, or say which parts are dynamic.

A word is *static* when its value is known without running anything (quotes, backslashes, ANSI-C
``$'…'`` and concatenation are decoded here). Otherwise it is *dynamic*, and two facts decide
whether that matters: ``splits`` (an unquoted expansion or glob may turn into zero or several words)
and ``may_flag`` (one of the resulting words may start with ``-``). A glob only yields names that
match it, so ``/var/log/*.log`` can never become ``-delete``; an unquoted ``$x`` can become anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_GLOB = re.compile(r"(?<!\\)(?:\\\\)*[*?\[]")
_SIMPLE_ESCAPES = {
    "a": "\a", "b": "\b", "e": "\x1b", "E": "\x1b", "f": "\f", "n": "\n", "r": "\r",
    "t": "\t", "v": "\v", "\\": "\\", "'": "'", '"': '"', "?": "?",
}  # fmt: skip
_ANSI = re.compile(
    r"\\(?:([abeEfnrtv\\'\"?])|([0-7]{1,3})|x([0-9A-Fa-f]{1,2})|u([0-9A-Fa-f]{1,4})"
    r"|U([0-9A-Fa-f]{1,8})|c(.)|(.))",
    re.S,
)


@dataclass(frozen=True, slots=True)
class Word:
    """One argv element as bash will see it; ``text`` is None when it is only known at run time."""

    text: str | None
    prefix: str = ""
    splits: bool = False
    may_flag: bool = False

    @property
    def static(self) -> bool:
        return self.text is not None


IFS_SPLIT = object()  # marker piece: an unquoted $IFS, which bash splits on (IFS cannot be changed here)


class Piece:
    """A decoded fragment of a word.

    Static pieces carry their text. Dynamic pieces carry the text every expansion of them starts
    with (``/var/log/`` for ``/var/log/*``, ``~`` for a tilde), whether they may yield several words,
    and whether they are *free*: an unquoted parameter or command expansion that can become anything.
    """

    __slots__ = ("dynamic", "free", "splits", "text")

    def __init__(self, text: str, *, dynamic: bool = False, splits: bool = False, free: bool = False) -> None:
        self.text = text
        self.dynamic = dynamic
        self.splits = splits
        self.free = free


def ansi_c(body: str) -> str | None:
    """Decode the inside of ``$'…'``; None when the result cannot be known for certain."""
    out: list[str] = []
    pos = 0
    for m in _ANSI.finditer(body):
        out.append(body[pos : m.start()])
        pos = m.end()
        simple, octal, hexa, uni, uni8, ctrl, other = m.groups()
        if simple:
            out.append(_SIMPLE_ESCAPES[simple])
        elif octal:
            out.append(chr(int(octal, 8) & 0xFF))
        elif hexa:
            out.append(chr(int(hexa, 16)))
        elif uni or uni8:
            code = int(uni or uni8, 16)
            if code >= 0x80:
                return None  # depends on the target's locale
            out.append(chr(code))
        elif ctrl:
            out.append(chr(ord(ctrl.upper()) & 0x1F) if ctrl != "?" else "\x7f")
        else:
            out.append("\\" + other)
    out.append(body[pos:])
    text = "".join(out)
    # bash stops the word at a NUL byte
    return text.split("\0", 1)[0]


def unquoted_word(raw: str) -> tuple[str, bool]:
    """Remove backslash quoting from an unquoted word; report whether it has live glob characters."""
    glob = bool(_GLOB.search(raw))
    if "\\" not in raw:
        return raw, glob
    out: list[str] = []
    chars = iter(raw)
    for ch in chars:
        if ch == "\\":
            nxt = next(chars, "")
            if nxt != "\n":
                out.append(nxt)
        else:
            out.append(ch)
    return "".join(out), glob


def double_quoted(raw: str) -> str:
    """Inside double quotes a backslash only escapes $ ` " \\ and newline."""
    if "\\" not in raw:
        return raw
    return re.sub(r'\\([$`"\\\n])', lambda m: "" if m.group(1) == "\n" else m.group(1), raw)


def has_brace_expansion(unquoted: str) -> bool:
    """Could bash brace-expand a word whose unquoted text is ``unquoted``?

    The caller replaces every quoted or escaped part of the word with a neutral character, so the
    braces, commas and ``..`` left here are the ones bash sees. Any ``{`` later closed by ``}`` with
    a comma or ``..`` anywhere after it while it is open counts, which is broader than bash.
    """
    if "{" not in unquoted:
        return False
    open_braces: list[bool] = []
    for i, ch in enumerate(unquoted):
        if ch == "{":
            open_braces.append(False)
        elif ch == "}":
            if open_braces and open_braces.pop():
                return True
        elif open_braces and (ch == "," or (ch == "." and unquoted[i + 1 : i + 2] == ".")):
            open_braces = [True] * len(open_braces)
    return False


def assemble(pieces: list[Piece | object]) -> list[Word]:
    """Join pieces into the words bash produces; an unquoted $IFS separates words."""
    words: list[Word] = []
    current: list[Piece] = []
    for piece in pieces:
        if piece is IFS_SPLIT:
            if current:
                words.append(_word(current))
            current = []
        elif isinstance(piece, Piece):
            current.append(piece)
    if current:
        words.append(_word(current))
    return words


def _word(pieces: list[Piece]) -> Word:
    if not any(p.dynamic for p in pieces):
        text = "".join(p.text for p in pieces)
        return Word(text, text, False, text.startswith("-"))
    prefix_parts: list[str] = []
    for p in pieces:
        prefix_parts.append(p.text)
        if p.dynamic:
            break
    prefix = "".join(prefix_parts)
    free = any(p.free for p in pieces)
    splits = any(p.splits for p in pieces)
    return Word(None, prefix, splits, free or prefix == "" or prefix.startswith("-"))


def glob_prefix(text: str) -> str:
    """The part of a glob pattern before its first wildcard: every match starts with it."""
    m = re.search(r"[*?\[]", text)
    return text if m is None else text[: m.start()]
