"""Word decoding for the walker: fields, quoting, expansions and arithmetic.

Kept apart from the statement walk so that each reads on its own; ``Walker`` mixes this in.
"""

from __future__ import annotations

import re
from itertools import pairwise
from typing import TYPE_CHECKING

from tree_sitter import Node

from bastion.classify.parse import text_of as _t
from bastion.classify.words import (
    IFS_SPLIT,
    Piece,
    Word,
    ansi_c,
    assemble,
    double_quoted,
    glob_prefix,
    has_brace_expansion,
    unquoted_word,
)  # fmt: skip

if TYPE_CHECKING:
    from bastion.classify.verdict import Findings

_EXPANSION_OPS = frozenset({":-", "-", ":+", "+", ":?", "?", "#", "##", "%", "%%", "/", "//", "/#", "/%",
                            "^", "^^", ",", ",,", ":", "${", "}"})  # fmt: skip
_ARITH_NODES = frozenset({"number", "binary_expression", "unary_expression", "parenthesized_expression",
                          "ternary_expression"})  # fmt: skip
# ${x:OFFSET:LENGTH} evaluates both as arithmetic (a variable's value can hold an array subscript that runs
# commands), so only integer literals may follow the substring operator
_LITERAL = re.compile(r"-?[0-9]+")
# Text tree-sitter leaves unparsed (the pattern of ${x#…}, a backquoted operand of ${x:-…}) is expanded by bash
# all the same: a substitution, arithmetic or nested ${…} in it is unseen code
_UNPARSED_CODE = re.compile(r"`|\$[({\[]|[<>]\(")
# a redirection operator right after a word; bash deletes backslash-newlines before it reads either
_REDIRECTION_AFTER = re.compile(rb"(?:\\\n)*(?:[<>]|&>)")
# word pieces bash does not brace-expand inside: quoted text and expansions
_QUOTED_NODES = frozenset({"raw_string", "string", "ansi_c_string", "translated_string", "simple_expansion",
                           "expansion", "command_substitution", "process_substitution",
                           "arithmetic_expansion"})  # fmt: skip
WORD_NODES = frozenset({"word", "number", "raw_string", "string", "ansi_c_string", "concatenation",
                        "simple_expansion", "expansion", "command_substitution", "process_substitution",
                        "arithmetic_expansion", "regex", "extglob_pattern"})  # fmt: skip


class WordDecoder:
    """Turns word nodes into ``Word`` values; the walker supplies ``statement`` for substitutions."""

    src: bytes
    dialect: str
    f: Findings

    def unknown(self, reason: str) -> None:
        self.f.add_unknown(reason)

    def statement(self, node: Node) -> None:
        raise NotImplementedError

    def fields(self, node: Node) -> list[Word]:
        """The words one word node becomes; substitutions inside it are walked as they are found."""
        pieces: list[Piece | object] = []
        self.pieces(node, quoted=False, out=pieces)
        if node.type in ("word", "concatenation"):
            raw = _t(node)
            if raw.startswith("{") and raw.endswith("}") and _REDIRECTION_AFTER.match(self.src, node.end_byte):
                # bash reads {NAME} or {NAME[SUBSCRIPT]} right before < or > as a variable to assign the fd to
                self.unknown(f"'{raw[:40]}' before a redirection names a variable that bash assigns")
            if "{" in raw and has_brace_expansion(_unquoted_skeleton(node)):
                return [Word(None, "", True, True)]
        return assemble(pieces)

    def pieces(self, node: Node, *, quoted: bool, out: list[Piece | object] | None = None) -> None:
        out = [] if out is None else out
        kind = node.type
        if kind in ("word", "regex", "extglob_pattern"):
            self.plain_word(node, quoted, out)
        elif kind == "number":
            out.append(Piece(_t(node)))
        elif kind == "raw_string":
            out.append(Piece(_t(node)[1:-1]))
        elif kind == "ansi_c_string":
            self.ansi_string(node, out)
        elif kind == "string":
            self.dq_string(node, out)
        elif kind == "concatenation":
            if any(a.end_byte != b.start_byte for a, b in pairwise(node.children)):
                self.unknown(f"cannot tell how bash joins {_t(node)[:40]!r}")
            for child in node.children:
                self.pieces(child, quoted=quoted, out=out)
        elif kind in ("simple_expansion", "expansion"):
            self.expansion(node, quoted, out)
        elif kind in ("command_substitution", "process_substitution"):
            self.substitution(node)
            if kind == "process_substitution":
                out.append(Piece("/dev/fd/", dynamic=True))
            else:
                out.append(Piece("", dynamic=True, splits=not quoted, free=not quoted))
        elif kind == "arithmetic_expansion":
            for child in node.children:
                if child.is_named:
                    self.arith(child)
            out.append(Piece("", dynamic=True, splits=not quoted, free=not quoted))
        else:
            self.unknown(f"cannot decode {_t(node)[:40]!r} statically")
            out.append(Piece("", dynamic=True, splits=True, free=True))

    def plain_word(self, node: Node, quoted: bool, out: list[Piece | object]) -> None:
        raw = _t(node)
        if hides_code(raw):
            self.unknown(f"{raw[:40]!r} holds a substitution or expansion that bash runs")
        if quoted:
            out.append(Piece(double_quoted(raw)))
            return
        text, glob = unquoted_word(raw)
        if raw.startswith("~") and not out:
            out.append(Piece("~", dynamic=True))
        elif glob:
            out.append(Piece(glob_prefix(text), dynamic=True, splits=True))
        else:
            out.append(Piece(text))

    def ansi_string(self, node: Node, out: list[Piece | object]) -> None:
        if self.dialect != "bash":
            self.unknown("$'…' quoting is bash syntax")
        text = ansi_c(_t(node)[2:-1])
        if text is None:
            self.unknown(f"{_t(node)[:40]!r} depends on the target's locale")
            out.append(Piece("", dynamic=True))
        else:
            out.append(Piece(text))

    def dq_string(self, node: Node, out: list[Piece | object]) -> None:
        inner = node.children[1:-1] if len(node.children) >= 2 else []
        pos = node.children[0].end_byte if node.children else node.start_byte
        end = node.children[-1].start_byte if node.children else node.end_byte
        for child in inner:
            if child.start_byte > pos:
                out.append(Piece(double_quoted(self.src[pos : child.start_byte].decode())))
            if child.type == "string_content":
                out.append(Piece(double_quoted(_t(child))))
            else:
                self.pieces(child, quoted=True, out=out)
            pos = child.end_byte
        if end > pos:
            out.append(Piece(double_quoted(self.src[pos:end].decode())))

    def expansion(self, node: Node, quoted: bool, out: list[Piece | object]) -> None:
        names = [c for c in node.children if c.type in ("variable_name", "special_variable_name")]
        plain = len(node.children) <= 4 and len(names) == 1
        if node.type == "expansion":
            self.check_expansion(node)
        if (
            plain
            and not quoted
            and _t(names[0]) == "IFS"
            and all(c.type in ("$", "${", "}", "variable_name") for c in node.children)
        ):
            out.append(IFS_SPLIT)
            return
        out.append(Piece("", dynamic=True, splits=not quoted, free=not quoted))

    def check_expansion(self, node: Node) -> None:
        substring = False
        for child in node.children:
            kind = child.type
            if substring and kind not in (":", "}") and not (kind == "number" and _LITERAL.fullmatch(_t(child))):
                self.unknown(f"the offset or length {_t(child)[:40]!r} in {_t(node)[:40]!r} is evaluated as arithmetic")
                return
            if kind == ":":
                substring = True
            elif kind in ("variable_name", "special_variable_name", "number"):
                continue
            elif kind in ("regex", "word", "extglob_pattern") and _UNPARSED_CODE.search(_t(child)):
                self.unknown(f"{_t(child)[:40]!r} in {_t(node)[:40]!r} is expanded by bash and can run code")
                return
            if kind == "subscript":
                index = [c for c in child.children if c.is_named and c.type != "variable_name"]
                if not all(c.type == "number" or _t(c) in ("@", "*") for c in index):
                    self.unknown(f"array subscript in {_t(node)!r} is evaluated as arithmetic")
            elif kind in WORD_NODES:
                self.fields(child)
            elif child.is_named or kind not in _EXPANSION_OPS:
                self.unknown(f"parameter expansion {_t(node)[:40]!r} can assign or run code")
                return

    def substitution(self, node: Node) -> None:
        if node.type == "process_substitution" and self.dialect != "bash":
            self.unknown("process substitution is bash syntax")
        text = _t(node)
        if text.startswith("`") and "\\" in text:
            # bash removes \` \\ \$ inside backquotes and parses the result again; the tree does not
            self.unknown(f"a backslash inside the backquoted substitution {text[:40]!r} is parsed again by bash")
            return
        if text.startswith("$(("):
            # bash reads $(( as arithmetic whenever it can, which tree-sitter does not always do
            self.unknown(f"{text[:40]!r} is arithmetic for bash, not a command")
            return
        for child in node.children:
            if child.is_named:
                self.statement(child)

    def arith(self, node: Node) -> None:
        if not node.is_named:
            return
        if node.type not in _ARITH_NODES:
            self.unknown(f"arithmetic on {_t(node)[:40]!r} can run commands through array subscripts")
            return
        for child in node.children:
            self.arith(child)


def hides_code(raw: str) -> bool:
    """Does text that tree-sitter left unparsed hold a substitution, arithmetic or ${…} that bash runs?"""
    if not ("`" in raw or "$" in raw or "(" in raw):
        return False
    # a backslash-escaped character cannot start an expansion
    return _UNPARSED_CODE.search(re.sub(r"\\.", "", raw, flags=re.S) if "\\" in raw else raw) is not None


def _unquoted_skeleton(node: Node) -> str:
    """The word's unquoted literal text, with each quoted, escaped or expanded part replaced by ``_``."""
    if node.type == "concatenation":
        return "".join(_unquoted_skeleton(child) for child in node.children)
    if node.type in _QUOTED_NODES:
        return "_"
    text = re.sub(r"\\.", "_", _t(node), flags=re.S)
    if node.type in ("word", "number") and not any(q in text for q in "'\"`$"):
        return text
    # quoting this function does not follow: count a brace in it as brace expansion
    return "{,}" if "{" in text or "}" in text else text
