"""Every program on the read list has a READ and a WRITE example; every write program is WRITE."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.classify import classify, load_rules
from bastion.classify.upstream import fixed_environment

ROOT = Path(__file__).resolve().parents[1]
RULES = load_rules(ROOT / "policies/commands.yaml")

# program: (a READ use, a WRITE or UNKNOWN use)
EXAMPLES: dict[str, tuple[str, str]] = {
    "ls": ("ls -la /var/log", "ls > listing"),
    "cat": ("cat /etc/hostname", "cat a >> b"),
    "tac": ("tac f", "tac f > g"),
    "head": ("head -n 10 f", "head -5 f > g"),
    "tail": ("tail -100 /var/log/syslog", "tail f $(rm x)"),
    "wc": ("wc -l f", "wc -l f > g"),
    "cut": ("cut -d: -f1 /etc/passwd", "cut -f1 f >| g"),
    "tr": ("tr a-z A-Z < f", "tr a b < f > g"),
    "nl": ("nl f", "nl f > g"),
    "rev": ("rev f", "rev f > g"),
    "fold": ("fold -w 80 f", "fold f > g"),
    "paste": ("paste a b", "paste a b > c"),
    "column": ("column -t f", "column -t f > g"),
    "comm": ("comm a b", "comm a b > c"),
    "join": ("join a b", "join a b > c"),
    "expand": ("expand f", "expand f > g"),
    "diff": ("diff -u a b", "diff a b > c"),
    "cmp": ("cmp a b", "cmp a b > c"),
    "grep": ("grep -rn TODO --include=*.py .", "grep x f > g"),
    "egrep": ("egrep 'a|b' f", "egrep a f > g"),
    "fgrep": ("fgrep a f", "fgrep a f > g"),
    "rg": ("rg -i error /var/log", "rg --pre ./x pattern"),
    "od": ("od -c f", "od f > g"),
    "hexdump": ("hexdump -C f", "hexdump f > g"),
    "strings": ("strings f", "strings f > g"),
    "xxd": ("xxd -l 120 f", "xxd f out"),
    "file": ("file f", "file -C -m magic"),
    "stat": ("stat -c %s f", "stat f > g"),
    "readlink": ("readlink -f f", "readlink f > g"),
    "realpath": ("realpath f", "realpath f > g"),
    "basename": ("basename /a/b", "basename a > g"),
    "dirname": ("dirname /a/b", "dirname a > g"),
    "du": ("du -sh /var", "du > g"),
    "df": ("df -h", "df > g"),
    "tree": ("tree -L 2", "tree -o out.txt"),
    "sort": ("sort -k2,2 f", "sort -o out f"),
    "uniq": ("uniq -c f", "uniq in out"),
    "shuf": ("shuf -n 3 f", "shuf -o out f"),
    "base64": ("base64 -d f", "base64 --output out f"),
    "sha256sum": ("sha256sum -c SUMS", "sha256sum f > SUMS"),
    "sha1sum": ("sha1sum f", "sha1sum f > g"),
    "sha512sum": ("sha512sum f", "sha512sum f > g"),
    "md5sum": ("md5sum f", "md5sum f > g"),
    "cksum": ("cksum f", "cksum f > g"),
    "jq": ("jq .a x.json", "jq .a x.json > y"),
    "yq": ("yq .a x.yaml", "yq -i '.a = 1' x.yaml"),
    "zcat": ("zcat a.gz", "zcat a.gz > a"),
    "gzip": ("gzip -dc a.gz", "gzip -d a.gz"),
    "unzip": ("unzip -l a.zip", "unzip a.zip"),
    "tar": ("tar -tvzf a.tgz", "tar -xf a.tar"),
    "dd": ("dd if=/etc/hostname status=none", "dd if=a of=b"),
    "sed": ("sed -n 1p f", "sed -i s/a/b/ f"),
    "awk": ("awk '{print $1}' f", "awk '{system(\"id\")}' f"),
    "gawk": ("gawk 'NR > 5' f", "gawk '{print > \"out\"}' f"),
    "mawk": ("mawk '{print}' f", "mawk '{print | \"sh\"}' f"),
    "find": ("find . -name '*.log' -mtime -7", "find . -delete"),
    "fd": ("fd -t f --exec cat {}", "fd -x rm {}"),
    "echo": ("echo hello", "echo hi > f"),
    "printf": ("printf '%s\\n' a", "printf -v x %s a"),
    "true": ("true", "true > f"),
    "false": ("false || ls", "false > f"),
    ":": (":", ": > f"),
    "pwd": ("pwd", "pwd > f"),
    "cd": ("cd /tmp && ls", "cd /tmp && rm x"),
    "test": ("test -f /etc/passwd", "test -v 'a[$(id)]'"),
    "[": ("[ -d /tmp ]", "[ -R x ]"),
    "expr": ("expr 1 + 1", "expr 1 > f"),
    "seq": ("seq 10", "seq 10 > f"),
    "sleep": ("sleep 1", "sleep 1 > f"),
    "which": ("which ls", "which ls > f"),
    "type": ("type ls", "type ls > f"),
    "printenv": ("printenv HOME", "printenv > f"),
    "id": ("id -u", "id > f"),
    "whoami": ("whoami", "whoami > f"),
    "groups": ("groups", "groups > f"),
    "tty": ("tty", "tty > f"),
    "nproc": ("nproc", "nproc > f"),
    "getent": ("getent passwd root", "getent passwd > f"),
    "locale": ("locale", "locale > f"),
    "uname": ("uname -a", "uname > f"),
    "uptime": ("uptime", "uptime > f"),
    "free": ("free -m", "free > f"),
    "vmstat": ("vmstat 1 5", "vmstat > f"),
    "w": ("w", "w > f"),
    "who": ("who", "who > f"),
    "last": ("last -n 5", "last > f"),
    "lsblk": ("lsblk", "lsblk > f"),
    "lscpu": ("lscpu", "lscpu > f"),
    "ps": ("ps aux", "ps > f"),
    "date": ("date +%F", "date -s '2020-01-01'"),
    "hostname": ("hostname -f", "hostname evil"),
    "dmesg": ("dmesg -T", "dmesg -C"),
    "ss": ("ss -tlnp", "ss -K dst 1.2.3.4"),
    "journalctl": ("journalctl -u ssh -n 50", "journalctl --vacuum-size=1M"),
    "sysctl": ("sysctl net.ipv4.ip_forward", "sysctl -w net.ipv4.ip_forward=1"),
    "systemctl": ("systemctl status ssh", "systemctl restart ssh"),
    "ip": ("ip -br addr show", "ip route add 10.0.0.0/8 via 192.0.2.1"),
    "lsof": ("lsof -i :22", "lsof > f"),
    "netstat": ("netstat -tlnp", "netstat > f"),
    "dpkg": ("dpkg -l", "dpkg -i x.deb"),
    "rpm": ("rpm -qa", "rpm -e pkg"),
    "crontab": ("crontab -l", "crontab -r"),
    "docker": ("docker logs --tail 100 web", "docker rm -f web"),
    "kubectl": ("kubectl get pods -A", "kubectl delete pod x"),
    "git": ("git log --oneline -5", "git push"),
    "env": ("env", "env -i rm x"),
    "timeout": ("timeout 5 cat f", "timeout 5 rm f"),
    "nice": ("nice ls", "nice rm f"),
    "stdbuf": ("stdbuf -oL cat f", "stdbuf -oL rm f"),
    "time": ("time ls", "time rm f"),
    "command": ("command -v ls", "command rm f"),
    "builtin": ("builtin echo hi", "builtin eval 'rm f'"),
    "watch": ("watch -n 5 df -h", "watch rm f"),
    "xargs": ("find . -print0 | xargs -0 grep -l x", "find . | xargs rm"),
    "bash": ("bash -c 'ls | wc -l'", "bash -c 'rm f'"),
    "sh": ("sh -c 'ls'", "sh -c 'ls > f'"),
    "dash": ("dash -c 'ls'", "dash -c 'rm f'"),
    "zsh": ("zsh -c 'ls -la'", "zsh -c 'ls *(e:rm:)'"),
}

# options that write or run code, each beside a READ use of the same program
OPTION_EXAMPLES: list[tuple[str, str]] = [
    ("awk 'BEGIN{while ((getline l < \"/etc/hosts\") > 0) print l}'", "awk 'BEGIN{getline l < \"/inet/tcp/0/h/80\"}'"),
    ("awk '{ n++ } END { print n / 2 }' f", "awk '{ n++ / 2; system(\"id\") }' f"),
    # '/' after a keyword, ')', '$' or a regex: both readings are scanned; a regex's '/' inside brackets
    ("awk '{ print ($1 + $2) / 2 }' f", "awk 'BEGIN { print /\"/; system(\"touch X\") }'"),
    ("awk 'NR % 2 { print /foo/ ? \"y\" : \"n\" }' f", "awk 'BEGIN { print /#/; system(\"touch X\") }'"),
    ("awk '{ x = (a) / (b) / (c) }' f", "awk 'BEGIN { x = /a/ / 1; system(\"touch X\"); y = 1 / 1 }'"),
    ("awk '{ sub(/[^/]*$/, \"\"); print }' f", "awk 'BEGIN { print /[(]/ > \"X\" }'"),
    ("awk '$0 ~ /=/' f", "awk 'BEGIN { x = /=/; y = \"/\"; system(\"touch X\") } # \"'"),
    ("sysctl -a", "sysctl -f /tmp/params.conf"),
    ("rpm -q bash", "rpm -q -E '%(touch /tmp/x)'"),
    ("rpm -qa", "rpm -q --eval '%{_dbpath}'"),
    ("rpm -q --whatprovides sh", "rpm -q --pipe 'sh -c id' bash"),
    ("rpm -q --qf '%{NAME}' bash", "rpm -q -D '_dbpath %(touch /tmp/x)' bash"),
    ("fd -x cat", "fd --exec=touch"),
    ("fd -Hxcat", "fd -xtouch"),
    ("fd --exec-batch=cat", "fd --exec-batch=touch"),
    ("fd -X cat", "fd -Xtouch"),
    ("fd -t f -x cat {} \\; -X wc", "fd -x cat {} \\; -X touch"),
    ("yq -o json .a f", "yq -s '.name' f"),
    ("yq -y . f.yaml", "yq -y --in-place '. + {\"a\": 1}' f.yaml"),
    ("yq --indentless -y . f.yaml", "yq --in-p -y . f.yaml"),
    ("journalctl --cursor=s=1", "journalctl --cursor-file=/tmp/c"),
    ("journalctl -n 20", "journalctl --image=/tmp/x.raw"),
    ("timeout 5 ls", "nohup ls"),
    ("lsof -nP -i :22", "lsof -Db"),
    ("rpm -q -l bash", "rpm -q --initdb"),
    # rpm: only listed query options (popt aliases make other names --define); -V runs %verifyscript
    ("rpm -q --info bash", "rpm -q --i18ndomains '%(touch /tmp/x)' --info bash"),
    ("rpm -qa --qf '%{NAME}\\n'", "rpm -q --i18ndomains '%(touch /tmp/x)' --qf '%{SUMMARY}' bash"),
    ("rpm -qpl x.rpm", "rpm -qpl http://h/x.rpm"),
    ("rpm -q --whatprovides /bin/sh", "rpm -Va"),
    ("xargs -P 4 -n 1 wc -l", "xargs --process-slot-var=BASH_ENV bash -c ls"),
    # GNU sed ends a label, a branch target and v's version at whitespace or ';': what follows is a command
    ("sed -n ':a;N;$!ba;s/\\n/ /g;p' f", "sed ':a w /tmp/x'"),
    ("sed -n 'b end; p; :end' f", "sed -n '/x/b end w /tmp/x'"),
    ("sed 'v 4.2' f", "sed 'v 4.2 w /tmp/x'"),
    # gzip's -S/--suffix and -b take a value, which may look like -c, -l or -t
    ("gzip -l file", "gzip -Sc file"),
    ("gzip -S .z -c f", "gzip --suffix -c file"),
    ("gzip --suffix=.z -dc f.z", "gzip -S -c file"),
    ("gzip -9c f", "gzip -Sl f"),
    ("gzip -t a.gz", "gzip -St f"),
    ("gzip -lv a.gz", "gzip -bc f"),
    ("zcat -S .z f.z", "gzip --presume-input-tty -c f"),
    ("zcat -f a.gz", "zcat --__bindir /tmp/x f.gz"),
    # unzip: -P takes a value, -T and the extraction modifiers change files, options end at the archive
    # name, and a '-' inside the options undoes the next one
    ("unzip -l a.zip", "unzip -Pl a.zip"),
    ("unzip -P secret -p a.zip", "unzip -P -l a.zip"),
    ("unzip -lq a.zip", "unzip -l -T a.zip"),
    ("unzip -tq a.zip", "unzip -lT a.zip"),
    ("unzip -l a.zip -x foo", "unzip a.zip -l"),
    ("unzip -Z -1 a.zip", "unzip -l-l a.zip"),
    # env options that clear or remove variables undo the gateway's git and pager settings
    ("env LANG=C git log", "env -i git ls-files"),
    ("env -0", "env -u GIT_CONFIG_COUNT -u GIT_CONFIG_PARAMETERS git ls-files"),
    ("env TZ=UTC date", "env -u PAGER -u SYSTEMD_PAGER journalctl"),
    # find and fd: no shell behind a wrapper, and a word containing {} is only known at run time
    ("find . -exec nice cat {} \\;", "find . -exec env sh -c 'cat {}' \\;"),
    ("find . -exec timeout 5 cat {} \\;", "find . -exec timeout 5 bash -c 'cat {}' \\;"),
    ("find . -exec grep -H x {} \\;", "find . -name ';e*' -exec sed -n ':./;t{}' /etc/hostname \\;"),
    ("find . -type f -exec wc -l {} +", "find . -exec awk 'BEGIN{x=\"{}\"}' \\;"),
    ("fd -x cat", "fd -x env sh -c 'cat {}'"),
    # '+' ends -exec only right after '{}'; elsewhere it is an argument and the command runs on to ';'
    ("find . -type f -exec wc -l {} + -o -print", "find . -maxdepth 0 -exec sed -e s/a/X/ + -iname x -inum \\;"),
    ("find . -exec echo + {} \\;", "find . -maxdepth 0 -exec tree + -o -name \\;"),
    ("find . -exec grep -l \"a$x\" {} +", "find . -exec grep -l \"$x\" -delete \\;"),
    ("fd -X wc -l", "fd -x sed -n"),
    # tar's old-style bundle gives each value letter the next word; host:file contacts another host
    ("tar tvf archive.tar", "tar tfv host:a.tar"),
    ("tar tzf a.tgz", "tar tfz host:a.tgz"),
    ("tar tf ./x:y.tar", "tar tf a.tar -f host:b.tar"),
    ("tar --force-local -tf x:y.tar", "tar -t -f a.tar --file=host:b.tar"),
    # xxd's options end at the first file name; a word after it, even '-C', is the file it writes
    ("xxd -C f", "xxd in.txt -C"),
    ("xxd -s 10 -l 20 f", "xxd f -u"),
    ("xxd -p -", "xxd - -p"),
    # tree: in a bundle each value letter takes the next word; -L may take the digits after it
    ("tree -dL 2 /var", "tree -Lo 1 /tmp/out"),
    ("tree -L2 /etc", "tree -L2 -o x"),
    ("tree -a -L 3 -I node_modules", "tree -Io x /tmp/out"),
    ("tree --charset utf8 -L 1", "tree -LR 2"),
    ("tree --charsetX -o x", "tree --charset=x -o y"),
    # git: a manual viewer and per-path filters are chosen by the repository's configuration
    ("git log -1 '--format=%G?'", "git --help log"),
    ("git rev-list --count HEAD", "git -C /tmp/repo rev-list --help"),
    ("git rev-parse -h", "git rev-parse --help"),
    ("git rev-list --all", "git rev-list $x"),
    ("git ls-files -o --exclude-standard", "git ls-files -m"),
    ("git ls-files -s", "git ls-files -d"),
    # like tar's host:file, systemctl -H reaches another host with the target's ssh keys
    ("systemctl status ssh", "systemctl -H root@host status"),
    ("systemctl -M box status", "systemctl status --host=x"),
]

# commands that write or run code in a way an earlier version of the rules missed
NOT_READ: list[str] = [
    'find . -execdir echo "{}${x:-}" + -delete',
    'find . -exec echo "{}$x" + -fprint /tmp/x',
    'find . -exec echo {}"$x" + -fprint /tmp/x',
    "awk 'BEGIN { print \"x\" > \"/dev/stderr\" \"x\" }'",
    "awk 'BEGIN{getline x < \"/inet/tcp/0/127.0.0.1/80\"}'",
    "gawk 'BEGIN{getline < (\"/in\" \"et/tcp/0/h/80\")}'",
    "awk 'BEGIN{f=\"/inet/tcp/0/h/80\"; getline < f}'",
    "awk 'BEGIN{getline $1 < \"/inet6/udp/0/h/53\"}'",
    "awk 'BEGIN { x++ / 1; system(\"touch p\"); y = 1 / 1 }'",
    "awk 'function f(){ return /\"/; system(\"touch p\") } BEGIN { f() }'",
    "awk 'BEGIN { printf /\"/; system(\"touch p\") }'",
    "awk 'BEGIN { getline /\"/; system(\"touch p\") }'",
    "awk 'BEGIN { if (1) /\"/; system(\"touch p\") }'",
    "awk 'BEGIN { if (x) /a+/; system(\"touch p\"); y = 1/2 }'",
    "awk 'BEGIN { x = $/\"/; system(\"touch p\") }'",
    "awk '/[/]\"/; system(\"touch p\"); \"'",
    "awk '/[]/]\"/; system(\"touch p\"); \"'",
    "awk '/[[:alpha:]/]\"/; system(\"touch p\"); \"'",
    "awk '{ x = (a)/(b)/(c)/(d)/(e)/(f)/(g)/(h)/(i)/(j)/(k)/(l)/(m)/(n)/(o)/(p)/(q) }'",
    "sed -n ':a e touch /tmp/x' f",
    "sed '/y/T a e id' f",
    "sed ':a\tw /tmp/x'",
    "sed 'b end;e id'",
    "sed -n '/x/t\tx\ne id'",
    "sed ':x}w /tmp/x'",
    "sed -n 'ba w /tmp/x' f",
    "gzip -S l f",
    "gzip -S.c -d f",
    "unzip -l --l a.zip",
    "unzip -l -- -l a.zip",
    "unzip -l -o a.zip",
    "unzip -lf a.zip",
    "unzip -lu a.zip",
    "unzip -l -B a.zip",
    "env -i journalctl",
    "env -i systemctl status",
    "env --ignore-environment git log",
    "env --ign git log",
    "env --unset=PAGER journalctl",
    "env --unset PAGER journalctl",
    "env --uns=PAGER journalctl",
    "env -0i git log",
    "env - git log",
    "env GIT_DIR=/x git log",
    "env PAGER=less journalctl",
    "env LESSOPEN='|id' journalctl",
    "find . -exec nice bash -c 'cat {}' \\;",
    "find . -exec command sh -c 'cat {}' \\;",
    "find . -exec watch -n1 'cat {}' \\;",
    "find . -exec env sh -c 'cat \"$1\"' sh {} \\;",
    "find . -exec stdbuf -oL sh -c 'cat \"$1\"' sh {} \\;",
    "find . -exec time sh -c 'cat \"$1\"' sh {} \\;",
    "find . -exec xargs sh -c 'cat \"$1\"' sh \\;",
    "find . -exec sed -n {}p /etc/hostname \\;",
    "find . -exec sed -n -e 1p{} /etc/hostname \\;",
    "find . -execdir env bash -c 'cat {}' \\;",
    "find . -ok timeout 5 sh -c 'cat {}' \\;",
    "find . -exec ./{} \\;",
    "fd -x awk",
    "fd -X sed -n",
    "fd -x find",
    "fd --exec env sh -c 'cat \"$1\"' sh",
    "fd -x sed -n {/}p /etc/hostname",
    "fd -x sed -n 1p{//} /etc/hostname",
    "fd -x nice sh -c 'cat {}'",
    "find . -execdir sed -e s/a/b/ + -ipath ./x -inum \\;",
    "find . -ok sed -e s/a/b/ {} + -iname x -inum \\;",
    "find . -okdir cat {} + -fprint x -name \\;",
    "find . -exec echo x{} + -fprint x -name \\;",
    "find . -exec echo $x -delete \\;",
    "find . -exec echo * -delete \\;",
    "fd -x echo $x -X rm",
    "tar tvfz x:y.tgz",
    "tar t-f x:y.tgz",
    "tar * -t",
    "tree -Po x /tmp/out",
    "tree -Ho x /tmp/out",
    "tree -To x /tmp/out",
    "tree -L2o x",
    "rpm -qa --dbapi '%(touch /tmp/x)'",
    "rpm -q --httpproxy '%(touch /tmp/x)' -p h.rpm",
    "rpm -q --rebuilddbpath '%(touch /tmp/x)' bash",
    "rpm -q -r /tmp bash",
    "rpm -V bash",
    "git --help",
    "kubectl get --raw /api/v1/namespaces/x/services/http:svc:80/proxy/admin/reset",
    "git show-ref --help",
    "git log --help",
    "git rev-list HEAD --help",
    "git ls-files --modified",
    "git ls-files --deleted",
    "git ls-files --mod",
    "git ls-files --del",
    "git ls-files -dm",
]


def test_every_read_program_has_examples() -> None:
    assert sorted(set(RULES.read) - set(EXAMPLES)) == []


@pytest.mark.parametrize(("program", "read", "write"), [(p, r, w) for p, (r, w) in EXAMPLES.items()])
def test_read_example_is_read(program: str, read: str, write: str) -> None:
    verdict = classify(read, RULES)
    assert verdict.is_read, verdict.reasons


@pytest.mark.parametrize(("program", "read", "write"), [(p, r, w) for p, (r, w) in EXAMPLES.items()])
def test_write_example_is_not_read(program: str, read: str, write: str) -> None:
    verdict = classify(write, RULES)
    assert not verdict.is_read, verdict.reasons


@pytest.mark.parametrize("program", sorted(RULES.write))
def test_write_list_program_is_write_with_reason(program: str) -> None:
    verdict = classify(f"{program} x", RULES)
    assert verdict.verdict == "WRITE"
    assert f"'{program}'" in verdict.reasons[0] and "policies/commands.yaml" in verdict.reasons[0]


@pytest.mark.parametrize(("read", "write"), OPTION_EXAMPLES)
def test_option_examples(read: str, write: str) -> None:
    assert classify(read, RULES).is_read, classify(read, RULES).reasons
    assert not classify(write, RULES).is_read, classify(write, RULES).reasons


@pytest.mark.parametrize("command", NOT_READ)
def test_not_read(command: str) -> None:
    assert not classify(command, RULES).is_read


def test_git_signature_programs_are_neutralised() -> None:
    env = fixed_environment()
    forced = {env[f"GIT_CONFIG_KEY_{i}"]: env[f"GIT_CONFIG_VALUE_{i}"] for i in range(int(env["GIT_CONFIG_COUNT"]))}
    for key in ("gpg.program", "gpg.openpgp.program", "gpg.x509.program", "gpg.ssh.program"):
        assert forced[key] == "false"
        assert f"'{key}=false'" in env["GIT_CONFIG_PARAMETERS"]
