"""Property tests: a write construct spliced into a READ command is never READ; nothing raises."""

from __future__ import annotations

import io
import json
import shlex
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bastion.classify import classify, load_rules, upstream_command
from bastion.classify.cli import classify_jsonl, explain_text

RULES = load_rules(Path(__file__).resolve().parents[1] / "policies/commands.yaml")

READ_COMMANDS = [
    "ls -la",
    "cat /etc/hostname",
    "grep -r x .",
    "echo hi",
    "df -h",
    "git log -3",
    "sort f",
    "head -n 5 f",
    "find . -name x",
    "sed -n 1p f",
    "awk '{print $1}' f",
    "uname -a",
    "wc -l f",
    "true",
]
SPLICES = [
    "; rm x",
    " > f",
    " $(rm x)",
    " | tee f",
    " `rm x`",
    " <(rm x)",
    " && rm x",
    " || rm x",
    " & rm x",
    "\nrm x",
    " >> f",
    " | sh",
    ' "$(rm x)"',
    " >(rm x)",
]
settings.register_profile("classify", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("classify")


def test_read_commands_are_read() -> None:
    for command in READ_COMMANDS:
        assert classify(command, RULES).is_read, command


@given(st.sampled_from(READ_COMMANDS), st.sampled_from(SPLICES), st.sampled_from(READ_COMMANDS))
def test_spliced_write_is_never_read(before: str, splice: str, after: str) -> None:
    for command in (before + splice, before + splice + "; " + after, f"{after} && {before}{splice}"):
        assert not classify(command, RULES).is_read, command


@given(st.sampled_from(READ_COMMANDS), st.sampled_from(["rm x", "ls > f", "tee f", "sh"]))
def test_write_inside_substitution_or_shell_is_never_read(read: str, write: str) -> None:
    for command in (
        f"echo $({write})",
        f"{read} $({write})",
        "bash -c " + shlex.quote(f"{read}; {write}"),
        f"({write})",
    ):
        assert not classify(command, RULES).is_read, command


@given(st.text(max_size=200))
def test_arbitrary_text_never_raises(text: str) -> None:
    verdict = classify(text, RULES)
    assert verdict.verdict in ("READ", "WRITE", "UNKNOWN")
    assert verdict.reasons


@given(st.text(alphabet=" \t\n;|&<>()$`'\"\\{}[]*?~=#!-abcrmls0123456789", max_size=80))
def test_shell_noise_never_raises(text: str) -> None:
    assert classify(text, RULES).verdict in ("READ", "WRITE", "UNKNOWN")


@given(st.text(max_size=100).filter(lambda t: "\0" not in t))
def test_upstream_command_quotes_any_text(text: str) -> None:
    line = upstream_command(text)
    assert line.startswith("exec /usr/bin/env -i ")
    assert "bash --noprofile --norc -c" in line


def test_jsonl_bad_lines_are_unknown_not_crashes() -> None:
    out = io.StringIO()
    assert classify_jsonl(RULES, io.StringIO('"ls"\nnot json\n42\n"rm x"\n'), out) == 0
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["verdict"] for r in rows] == ["READ", "UNKNOWN", "UNKNOWN", "WRITE"]
    assert set(rows[0]) == {"command", "verdict", "reasons"}
    assert explain_text(classify("rm x", RULES)).startswith("WRITE: rm x\n  - WRITE: 'rm'")
