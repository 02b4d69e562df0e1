"""What `bastion demo` tells you to try, and `bastion demo --script`, which tries it with the real OpenSSH client.

Both use the same commands, so the script proves the printed walkthrough: each step prints ✓ or ✗ with what
was seen, and the script succeeds only when every step behaved as printed.
"""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import shutil
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from bastion.demo.setup import PEOPLE, DemoDir

READ = "ls -la"
MASKED = "cat app.env"
SECRET = "hunter2-demo-only"
WRITE = "echo deployed > release.txt"
DENIED = "rm README.txt"
DENY_REASON = "not during the demo"
OFF_LIMITS = "uptime"
STAGING_WRITE = "echo changed > staging.txt"
OWN_WRITE = "touch approver-2-was-here"
TIMEOUT_S = 120.0
HELD = re.compile(r"approval required: request (\S+) for")


def tool(name: str) -> str:
    """How another terminal calls `name`: plain when PATH finds it, else the one beside this Python (a venv's bin)."""
    beside = Path(sys.executable).parent / name
    return name if not beside.exists() or shutil.which(name) == str(beside) else str(beside)


def guide(demo: DemoDir, port: int, target_port: int) -> str:
    ssh = f"ssh -F {shlex.quote(str(demo.ssh_config))}"
    admin = f"{tool('bastion')} --config {shlex.quote(str(demo.config_path))}"
    people = "\n".join(f"    {p.host:<20} {p.name}: {p.about} (roles: {', '.join(p.roles)})" for p in PEOPLE)
    return f"""
bastion demo is running.
  bastion      127.0.0.1:{port}, data in {demo.data}
  demo target  127.0.0.1:{target_port}, embedded in this process (banner bastion_demo_target); registered as
               demo-web and staging-demo, with their files in {demo.target_root / 'home'}
  identities   ssh_config Host names; the host name says who you are, the login name is the target:
{people}

In another terminal:

  1. A read runs at once; secrets in the output are masked:
       {ssh} demo-web@reader.bastion {shlex.quote(READ)}
       {ssh} demo-web@reader.bastion {shlex.quote(MASKED)}

  2. A write is held until a human approves it (this ssh waits, up to 5 minutes):
       {ssh} demo-web@reader.bastion {shlex.quote(WRITE)}
     and from a third terminal, as an approver:
       {ssh} admin@approver-1.bastion approvals
       {ssh} admin@approver-1.bastion approve ID

  3. A denial: hold another write, deny it with a reason; the agent gets exit 77 and the reason:
       {ssh} demo-web@reader.bastion {shlex.quote(DENIED)}
       {ssh} admin@approver-2.bastion deny ID --reason {shlex.quote(DENY_REASON)}
     What no rule allows is denied at once (operator has no rule for demo-web):
       {ssh} demo-web@operator.bastion {shlex.quote(OFF_LIMITS)}

  4. An operator works on staging without approval, commands or an interactive shell:
       {ssh} staging-demo@operator.bastion {shlex.quote(STAGING_WRITE)}
       {ssh} -t staging-demo@operator.bastion

  5. Agents that must not block get exit 75 and the request id at once; nobody approves their own request:
       {ssh} -o SetEnv=BASTION_WAIT=0 demo-web@approver-2.bastion {shlex.quote(OWN_WRITE)}
       {ssh} admin@approver-2.bastion approve ID                       # refused: your own request
       {ssh} admin@approver-1.bastion approve ID                       # then re-run with:
       {ssh} -o SetEnv=BASTION_APPROVAL=ID demo-web@approver-2.bastion {shlex.quote(OWN_WRITE)}

  6. Replay a session (asciinema), and verify the audit trail:
       {ssh} admin@auditor.bastion sessions                            # session IDs
       {admin} replay ID
       {ssh} admin@auditor.bastion recording ID > s.cast && {tool('asciinema')} play s.cast
       {admin} audit verify --recordings

  {ssh} admin@approver-1.bastion help   lists the admin commands.  Ctrl-C stops the demo.
"""


@dataclass
class Ran:
    status: int
    out: str
    err: str


class Walkthrough:
    """Runs the printed steps with `ssh -F DIR/ssh_config …` and the bastion CLI, one ✓/✗ line per step."""

    def __init__(self, demo: DemoDir) -> None:
        self.demo = demo
        self.failed = 0
        self.passed = 0

    async def run(self) -> int:
        print(f"demo script: every ssh below runs as  ssh -F {self.demo.ssh_config} …", flush=True)
        steps: list[Callable[[], Awaitable[str]]] = [
            self.read, self.masked, self.approved, self.denied, self.off_limits, self.staging, self.no_wait,
            self.replay, self.audit]
        for step in steps:
            title = (step.__doc__ or step.__name__).strip()
            try:
                seen = await step()
            except (StepFailed, TimeoutError, OSError) as exc:
                self.failed += 1
                print(f"✗ {title}: {exc or type(exc).__name__}", flush=True)
            else:
                self.passed += 1
                print(f"✓ {title}: {seen}", flush=True)
        total = self.passed + self.failed
        verdict = f"all {total} steps passed" if not self.failed else f"{self.failed} of {total} steps failed"
        print(f"demo script: {verdict}", flush=True)
        return 0 if not self.failed else 1

    async def read(self) -> str:
        """read runs at once"""
        ran = await self.ssh("demo-web@reader.bastion", READ)
        expect(ran.status == 0 and "README.txt" in ran.out, f"'{READ}' should list README.txt with exit 0", ran)
        return f"'{READ}' → exit 0, README.txt listed"

    async def masked(self) -> str:
        """secrets in the output are masked"""
        ran = await self.ssh("demo-web@reader.bastion", MASKED)
        expect(ran.status == 0 and "DB_PASSWORD=[MASKED:" in ran.out and SECRET not in ran.out,
               "the password should arrive masked", ran)
        return f"'{MASKED}' → DB_PASSWORD=[MASKED:…]"

    async def approved(self) -> str:
        """write held, approved by approver-1, then run"""
        proc, request = await self.held("demo-web@reader.bastion", WRITE)
        approve = await self.ssh("admin@approver-1.bastion", f"approve {request}")
        expect(approve.status == 0 and "approved" in approve.out, "approver-1's approve should succeed", approve)
        ran = await finish(proc)
        release = self.demo.home("demo-web") / "release.txt"
        expect(ran.status == 0, "the approved write should exit 0", ran)
        expect(release.is_file() and release.read_text() == "deployed\n", f"{release} should say 'deployed'", ran)
        return f"'{WRITE}' held as {request}, approved, exit 0, release.txt written"

    async def denied(self) -> str:
        """write held, denied by approver-2"""
        proc, request = await self.held("demo-web@reader.bastion", DENIED)
        deny = await self.ssh("admin@approver-2.bastion", f"deny {request} --reason {shlex.quote(DENY_REASON)}")
        expect(deny.status == 0, "approver-2's deny should succeed", deny)
        ran = await finish(proc)
        expect(ran.status == 77 and DENY_REASON in ran.err, "the agent should get 77 with the reason", ran)
        expect((self.demo.home("demo-web") / "README.txt").is_file(), "README.txt should still be there", ran)
        return f"'{DENIED}' held as {request}, denied → exit 77 with the reason, nothing removed"

    async def off_limits(self) -> str:
        """policy denies what no rule allows"""
        ran = await self.ssh("demo-web@operator.bastion", OFF_LIMITS)
        expect(ran.status == 77 and "bastion: denied:" in ran.err, "operator on demo-web should get 77", ran)
        return f"operator '{OFF_LIMITS}' on demo-web → exit 77"

    async def staging(self) -> str:
        """operator writes on staging at once"""
        ran = await self.ssh("staging-demo@operator.bastion", STAGING_WRITE)
        changed = self.demo.home("staging-demo") / "staging.txt"
        expect(ran.status == 0 and changed.is_file(), "the write should run without approval", ran)
        return f"'{STAGING_WRITE}' on staging-demo → exit 0, no approval needed"

    async def no_wait(self) -> str:
        """BASTION_WAIT=0 returns 75 at once, and self-approval is refused"""
        ran = await self.ssh("demo-web@approver-2.bastion", OWN_WRITE, "SetEnv=BASTION_WAIT=0")
        match = HELD.search(ran.err)
        expect(ran.status == 75 and match is not None, "BASTION_WAIT=0 should give 75 and the request id", ran)
        assert match is not None
        own = await self.ssh("admin@approver-2.bastion", f"approve {match.group(1)}")
        expect(own.status == 77 and "your own request" in own.err, "approving one's own request is refused", own)
        return f"exit 75 with request {match.group(1)}; approver-2 approving it → exit 77 (own request)"

    async def replay(self) -> str:
        """replay prints the read's output"""
        ran = await self.ssh("admin@auditor.bastion", "sessions --json")
        expect(ran.status == 0, "the auditor should list sessions", ran)
        ids = [s["id"] for s in json.loads(ran.out)
               if s["subject"] == "reader" and s["target"] == "demo-web" and s["command"] == READ]
        expect(bool(ids), f"a session of reader running '{READ}' should be listed", ran)
        replay = await self.bastion("replay", ids[0], "--cat")
        expect(replay.status == 0 and "README.txt" in replay.out, "the replay should show the listing", replay)
        return f"bastion replay {ids[0]} --cat shows the listing"

    async def audit(self) -> str:
        """audit trail and recordings verify"""
        ran = await self.bastion("audit", "verify", "--recordings")
        expect(ran.status == 0, "bastion audit verify --recordings should exit 0", ran)
        return ran.out.strip().splitlines()[-1] if ran.out.strip() else "exit 0"

    async def held(self, where: str, command: str) -> tuple[asyncio.subprocess.Process, str]:
        """Starts a command that must be held; returns the waiting ssh and the request id from its stderr."""
        proc = await self.spawn(["ssh", "-F", str(self.demo.ssh_config), where, command])
        assert proc.stderr is not None
        seen = b""
        while (match := HELD.search(seen.decode(errors="replace"))) is None:
            line = await asyncio.wait_for(proc.stderr.readline(), TIMEOUT_S)
            if not line:
                ran = await finish(proc)
                raise StepFailed(f"'{command}' should be held, but ssh ended: exit {ran.status}, {short(seen)}")
            seen += line
        return proc, match.group(1)

    async def ssh(self, where: str, command: str, *options: str) -> Ran:
        extra = [arg for option in options for arg in ("-o", option)]
        return await finish(await self.spawn(["ssh", "-F", str(self.demo.ssh_config), *extra, where, command]))

    async def bastion(self, *args: str) -> Ran:
        return await finish(await self.spawn([sys.executable, "-m", "bastion", "--config",
                                              str(self.demo.config_path), *args]))

    @staticmethod
    async def spawn(argv: list[str]) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.DEVNULL,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


class StepFailed(Exception):
    """A step did not behave as printed."""


async def finish(proc: asyncio.subprocess.Process) -> Ran:
    try:
        out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise StepFailed(f"no answer within {TIMEOUT_S:.0f}s") from None
    assert proc.returncode is not None
    return Ran(proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"))


def expect(condition: bool, what: str, ran: Ran) -> None:
    if not condition:
        raise StepFailed(f"{what}; got exit {ran.status}, stdout {short(ran.out)}, stderr {short(ran.err)}")


def short(text: str | bytes) -> str:
    shown = text.decode(errors="replace") if isinstance(text, bytes) else text
    shown = " ".join(shown.split())
    return repr(shown if len(shown) <= 200 else shown[:200] + "…")
