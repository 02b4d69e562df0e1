"""Generic getopt-style option parsing driven by a ProgramRule.

GNU programs permute, so every argument that looks like an option before ``--`` is treated as one;
that over-approximates non-permuting programs, which is the safe direction. Long options may be
abbreviated to any unambiguous prefix, as getopt_long accepts. Style ``plain`` takes every word whole
(``-ps`` is one option); style ``short`` has bundled one-letter options only, so ``--`` and ``--x``
are not allowed options.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bastion.classify.rules import ProgramRule
from bastion.classify.words import Word

if TYPE_CHECKING:
    from bastion.classify.walker import Walker

_NUMERIC = re.compile(r"-[0-9]+")


@dataclass
class Parsed:
    """Options seen (canonical name → value word) and the operands, in order."""

    seen: dict[str, Word | None] = field(default_factory=dict)
    operands: list[Word] = field(default_factory=list)
    rest: list[Word] = field(default_factory=list)
    order: list[tuple[str, Word | None]] = field(default_factory=list)

    def values(self, *names: str) -> list[Word | None]:
        return [value for name, value in self.order if name in names]


def cite(w: Walker, rule: ProgramRule) -> str:
    return f"({w.ctx.rules.source}: {rule.name})"


def parse_options(w: Walker, rule: ProgramRule, args: list[Word], *, stop_at_operand: bool = False) -> Parsed:
    out = Parsed()
    i = 0
    end = False
    while i < len(args):
        arg = args[i]
        i += 1
        text = arg.text
        if (
            end
            or (text is not None and (text == "-" or not text.startswith("-")))
            or (text is None and not arg.may_flag)
        ):
            if stop_at_operand:
                out.rest = args[i - 1 :]
                return out
            out.operands.append(arg)
            continue
        if text is None:
            if not rule.any_flags or rule.guarded:
                w.unknown(f"an argument of '{rule.name}' known only at run time may become an option{_why(w, rule)}")
            out.operands.append(arg)
            continue
        if text == "--" and rule.style == "gnu":
            end = True
        elif rule.numeric and _NUMERIC.fullmatch(text):
            out.seen["-NUM"] = None
        elif rule.style == "plain" or text.startswith("--"):
            i = _long(w, rule, args, i, text, out)
        else:
            i = _short(w, rule, args, i, text, out)
    return out


def _take_value(w: Walker, rule: ProgramRule, args: list[Word], i: int, name: str) -> tuple[Word | None, int]:
    if i >= len(args):
        return None, i
    value = args[i]
    if value.splits and (not rule.any_flags or rule.guarded):
        w.unknown(f"the value of '{rule.name} {name}' may split into several words at run time{_why(w, rule)}")
    return value, i + 1


def _why(w: Walker, rule: ProgramRule) -> str:
    """Why a run-time word matters for a rule that otherwise accepts any option, with the rule cited."""
    if rule.write:
        option = min(rule.write)
        return f", and '{rule.name} {option}' {rule.write[option]} {cite(w, rule)}"
    if rule.requires:
        return f", and without {' or '.join(rule.requires)} '{rule.name}' {rule.requires_reason} {cite(w, rule)}"
    if rule.write_subcommands:
        sub = min(rule.write_subcommands)
        return f", and '{rule.name} {sub}' {rule.write_subcommands[sub]} {cite(w, rule)}"
    return f" {cite(w, rule)}"


def _resolve_long(w: Walker, rule: ProgramRule, name: str) -> str | None:
    if name in rule.options:
        return name
    if rule.style != "gnu":
        return None
    writes = [o for o in rule.write_longs if o.startswith(name)]
    if writes:
        return writes[0]
    matches = [o for o in rule.longs if o.startswith(name)]
    if len(matches) == 1:
        return matches[0]
    return None


def _long(w: Walker, rule: ProgramRule, args: list[Word], i: int, text: str, out: Parsed) -> int:
    name, eq, attached = text.partition("=") if rule.style == "gnu" else (text, "", "")
    canon = _resolve_long(w, rule, name)
    if canon is None:
        if not rule.any_flags:
            w.unknown(f"'{rule.name} {name}' is not an allowed option")
        out.seen[name] = None
        return i
    kind = rule.options.get(canon, "flag")
    value: Word | None = Word(attached, attached) if eq else None
    if kind == "value" and not eq:
        value, i = _take_value(w, rule, args, i, canon)
    _record(w, rule, canon, value, out, shown=name)
    return i


def _short(w: Walker, rule: ProgramRule, args: list[Word], i: int, text: str, out: Parsed) -> int:
    j = 1
    while j < len(text):
        opt = "-" + text[j]
        kind = rule.options.get(opt)
        if kind is None:
            if not rule.any_flags:
                w.unknown(f"'{rule.name} {opt}' is not an allowed option")
                return i
            kind = "flag"
        value: Word | None = None
        if kind in ("value", "optional"):
            rest = text[j + 1 :]
            if rest or kind == "optional":
                value = Word(rest, rest)
            else:
                value, i = _take_value(w, rule, args, i, opt)
            _record(w, rule, opt, value, out, shown=opt)
            return i
        _record(w, rule, opt, None, out, shown=opt)
        j += 1
    return i


def _record(w: Walker, rule: ProgramRule, canon: str, value: Word | None, out: Parsed, *, shown: str) -> None:
    reason = rule.write.get(canon)
    if reason is not None:
        spelled = f"'{rule.name} {shown}'" + ("" if shown == canon else f" (short for {canon})")
        w.f.add_write(f"{spelled} {reason} {cite(w, rule)}")
    out.seen[canon] = value
    out.order.append((canon, value))
