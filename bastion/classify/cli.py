"""Plain functions behind ``bastion policy classify --jsonl`` and ``bastion policy explain``."""

from __future__ import annotations

import json
from typing import TextIO

from bastion.classify import classify
from bastion.classify.rules import CommandRules
from bastion.classify.verdict import Verdict


def classify_jsonl(rules: CommandRules, stdin: TextIO, stdout: TextIO) -> int:
    """One JSON string per input line → one ``{"command","verdict","reasons"}`` object per output line."""
    for number, line in enumerate(stdin, start=1):
        if not line.strip():
            continue
        try:
            command = json.loads(line)
        except ValueError:
            command = None
        if isinstance(command, str):
            verdict = classify(command, rules)
        else:
            verdict = Verdict(line.rstrip("\n"), "UNKNOWN", [f"UNKNOWN: input line {number} is not a JSON string"])
        stdout.write(verdict.to_json() + "\n")
    stdout.flush()
    return 0


def explain_text(verdict: Verdict) -> str:
    """A short human-readable explanation: the verdict, then one reason per line."""
    lines = [f"{verdict.verdict}: {verdict.command}"]
    lines += [f"  - {reason}" for reason in verdict.reasons]
    return "\n".join(lines)
