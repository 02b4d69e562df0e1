"""Published and home-grown bypass attempts: none may classify READ; the safe forms stay READ."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.classify import classify, load_rules

RULES = load_rules(Path(__file__).resolve().parents[1] / "policies/commands.yaml")

NOT_READ = [
    # decoding: what bash runs, not what the text looks like
    "\\rm -rf x",
    "r''m x",
    "r\\m x",
    "$'\\x72\\x6d' x",
    "$'\\162\\155' x",
    "find . $'-delete'",
    "find . '-de'lete",
    "find . -e\\xec rm {} \\;",
    "sed -\\i s/a/b/ f",
    "$'rm\\0junk' x",
    # run-time words that could become options or programs
    "find . $X",
    "find . -name x $X",
    "find * -print",
    "sort $OPTS f",
    "sort * ",
    "git $SUB",
    "$CMD",
    "${CMD}",
    '"$CMD" x',
    "`echo rm` x",
    "$(echo rm) x",
    "ls; $((1)) x",
    # run-time words reach programs that accept any option but have some that write
    "file {-C,} -m magic",
    "echo -C | xargs file -m magic",
    "dmesg $(echo -c)",
    "dmesg {-c,}",
    "dmesg *",
    "dmesg -f {kern,-c}",
    "journalctl {--vacuum-size=1,}",
    "ss {-K,}",
    "echo -K | xargs ss",
    "rg {--pre=sh,} x",
    "yq {-i,} .a f",
    "tree {-o,/tmp/x}",
    "rpm -q {-e,} x",
    # substitutions everywhere are walked
    "echo ${x:-$(rm f)}",
    'echo "$(rm f)"',
    "cat <<EOF\n$(rm f)\nEOF",
    'cat <<< "$(rm f)"',
    "case $(rm f) in *) ;; esac",
    "for i in `rm f`; do :; done",
    "[[ -f $(rm f) ]]",
    "ls <(rm f)",
    "ls >(rm f)",
    "echo $(( $(rm f) ))",
    "echo `echo \\`touch /tmp/x\\``; echo done",
    'echo "`echo \\`touch /tmp/x\\``"',
    "echo `echo \\$(touch /tmp/x)`",
    # shell state and code execution
    "eval ls",
    "exec ls",
    ". ./x",
    "source x",
    "trap 'rm f' EXIT",
    "alias ls='rm -rf /'",
    "f() { rm x; }; f",
    "ls() { rm x; }; ls",
    "x=1; echo $((x))",
    "a=1; [[ $a -eq 1 ]]",
    "[[ -v 'a[$(id)]' ]]",
    "echo ${!x}",
    "echo ${x@P}",
    "echo ${x=1}",
    "echo ${a[$i]}",
    "echo ${x:$o:1}",
    "LC_A='x[$(touch /tmp/p)]'; echo ${TERM:LC_A}",
    "echo ${TERM:0:LC_A}",
    'echo "${TERM:0:LC_A}"',
    "echo ${@:LC_A}",
    "echo ${a[@]:0:n}",
    "echo ${TERM:1+1}",
    "for PATH in /tmp; do ls; done",
    "IFS=/ ; ls",
    "PATH=/tmp ls",
    "LD_PRELOAD=x ls",
    "BASH_ENV=x bash -c ls",
    "GIT_DIR=/x git log",
    "export A=1",
    "declare -x A=1",
    "env GIT_CONFIG_COUNT=1 git log",
    "env -S 'rm x'",
    "command -p rm x",
    # redirections
    "ls > /tmp/x",
    "ls >> x",
    "ls &> x",
    "ls >& x",
    "ls 2> x",
    "ls >| x",
    "cat <> x",
    "exec 3>x",
    "cat < /dev/tcp/1.2.3.4/80",
    "ls > $OUT",
    "ls {fd}> x",
    # shells and wrappers
    "bash",
    "bash -s",
    "bash x.sh",
    'bash -c "$S"',
    "sh -c 'ls > f'",
    "bash -c 'bash -c \"rm f\"'",
    "zsh -c 'ls $~x'",
    "sh -c \"echo \\$'\\\\x72'\"",
    "sudo ls",
    "xargs -I{} sh -c 'cat {}'",
    "find . -exec sh -c 'cat {}' \\;",
    "find . -execdir bash -c id \\;",
    "timeout 5 $X",
    "watch -x rm f",
    "nohup sh",
    "env ls > f",
    # program-specific writes
    "sed 'w out' f",
    "sed 's/a/b/w out' f",
    "sed '1e id' f",
    "sed 's/a/id/e' f",
    "sed -f s.sed f",
    "sed --in-place=.bak s/a/b/ f",
    "sed -ni p f",
    "awk '{print > $2}' f",
    "awk '{print >> \"x\"}' f",
    "awk '\"id\" | getline' f",
    "awk -f p.awk f",
    "awk '/x/{system(\"id\")}' f",
    'awk \'/"/; system("id")\' f',
    "sort --compress=sh f",
    "sort --o=x f",
    "tar -tf host:a.tar",
    "tar xf a.tar",
    "tar -t --to-command=sh -f a",
    "git -c core.pager=sh log",
    "git --no-pager -c x=y log",
    "git log --output=x",
    "git log --out=x",
    "git log -p",
    "git show",
    "git diff",
    "git status",
    "git blame f",
    "git branch new",
    "git tag v1",
    "git config user.name x",
    "git remote show origin",
    "git cat-file --textconv HEAD:f",
    "rg --pre=sh x",
    "rg --search-zip x",
    "dd of=/dev/sda",
    "dd if=a of=b",
    "tree -R",
    "date 010100002020",
    "uniq a b",
    "docker run x",
    "kubectl --kubeconfig=k get pods",
    "systemctl stop x",
    "ip link set eth0 down",
    "journalctl --rot",
    "printf -v PATH x",
    "test -v x",
    "test $x = y",
    # paths and names
    "./ls",
    "/tmp/ls",
    "/usr/local/bin/ls",
    "/bin/../tmp/ls",
    "l\u200bs",
    "ls\u00a0-la",
    "LS",
    # syntax tree-sitter and bash might read differently
    "ls\r; rm x",
    "ls \x0b rm",
    "cat <<EOF\nx\nEOF \nrm x\nEOF",
    "ls # ; rm x\nrm y",
    "coproc rm x",
    "(( $(rm x) ))",
    "ls |& sh",
]

READ = [
    "ls -la /var/log | grep -i err",
    "cat /etc/hostname",
    "echo $HOME",
    'ls "$HOME"',
    "ls ~/x",
    "find /var/log -name '*.log' -exec grep -l error {} +",
    "sort -k2 f | uniq -c | sort -rn | head",
    "grep -E 'a|b' f || true",
    "cat <<'EOF'\n$(rm x)\nEOF",
    "echo '`rm x`'",
    'echo "a && b"',
    "diff <(sort a) <(sort b)",
    'for f in /var/log/*.log; do wc -l "$f"; done',
    "ls 2>&1 | head",
    "ls 2>/dev/null",
    "LC_ALL=C sort f",
    "TZ=UTC date",
    "/usr/bin/ls",
    "/bin/cat f",
    "echo $'\\x72\\x6d'",
    "cat${IFS}/etc/passwd",
    "timeout 5 tail -n 20 f",
    "git -C /srv/app log -3",
    "git --no-pager log --oneline",
    "bash -c 'ls && pwd'",
    "if [ -f x ]; then cat x; else echo no; fi",
    "while false; do :; done",
    "case x in a) ls;; *) pwd;; esac",
    "echo $((1 + 2))",
    "[[ 1 -eq 1 ]]",
    "sed -n '/x/{p;q}' f",
    "awk -F: '$3 >= 1000 {print $1}' /etc/passwd",
    "sed 's#a#b#g' f",
    "find . -maxdepth 1 -type f -newer /etc/passwd",
    "xargs -0 grep -l x < list",
    "ls -- -rf",
    "ip -br a",
    "ip route show",
    "systemctl status --no-pager ssh",
    "journalctl -u ssh --since today",
    "git branch --list 'feat/*'",
    "git config --get user.name",
    "git log --format='%h %s' -n 5",
    "# just a comment",
    "stat -c '%a %n' /etc/passwd",
    "tar tvf a.tar",
    "ls {a,b}",
    "echo `date`",
    "echo ${TERM:1:2} ${TERM: -1} ${TERM:-x}",
    "dmesg -T -- $X",
    "rg -n x /var/log/*.log",
]


@pytest.mark.parametrize("command", NOT_READ)
def test_bypass_is_not_read(command: str) -> None:
    verdict = classify(command, RULES)
    assert not verdict.is_read, verdict.reasons


@pytest.mark.parametrize("command", READ)
def test_safe_form_is_read(command: str) -> None:
    verdict = classify(command, RULES)
    assert verdict.is_read, verdict.reasons


def test_reason_names_word_and_rule() -> None:
    verdict = classify("sed -i 's/a/b/' f", RULES)
    assert verdict.reasons == ["WRITE: 'sed -i' edits files in place (policies/commands.yaml: sed)"]


def test_limits() -> None:
    assert classify("ls " + "a" * (16 * 1024), RULES).verdict == "UNKNOWN"
    assert classify("ls; " * 300, RULES).verdict == "UNKNOWN"
    assert classify("ls; " * 200, RULES).is_read


def test_deep_nesting_does_not_raise() -> None:
    for command in ["(" * 3000 + "ls" + ")" * 3000, "$(" * 2000 + "ls" + ")" * 2000, "bash -c " * 50 + "ls"]:
        assert classify(command, RULES).verdict in ("UNKNOWN", "WRITE")
