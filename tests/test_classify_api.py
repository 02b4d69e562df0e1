"""The public API: rules loading, verdict shape, and the exact upstream command line."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from bastion.classify import Verdict, classify, load_rules, safe_locale, upstream_command
from bastion.errors import ConfigError, Refused

ROOT = Path(__file__).resolve().parents[1]
RULES = load_rules(ROOT / "policies/commands.yaml")


def test_verdict_json_shape() -> None:
    verdict = classify("ls", RULES)
    assert isinstance(verdict, Verdict) and verdict.is_read
    assert verdict.to_dict() == {"command": "ls", "verdict": "READ", "reasons": verdict.reasons}


def test_never_raises_on_non_text() -> None:
    assert classify(None, RULES).verdict == "UNKNOWN"  # type: ignore[arg-type]
    assert classify("", RULES).verdict == "UNKNOWN"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("read: {ls: {bogus: 1}}", "read.ls.bogus"),
        ("read: {ls: {flags: [not-an-option]}}", "read.ls.flags"),
        ("read: {ls: {handler: nope}}", "read.ls.handler"),
        ("version: 2", "version"),
        ("read: {rm: {}}\nwrite: {rm: deletes}", "both the read and the write list"),
        ("- a list", "mapping"),
        ("read: [", "invalid YAML"),
    ],
)
def test_bad_rules_are_one_line_config_errors(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "commands.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_rules(path)
    assert key in str(err.value) and "\n" not in str(err.value)


def test_missing_rules_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_rules(tmp_path / "none.yaml")


def _argv_seen_by_posix_shell(line: str) -> list[str]:
    return shlex.split(line)


def test_upstream_runs_exactly_the_text_without_profile() -> None:
    text = "ls -la 'a b' | grep \"$(echo x)\"; echo '\\'' $'\\n'"
    argv = _argv_seen_by_posix_shell(upstream_command(text))
    assert argv[:3] == ["exec", "/usr/bin/env", "-i"]
    assert argv[-5:] == ["bash", "--noprofile", "--norc", "-c", text]
    env = dict(a.split("=", 1) for a in argv[3:-5])
    assert env["PATH"] == "/usr/sbin:/usr/bin:/sbin:/bin"
    assert env["GIT_CONFIG_KEY_0"] == "core.fsmonitor" and env["GIT_PAGER"] == "cat"


def test_upstream_through_a_real_shell(tmp_path: Path) -> None:
    text = "printf '%s|' \"$PATH\" $'a\\tb' \"$GIT_CONFIG_COUNT\""
    line = upstream_command(text).replace("exec ", "", 1)
    result = subprocess.run(["sh", "-c", line], capture_output=True, text=True, check=True)
    assert result.stdout == "/usr/sbin:/usr/bin:/sbin:/bin|a\tb|10|"


def test_upstream_without_bash_is_plain_argv_only() -> None:
    argv = shlex.split(upstream_command("ls -la 'a b'", shell="sh"))
    assert argv[-3:] == ["ls", "-la", "a b"]
    for text in ("ls | wc", "ls > f", "ls $HOME", "ls *", "A=1 ls", "ls; ls"):
        with pytest.raises(Refused):
            upstream_command(text, shell="sh")


def test_upstream_extra_env_cannot_override_fixed_values() -> None:
    env = dict(
        a.split("=", 1) for a in shlex.split(upstream_command("ls", env={"PATH": "/tmp", "TERM": "xterm"}))[3:-5]
    )
    assert env["PATH"] == "/usr/sbin:/usr/bin:/sbin:/bin" and env["TERM"] == "xterm"


@pytest.mark.parametrize(
    ("value", "safe"),
    [("C", True), ("POSIX", True), ("C.UTF-8", True), ("en_US.utf8", True), ("de_DE.UTF-8@euro", True),
     ("zh_TW.BIG5", False), ("zh_CN.GBK", False), ("en_US", False), ("", False), ("C.UTF-8\nx", False)],
)  # fmt: skip
def test_safe_locale(value: str, safe: bool) -> None:
    assert safe_locale(value) is safe


def test_upstream_drops_unsafe_locales() -> None:
    env = {"LANG": "zh_TW.BIG5", "LC_CTYPE": "zh_CN.GBK", "LC_ALL": "C.UTF-8", "TERM": "xterm"}
    words = shlex.split(upstream_command("ls", env=env))
    assert "LC_ALL=C.UTF-8" in words and "TERM=xterm" in words
    assert not any(w.startswith(("LANG=", "LC_CTYPE=")) for w in words)


def test_git_reads_neutralise_repository_config(tmp_path: Path) -> None:
    """git log in a repo whose config names a pager and fsmonitor still runs neither."""
    if subprocess.run(["git", "--version"], capture_output=True).returncode != 0:
        pytest.skip("git not installed")
    repo = tmp_path / "repo"
    marker = tmp_path / "pwned"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=a", "-c", "user.email=a@b", "commit", "-q",
                    "--allow-empty", "-m", "x"], check=True)  # fmt: skip
    for key in ("core.fsmonitor", "core.pager", "pager.log"):
        subprocess.run(["git", "-C", str(repo), "config", key, f"touch {marker}"], check=True)
    text = f"git -C {shlex.quote(str(repo))} log -1 --oneline"
    assert classify(text, RULES).is_read
    line = upstream_command(text).replace("exec ", "", 1)
    subprocess.run(["script", "-qec", f"sh -c {shlex.quote(line)}", "/dev/null"], capture_output=True, check=False)
    subprocess.run(["sh", "-c", line], capture_output=True, check=True)
    assert not marker.exists()
