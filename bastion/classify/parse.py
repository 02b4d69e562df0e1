"""One shared tree-sitter parser and the checks that make its tree trustworthy.

tree-sitter recovers from errors; bash does not. Any ERROR or MISSING node, and any text the tree
does not account for, means the tree may not be what bash will run, so the command is UNKNOWN.
"""

from __future__ import annotations

import re
import threading
from itertools import pairwise

import tree_sitter_bash
from tree_sitter import Language, Node, Parser, Tree

MAX_BYTES = 16 * 1024
MAX_SIMPLE_COMMANDS = 256
MAX_DEPTH = 8

_LANGUAGE = Language(tree_sitter_bash.language())
_local = threading.local()
# Only space, tab, newline (and a backslash-newline) separate words for bash; tree-sitter's idea of
# whitespace is broader, so any other control character is refused before parsing.
_BAD_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_GAP = re.compile(r"(?:[ \t]|\\\n)*")
# bash deletes every backslash-newline before it splits words (outside single quotes, comments and quoted
# here-documents); tree-sitter keeps it as a separator. The two agree only where an unescaped blank already
# ends the text before it. Anywhere else bash joins what the tree keeps apart: `a\⏎#b` is one word, not a
# word and a comment, and `$\⏎(` or `$\⏎{` starts an expansion the tree never sees.
_JOINING_CONTINUATION = re.compile(r"(?<![ \t])\\\n|(?<=\\[ \t])\\\n")
# tree-sitter also skips a backslash-blank as whitespace where it expects a separator; for bash it is always a
# quoted blank inside a word (`a \ #b; rm x` runs rm). Each one must lie inside a node that holds text.
_ESCAPED_BLANK = re.compile(rb"(?<!\\)(?:\\\\)*\\[ \t]")
_TEXT_NODES = frozenset({"word", "string", "string_content", "raw_string", "ansi_c_string", "translated_string",
                         "comment", "heredoc_body", "heredoc_content", "regex", "extglob_pattern"})  # fmt: skip


class Unparsable(Exception):
    """The text cannot be parsed into a tree that provably matches bash's reading of it."""


def parser() -> Parser:
    """tree-sitter parsers are not thread-safe; keep one per thread and reuse it."""
    p = getattr(_local, "parser", None)
    if p is None:
        p = _local.parser = Parser(_LANGUAGE)
    return p


def parse(text: str) -> Tree:
    if len(text) > MAX_BYTES:
        raise Unparsable(f"the command is longer than {MAX_BYTES // 1024} KiB")
    bad = _BAD_CHARS.search(text)
    if bad:
        raise Unparsable(f"control character {bad.group()!r} in the command")
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        raise Unparsable("the command is not valid UTF-8") from None
    if len(data) > MAX_BYTES:
        raise Unparsable(f"the command is longer than {MAX_BYTES // 1024} KiB")
    if "\\\n" in text:
        _check_continuations(text)
    tree = parser().parse(data)
    if tree.root_node.has_error:
        raise Unparsable(f"bash syntax error near {_first_error(tree.root_node)!r}")
    if b"\\ " in data or b"\\\t" in data:
        _check_escaped_blanks(tree, data)
    return tree


def _check_continuations(text: str) -> None:
    joined = _JOINING_CONTINUATION.search(text)
    if joined:
        around = text[max(0, joined.start() - 20) : joined.end() + 20]
        raise Unparsable(f"bash joins the text around the backslash-newline in {around!r}")
    if "<<" in text:
        # in an unquoted here-document bash deletes backslash-newlines in the body and before it looks for
        # the terminator line, so the body and its end can differ from the tree's
        raise Unparsable("a backslash-newline in a command with a here-document")


def _check_escaped_blanks(tree: Tree, data: bytes) -> None:
    for m in _ESCAPED_BLANK.finditer(data):
        node = tree.root_node.descendant_for_byte_range(m.end() - 2, m.end())
        if node is None or node.type not in _TEXT_NODES:
            around = data[max(0, m.start() - 20) : m.end() + 20].decode("utf-8", "replace")
            raise Unparsable(f"the tree does not read the quoted blank in {around!r} as part of a word")


def _first_error(node: Node) -> str:
    stack = [node]
    while stack:
        n = stack.pop()
        if n.is_error or n.is_missing:
            return (n.text or b"").decode("utf-8", "replace")[:40] or n.type
        stack.extend(reversed(n.children))
    return node.type


def separated_by_blanks(source: bytes, nodes: list[Node], may_touch: frozenset[str] = frozenset()) -> bool:
    """True when only blanks lie between consecutive nodes, as bash needs to split them there.

    A node may follow the previous one with no blank at all only when its type is in ``may_touch``
    (a redirection after a word); anywhere else bash would join the two into one word.
    """
    for prev, nxt in pairwise(nodes):
        gap = source[prev.end_byte : nxt.start_byte]
        if gap == b" ":
            continue
        if not gap:
            if nxt.type not in may_touch:
                return False
        elif not _GAP.fullmatch(gap.decode("utf-8", "replace")):
            return False
    return True


def text_of(node: Node) -> str:
    return (node.text or b"").decode("utf-8")
