"""Walk the whole bash tree: every statement, word, substitution and redirection is checked.

The walker knows a fixed set of node kinds; anything else is UNKNOWN. Simple commands are handed
to ``programs.check_argv`` with their decoded argv.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from tree_sitter import Node

from bastion.classify import programs
from bastion.classify.decode import WORD_NODES, WordDecoder, hides_code
from bastion.classify.parse import MAX_DEPTH, MAX_SIMPLE_COMMANDS, Unparsable, parse, separated_by_blanks
from bastion.classify.parse import text_of as _t
from bastion.classify.rules import LOCALE_RULE, CommandRules, is_locale_variable, safe_locale
from bastion.classify.verdict import Findings
from bastion.classify.words import Word

_SEPARATORS = frozenset({";", "&", "&&", "||", "|", "|&", "\n", ";;", ";&", ";;&", "(", ")", "{", "}", "!",
                         "if", "then", "fi", "elif", "else", "while", "until", "do", "done", "for", "in",
                         "case", "esac", "((", "))", "[[", "]]", "comment"})  # fmt: skip
_REDIRECTS = frozenset({"file_redirect", "heredoc_redirect", "herestring_redirect"})
_WRITE_REDIRECTS = frozenset({">", ">>", ">|", "&>", "&>>", "<>"})
_HARMLESS_OUTPUTS = frozenset({"/dev/null", "/dev/stdout", "/dev/stderr"})
_ARITH_COMPARE = frozenset({"-eq", "-ne", "-lt", "-le", "-gt", "-ge"})
_INTEGER = re.compile(r"[+-]?[0-9]+")
# for-loop variables become shell variables: only plain lowercase names, which bash never consults
_LOOP_VAR = re.compile(r"[a-z][a-z0-9_]*")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SAFE_VALUE = re.compile(r"[^\[$`\\]*")


@dataclass
class Context:
    """State shared by a command and every script nested in it (``bash -c``, substitutions)."""

    rules: CommandRules
    findings: Findings
    commands: int = 0
    depth: int = 0
    seen: list[str] = field(default_factory=list)


class Walker(WordDecoder):
    """Walks one script's tree; ``dialect`` is bash, posix (sh/dash) or zsh (argv-only scripts)."""

    def __init__(self, ctx: Context, source: bytes, dialect: str = "bash") -> None:
        self.ctx = ctx
        self.src = source
        self.dialect = dialect
        self.f = ctx.findings

    # statements -------------------------------------------------------------------------------

    def statement(self, node: Node) -> None:
        kind = node.type
        handler = _STATEMENTS.get(kind)
        if handler is not None:
            handler(self, node)
        elif (not node.is_named and kind in _SEPARATORS) or kind == "comment":
            return
        else:
            self.unknown(f"unsupported shell syntax {kind!r}: {_t(node)[:40]!r}")

    def children(self, node: Node) -> None:
        for child in node.children:
            self.statement(child)

    def structure(self, node: Node) -> None:
        if self.dialect == "zsh" and node.type not in ("program", "list", "pipeline"):
            self.unknown(f"zsh scripts may only be plain commands, not {node.type!r}")
            return
        self.children(node)

    def compound(self, node: Node) -> None:
        first = node.children[0].type if node.children else ""
        if first == "((":
            if self.dialect != "bash":
                self.unknown("'(( ))' is arithmetic only in bash")
            for child in node.children[1:-1]:
                self.arith(child)
        else:
            self.structure(node)

    def loop_for(self, node: Node) -> None:
        if self.dialect == "zsh":
            self.unknown("zsh scripts may only be plain commands")
            return
        for child in node.children:
            if child.type == "variable_name":
                if not _LOOP_VAR.fullmatch(_t(child)):
                    self.unknown(f"the loop sets the shell variable {_t(child)!r}")
            elif child.type in WORD_NODES:
                self.fields(child)
            else:
                self.statement(child)

    def loop_c_style(self, node: Node) -> None:
        self.unknown("a C-style for loop assigns shell variables")

    def case(self, node: Node) -> None:
        if self.dialect == "zsh":
            self.unknown("zsh scripts may only be plain commands")
            return
        for child in node.children:
            if child.type == "case_item":
                self.case_item(child)
            elif child.type in WORD_NODES:
                self.fields(child)
            else:
                self.statement(child)

    def case_item(self, node: Node) -> None:
        past_patterns = False
        for child in node.children:
            if child.type == ")":
                past_patterns = True
            elif not past_patterns and child.type in WORD_NODES:
                self.fields(child)
            elif not past_patterns and child.type in ("|", "("):
                continue
            else:
                self.statement(child)

    def assignment(self, node: Node) -> None:
        name_node = node.child_by_field_name("name") or node.children[0]
        name = _t(name_node)
        if name_node.type != "variable_name" or not _NAME.fullmatch(name):
            # bash evaluates a subscript (a[$(cmd)]=x) as arithmetic, which can run commands
            self.unknown(f"assigning {name[:40]!r} is not a plain variable assignment")
        elif not self.ctx.rules.assignment_allowed(name):
            self.unknown(f"assigning {name!r} can change what later commands do")
        values: list[Word] = []
        for child in node.children[1:]:
            if child.type in WORD_NODES:
                values.extend(self.fields(child))
            elif child.type not in ("=",):
                self.unknown(f"unsupported assignment {_t(node)[:40]!r}")
        if is_locale_variable(name):
            if not (len(values) == 1 and safe_locale(values[0].text or "")):
                self.unknown(f"'{_t(node)[:40]}' {LOCALE_RULE}")
        elif values and not (len(values) == 1 and values[0].text is not None and _SAFE_VALUE.fullmatch(values[0].text)):
            # a value such as a[$(cmd)] runs the command wherever bash later evaluates the variable as arithmetic
            self.unknown(f"'{_t(node)[:40]}' assigns a run-time value or one bash could evaluate as code")

    def refuse(self, node: Node) -> None:
        """declare/export/unset/…, and function definitions (which could shadow a read program)."""
        word = node.children[0].type if node.children else node.type
        reason = self.ctx.rules.write.get(word)
        if reason is not None and node.type != "function_definition":
            self.f.add_write(f"'{word}' {reason} ({self.ctx.rules.source}: {word})")
        else:
            self.unknown(f"{_t(node).split(None, 1)[0]!r} defines a function, which can shadow any command")

    def test_command(self, node: Node) -> None:
        if self.dialect != "bash":
            self.unknown("'[[ ]]' is bash syntax")
        for child in node.children:
            self.test_expr(child)

    def test_expr(self, node: Node) -> None:
        kind = node.type
        if kind in ("binary_expression", "unary_expression", "parenthesized_expression"):
            ops = [c for c in node.children if c.type == "test_operator"]
            for op in ops:
                self.test_operator(op, node)
            for child in node.children:
                if child.type != "test_operator":
                    self.test_expr(child)
        elif kind == "test_operator":
            self.test_operator(node, node)
        elif kind in WORD_NODES:
            self.fields(node)
        elif not node.is_named:
            return
        else:
            self.unknown(f"unsupported test syntax {_t(node)[:40]!r}")

    def test_operator(self, op: Node, expr: Node) -> None:
        name = _t(op)
        if name in ("-v", "-R"):
            self.unknown(f"'[[ {name} ]]' evaluates array subscripts, which can run commands")
        elif name in _ARITH_COMPARE:
            for operand in expr.children:
                if operand.type != "test_operator" and operand.is_named:
                    words = self.fields(operand)
                    if not (len(words) == 1 and words[0].text and _INTEGER.fullmatch(words[0].text)):
                        self.unknown(f"'{name}' evaluates {_t(operand)!r} as arithmetic, which can run commands")

    # redirections and commands ----------------------------------------------------------------

    def redirected(self, node: Node) -> None:
        body = node.child_by_field_name("body")
        extra: list[Word] = []
        for child in node.children:
            if child is body or (body is not None and child.id == body.id):
                continue
            if child.type in ("file_redirect", "heredoc_redirect", "herestring_redirect"):
                extra.extend(self.redirect(child))
            else:
                self.statement(child)
        if body is None:
            return
        if body.type == "command":
            self.command(body, extra)
        else:
            if extra:
                self.unknown("words after a redirection of a compound command")
            self.statement(body)

    def redirect(self, node: Node) -> list[Word]:
        """Check one redirection; return words that tree-sitter attached to it but belong to argv."""
        if node.type == "herestring_redirect":
            for child in node.children[1:]:
                self.fields(child)
            return []
        if node.type == "heredoc_redirect":
            self.heredoc(node)
            return []
        op = ""
        targets: list[Node] = []
        for child in node.children:
            if child.type == "file_descriptor":
                continue
            if not child.is_named:
                op = child.type
            else:
                targets.append(child)
        if not targets:
            self.unknown(f"redirection without a target: {_t(node)!r}")
            return []
        if not separated_by_blanks(self.src, targets):
            self.unknown(f"words are not separated the way bash separates them in {_t(node)[:40]!r}")
        dest = self.fields(targets[0])
        self.redirect_target(op, dest, _t(targets[0]))
        extra: list[Word] = []
        for child in targets[1:]:
            extra.extend(self.fields(child))
        return extra

    def redirect_target(self, op: str, dest: list[Word], raw: str) -> None:
        word = dest[0] if len(dest) == 1 else Word(None)
        text = word.text
        if op in _WRITE_REDIRECTS:
            if text not in _HARMLESS_OUTPUTS:
                self.f.add_write(f"'{op} {raw}' writes to a file (redirection)")
        elif op in (">&", "<&", "&>"):
            if text is None or not (text == "-" or text.isdigit()):
                self.f.add_write(f"'{op}{raw}' redirects output to a file (redirection)")
        elif op == "<":
            if text is None and (word.prefix == "" or "/dev/".startswith(word.prefix[:5])):
                self.unknown(f"input from {raw!r} is only known at run time")
            elif text is not None and re.match(r"/dev/(tcp|udp)/", text):
                self.f.add_write(f"'< {raw}' opens a network connection (redirection)")
        else:
            self.unknown(f"unsupported redirection {op!r}")

    def heredoc(self, node: Node) -> None:
        start = next((c for c in node.children if c.type == "heredoc_start"), None)
        body = next((c for c in node.children if c.type == "heredoc_body"), None)
        end = next((c for c in node.children if c.type == "heredoc_end"), None)
        if start is None or end is None:
            self.unknown("a here-document without a terminator")
            return
        raw = _t(start)
        delimiter = re.sub(r"[\\'\"]", "", raw)
        strip_tabs = any(c.type == "<<-" for c in node.children)
        body_lines = _t(body).split("\n") if body is not None else []
        if _t(end) != delimiter or any((line.lstrip("\t") if strip_tabs else line) == delimiter for line in body_lines):
            self.unknown("the here-document's end is ambiguous")
            return
        for child in node.children:
            if child.type in ("file_redirect", "herestring_redirect"):
                self.redirect(child)
            elif child.is_named and child.type not in ("heredoc_start", "heredoc_body", "heredoc_end"):
                self.statement(child)
        if body is not None and raw == delimiter:
            unparsed: list[bytes] = []
            pos = body.start_byte
            for child in body.children:
                if child.type != "heredoc_content":
                    unparsed.append(self.src[pos : child.start_byte])
                    pos = child.end_byte
                    self.pieces(child, quoted=True)
            unparsed.append(self.src[pos : body.end_byte])
            # tree-sitter leaves backquotes and $[…] in the body as plain text; bash runs them
            if hides_code(b"".join(unparsed).decode("utf-8")):
                self.unknown("the here-document's body holds a substitution that bash runs")

    def command(self, node: Node, extra: list[Word] | None = None) -> None:
        self.ctx.commands += 1
        if self.ctx.commands > MAX_SIMPLE_COMMANDS:
            self.unknown(f"more than {MAX_SIMPLE_COMMANDS} simple commands")
            return
        argv: list[Word] = []
        seen_name = False
        assignments: list[Node] = []
        parts = [c for c in node.children]
        # bash joins text with no blank in between into one word; tree-sitter sometimes splits it
        if not separated_by_blanks(self.src, parts, _REDIRECTS):
            self.unknown("words are not separated the way bash separates them")
            return
        for child in parts:
            kind = child.type
            if kind == "variable_assignment" and not seen_name:
                assignments.append(child)
            elif kind == "command_name":
                seen_name = True
                argv.extend(self.fields(child.children[0]) if child.children else [])
            elif kind in _REDIRECTS:
                argv.extend(self.redirect(child))
            elif kind in WORD_NODES and seen_name:
                argv.extend(self.fields(child))
            else:
                self.unknown(f"unsupported word {_t(child)[:40]!r} in a command")
        for a in assignments:
            self.assignment(a)
        if extra:
            argv.extend(extra)
        if argv:
            programs.check_argv(self, argv)


def run_script(ctx: Context, text: str, dialect: str) -> None:
    """Parse and walk one script (the command, or a ``bash -c`` script inside it)."""
    if ctx.depth >= MAX_DEPTH:
        ctx.findings.add_unknown("shells nested too deeply")
        return
    try:
        tree = parse(text)
    except Unparsable as exc:
        ctx.findings.add_unknown(str(exc))
        return
    ctx.depth += 1
    try:
        Walker(ctx, text.encode("utf-8"), dialect).statement(tree.root_node)
    finally:
        ctx.depth -= 1


_STATEMENTS = {
    "program": Walker.structure,
    "list": Walker.structure,
    "pipeline": Walker.structure,
    "subshell": Walker.structure,
    "compound_statement": Walker.compound,
    "do_group": Walker.structure,
    "if_statement": Walker.structure,
    "elif_clause": Walker.structure,
    "else_clause": Walker.structure,
    "while_statement": Walker.structure,
    "negated_command": Walker.structure,
    "for_statement": Walker.loop_for,
    "c_style_for_statement": Walker.loop_c_style,
    "case_statement": Walker.case,
    "redirected_statement": Walker.redirected,
    "command": Walker.command,
    "variable_assignment": Walker.assignment,
    "test_command": Walker.test_command,
    "declaration_command": Walker.refuse,
    "unset_command": Walker.refuse,
    "function_definition": Walker.refuse,
    "variable_assignments": Walker.structure,
}
