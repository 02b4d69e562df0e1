"""Bastion side by side with direct OpenSSH, on loopback, in one run.

    .venv/bin/python scripts/bench.py            # everything, printed as a table
    .venv/bin/python scripts/bench.py --json     # one JSON object
    .venv/bin/python scripts/bench.py --quick    # a smaller run (a minute or so)
    .venv/bin/python scripts/bench.py classify   # the classifier only

It starts its own OpenSSH sshd (the target) and `bastion serve` in a temporary directory, as the integration
tests do, and drives both with the real `ssh` client: through the bastion with an agent certificate, and
straight to the same sshd with the sshd's client key.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncssh
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

from bench_classify import DEFAULT_CORPUS, bench_classify  # noqa: E402
from bench_masking import bench_masking  # noqa: E402

from tests.harness import TESTER_ROLE, Agent, Bastion, Sshd, rss_kb  # noqa: E402

UNMASKED_ROLE = "bench-unmasked"
# One realistic log line, repeated: output the maskers have to scan, cheap for the target to produce.
LOG_LINE = ("2024-05-17T10:22:31.512Z INFO [worker-7] GET /api/v1/items/48213 from 10.1.2.3 status=200 "
            "bytes=5123 took=0.012s")


@dataclass(frozen=True)
class Sizes:
    latency_runs: int
    throughput_mb: int
    agents: int
    commands: int
    approvals: int
    masking_mb: int
    direct_commands: int


FULL = Sizes(latency_runs=30, throughput_mb=500, agents=200, commands=20, approvals=5, masking_mb=64,
             direct_commands=2)
QUICK = Sizes(latency_runs=10, throughput_mb=100, agents=20, commands=5, approvals=2, masking_mb=8,
              direct_commands=2)


@dataclass
class Rig:
    """A target sshd and a bastion in front of it, with the ssh command lines for both routes."""

    sshd: Sshd
    bastion: Bastion
    known_hosts: Path

    def via_bastion(self, agent: Agent, command: str) -> list[str]:
        return [*self.bastion.ssh_args(agent, "bench"), command]

    def direct(self, command: str) -> list[str]:
        return ["ssh", "-F", "/dev/null", "-p", str(self.sshd.port), "-o", "BatchMode=yes",
                "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "StrictHostKeyChecking=yes",
                "-o", "IdentitiesOnly=yes", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=20",
                "-i", str(self.sshd.root / "client_key"),
                f"{self.sshd.user}@127.0.0.1", command]


@contextmanager
def rig(root: Path, workers: int = 1) -> Iterator[Rig]:
    sshd = Sshd(root / "sshd").start()
    bastion = Bastion(root / "bastion").init()
    try:
        bastion.add_role(UNMASKED_ROLE, {"description": "Benchmark: the tester role with masking off.",
                                         "targets": [{"name": "everything", "match": {"names": ["*"]},
                                                      "read": "allow", "write": "allow", "shell": "allow"}]})
        masking_path = bastion.dir / "policies" / "masking.yaml"
        masking = yaml.safe_load(masking_path.read_text())
        masking["overrides"] = [*(masking.get("overrides") or []), {"roles": [UNMASKED_ROLE], "enabled": False}]
        masking_path.write_text(yaml.safe_dump(masking, sort_keys=False))
        bastion.add_target("bench", sshd)
        bastion.serve("--workers", str(workers))
        known_hosts = root / "direct_known_hosts"
        known_hosts.write_text(f"[127.0.0.1]:{sshd.port} {sshd.host_key}\n")
        yield Rig(sshd, bastion, known_hosts)
    finally:
        bastion.stop()
        sshd.stop()


def _timed(args: list[str]) -> tuple[float, subprocess.CompletedProcess[bytes]]:
    started = time.perf_counter()
    result = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, timeout=300)
    return time.perf_counter() - started, result


def _check(result: subprocess.CompletedProcess[bytes], what: str) -> None:
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed ({result.returncode}): {result.stderr.decode(errors='replace')}")


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def latency(r: Rig, agent: Agent, runs: int) -> dict[str, Any]:
    """connect + authenticate + `true`, alternating the two routes so both see the same machine."""
    through, direct = [], []
    for i in range(runs):
        pair = [("bastion", r.via_bastion(agent, "true")), ("direct", r.direct("true"))]
        for name, args in pair if i % 2 == 0 else reversed(pair):
            elapsed, result = _timed(args)
            _check(result, f"{name} true")
            (through if name == "bastion" else direct).append(elapsed)
    med_b, med_d = statistics.median(through), statistics.median(direct)
    return {"runs": runs, "bastion_median_s": round(med_b, 4), "bastion_p95_s": round(_p(through, 0.95), 4),
            "direct_median_s": round(med_d, 4), "direct_p95_s": round(_p(direct, 0.95), 4),
            "ratio": round(med_b / med_d, 3)}


def _stream(args: list[str], size: int) -> float:
    """MB/s of `size` bytes read from the command's stdout as fast as possible (connection setup included)."""
    started = time.perf_counter()
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    received = 0
    buffer = bytearray(1 << 20)
    while n := proc.stdout.readinto(buffer):
        received += n
    elapsed = time.perf_counter() - started
    if proc.wait(60) != 0 or received != size:
        raise RuntimeError(f"stream ended with {proc.returncode} after {received} of {size} bytes")
    return size / (1024 * 1024) / elapsed


def throughput(r: Rig, masked: Agent, unmasked: Agent, size_mb: int) -> dict[str, Any]:
    size = size_mb * 1024 * 1024
    command = f"yes '{LOG_LINE}' | head -c {size}"
    direct = _stream(r.direct(command), size)
    on = _stream(r.via_bastion(masked, command), size)
    off = _stream(r.via_bastion(unmasked, command), size)
    return {"mb": size_mb, "direct_mb_s": round(direct, 1), "masking_on_mb_s": round(on, 1),
            "masking_off_mb_s": round(off, 1), "ratio_masking_on": round(on / direct, 3),
            "ratio_masking_off": round(off / direct, 3)}


def _tree_rss_kb(pid: int) -> int:
    """Resident memory of a process and its children (the workers of `serve --workers`)."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    kids = [int(child) for child in children.read_text().split()] if children.exists() else []
    return rss_kb(pid) + sum(_tree_rss_kb(kid) for kid in kids)


class _PeakRss:
    """Samples the resident memory of a process and its children every 50 ms while in use."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak_kb = pid, _tree_rss_kb(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak_kb = max(self.peak_kb, _tree_rss_kb(self.pid))

    def __enter__(self) -> _PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


Route = Callable[[int, str], list[str]]  # (agent number, command) -> the ssh command line


def _load(routes: list[Route], commands: int, bastion_pid: int | None) -> dict[str, Any]:
    """Every agent at once, each running `commands` commands one after another, timed after one untimed round
    (all agents at once too) that opens the upstream pool: the measure is a gateway in service, not its start."""
    times: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    warm, start = threading.Barrier(len(routes)), threading.Barrier(len(routes) + 1)

    def agent_loop(n: int, route: Route) -> None:
        warm.wait()
        _, result = _timed(route(n, "true"))
        if result.returncode != 0:
            with lock:
                errors.append(f"warm-up: {result.stderr.decode(errors='replace').strip()}")
        start.wait()
        for i in range(commands):
            elapsed, result = _timed(route(n, f"echo {i}"))
            with lock:
                times.append(elapsed)
                if result.returncode != 0 or result.stdout != f"{i}\n".encode():
                    errors.append(result.stderr.decode(errors="replace").strip() or f"exit {result.returncode}")

    threads = [threading.Thread(target=agent_loop, args=(n, route)) for n, route in enumerate(routes)]
    with _PeakRss(bastion_pid) if bastion_pid else contextlib.nullcontext() as rss:
        for thread in threads:
            thread.start()
        start.wait()
        wall = time.perf_counter()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - wall
    result = {"agents": len(routes), "commands_each": commands, "errors": len(errors),
              "first_errors": sorted(set(errors))[:3], "p50_s": round(_p(times, 0.5), 3),
              "p99_s": round(_p(times, 0.99), 3), "commands_per_s": round(len(times) / wall, 1)}
    if rss is not None:
        result["rss_mb"] = round(rss.peak_kb / 1024, 1)
    return result


def concurrency(r: Rig, agents: list[Agent], commands: int) -> dict[str, Any]:
    """Each command its own `ssh` process and SSH connection: key exchange and authentication every time."""
    assert r.bastion.proc is not None
    return _load([lambda _, command, agent=agent: r.via_bastion(agent, command) for agent in agents], commands,
                 r.bastion.proc.pid)


def concurrency_multiplexed(r: Rig, agents: list[Agent], commands: int, tmp: Path) -> dict[str, Any]:
    """Each agent keeps one connection (an OpenSSH ControlMaster) and runs its commands as sessions on it."""
    assert r.bastion.proc is not None
    sockets = tmp / "mux"
    sockets.mkdir()
    masters = []
    for n, agent in enumerate(agents):
        control = ["-S", str(sockets / str(n))]
        base = r.bastion.ssh_args(agent, "bench", *control)
        _check(subprocess.run([base[0], "-M", "-N", "-f", "-o", "ControlPersist=yes", *base[1:]],
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=120), "control master")
        masters.append(base)
    try:
        return _load([lambda n, command: [*masters[n], command] for n in range(len(agents))], commands,
                     r.bastion.proc.pid)
    finally:
        for base in masters:
            subprocess.run([base[0], "-O", "exit", *base[1:]], stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=60)


def concurrency_direct(r: Rig, agents: int, commands: int) -> dict[str, Any]:
    """The same load straight to the sshd, each command its own connection (fewer commands: it is slow)."""
    return _load([lambda _, command: r.direct(command)] * agents, commands, None)


def target_session(r: Rig, runs: int) -> dict[str, Any]:
    """What one session costs the target itself: `true` on an already open connection, no bastion involved."""

    async def measure() -> list[float]:
        async with asyncssh.connect("127.0.0.1", r.sshd.port, username=r.sshd.user, known_hosts=None,
                                    client_keys=[str(r.sshd.root / "client_key")], agent_path=None,
                                    config=None) as conn:
            times = []
            for _ in range(runs):
                started = time.perf_counter()
                await conn.run("true", check=True)
                times.append(time.perf_counter() - started)
            return times

    return {"runs": runs, "median_s": round(statistics.median(asyncio.run(measure())), 4)}


def _event_times(db: Path, kind: str) -> list[tuple[str, datetime]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("select details, time from audit_event where type = ? order by seq", (kind,))
        return [(details, datetime.fromisoformat(when)) for details, when in rows]


def approval_release(r: Rig, rounds: int) -> dict[str, Any]:
    """A reader's WRITE waits for an approver; measured from `approve` returning to the command's first byte,
    and inside the bastion from the approval.approved event to the held session's session.open event."""
    reader, approver = r.bastion.agent("bench-reader", ["reader"]), r.bastion.agent("bench-approver", ["approver"])
    client, inside = [], []
    for n in range(rounds):
        marker = r.bastion.root / f"approved-{n}"
        command = f"touch {marker} && echo started"
        proc = subprocess.Popen(r.via_bastion(reader, command), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        assert proc.stdout is not None and proc.stderr is not None
        line = proc.stderr.readline().decode()
        request = line.split("request ", 1)[1].split()[0]
        result = subprocess.run([*r.bastion.ssh_args(approver, "admin"), f"approve {request}"],
                                stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
        approved = time.perf_counter()
        _check(result, "approve")
        first = proc.stdout.read(1)
        client.append(time.perf_counter() - approved)
        _check(subprocess.CompletedProcess([], proc.wait(60), b"", proc.stderr.read()), "held command")
        assert first == b"s"
        db = r.bastion.dir / "bastion.db"
        approved_at = next(t for d, t in _event_times(db, "approval.approved") if request in d)
        opened_at = next(t for d, t in _event_times(db, "session.open") if command in d)
        inside.append((opened_at - approved_at).total_seconds())
    return {"rounds": rounds, "approved_to_session_open_s": round(statistics.median(inside), 4),
            "approve_returned_to_first_byte_s": round(statistics.median(client), 4)}


def run_all(sizes: Sizes, progress: Callable[[str], None], workers: int) -> dict[str, Any]:
    results: dict[str, Any] = {}

    def step(key: str, measure: Callable[[], Any]) -> None:
        progress(key)
        results[key] = measure()
        progress(f"{key}: {json.dumps(results[key])}")  # a long run that fails later keeps what it measured

    step("classify_per_s", lambda: round(bench_classify(DEFAULT_CORPUS)))
    step("masking", lambda: bench_masking(sizes.masking_mb))
    with tempfile.TemporaryDirectory(prefix="bastion-bench-") as tmp, rig(Path(tmp), workers) as r:
        agent = r.bastion.agent("bench-agent", [TESTER_ROLE])
        unmasked = r.bastion.agent("bench-unmasked", [UNMASKED_ROLE])
        _check(_timed(r.via_bastion(agent, "true"))[1], "warm-up")
        step("latency", lambda: latency(r, agent, sizes.latency_runs))
        step("target_session", lambda: target_session(r, sizes.latency_runs))
        step("throughput", lambda: throughput(r, agent, unmasked, sizes.throughput_mb))
        step("approval", lambda: approval_release(r, sizes.approvals))
        progress(f"making {sizes.agents} agents")
        agents = [r.bastion.agent(f"bench-{n}", [TESTER_ROLE]) for n in range(sizes.agents)]
        step("concurrency", lambda: concurrency(r, agents, sizes.commands))
        step("concurrency_multiplexed", lambda: concurrency_multiplexed(r, agents, sizes.commands, Path(tmp)))
        step("concurrency_direct", lambda: concurrency_direct(r, sizes.agents, sizes.direct_commands))
    results["latency_ratio"] = results["latency"]["ratio"]
    results["throughput_ratio"] = results["throughput"]["ratio_masking_on"]
    results["approval_release_s"] = results["approval"]["approved_to_session_open_s"]
    results["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0], "bastion_workers": workers}
    return results


def _load_row(label: str, load: dict[str, Any]) -> tuple[str, str, str]:
    rss = f"; peak RSS {load['rss_mb']:.0f} MB" if "rss_mb" in load else ""
    return (label, f"p50 {load['p50_s']:.2f} s, p99 {load['p99_s']:.2f} s",
            f"{load['errors']} errors; {load['commands_per_s']:.0f} commands/s{rss}")


def table(res: dict[str, Any]) -> str:
    rows: list[tuple[str, str, str]] = []
    if "latency" in res:
        lat, thr, appr = res["latency"], res["throughput"], res["approval"]
        rows += [
            ("latency: ssh true, median (p95)", f"{lat['bastion_median_s']:.3f} s ({lat['bastion_p95_s']:.3f})",
             f"direct {lat['direct_median_s']:.3f} s ({lat['direct_p95_s']:.3f}); ratio {lat['ratio']:.2f}"),
            ("target alone: a session on an open connection", f"{res['target_session']['median_s']:.3f} s",
             "the target's own cost per command (its login shell's startup)"),
            (f"throughput {thr['mb']} MB, recorded, masking on", f"{thr['masking_on_mb_s']:.0f} MB/s",
             f"direct {thr['direct_mb_s']:.0f} MB/s; ratio {thr['ratio_masking_on']:.2f}"),
            (f"throughput {thr['mb']} MB, recorded, masking off", f"{thr['masking_off_mb_s']:.0f} MB/s",
             f"ratio {thr['ratio_masking_off']:.2f}"),
            *(_load_row(f"{label} {res[key]['agents']} agents x {res[key]['commands_each']}", res[key])
              for key, label in (("concurrency", "concurrency, a connection per command:"),
                                 ("concurrency_multiplexed", "concurrency, a connection per agent:"),
                                 ("concurrency_direct", "direct OpenSSH, a connection per command:"))),
            ("approval release", f"{appr['approved_to_session_open_s']:.3f} s",
             f"approve returned -> first byte {appr['approve_returned_to_first_byte_s']:.3f} s"),
        ]
    if "machine" in res:
        m = res["machine"]
        rows.append(("machine", f"{m['cpus']} cores, bastion serve --workers {m['bastion_workers']}",
                     f"Python {m['python']}"))
    rows.append(("classifier", f"{res['classify_per_s']:,} commands/s", "corpus commands.tsv"))
    if "masking" in res:
        m = res["masking"]
        rows.append(("masker alone", f"{m['masking_on_mb_s']:.0f} MB/s", f"off {m['masking_off_mb_s']:.0f} MB/s"))
    width = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join("  ".join(cell.ljust(width[i]) for i, cell in enumerate(row)).rstrip() for row in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", nargs="?", choices=("all", "classify"), default="all")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quick", action="store_true", help="a smaller run")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="bastion serve --workers (default: one per core, as on a dedicated host)")
    args = parser.parse_args()

    def progress(step: str) -> None:
        print(f"bench: {step}", file=sys.stderr, flush=True)

    if args.what == "classify":
        results: dict[str, Any] = {"classify_per_s": round(bench_classify(DEFAULT_CORPUS))}
    else:
        results = run_all(QUICK if args.quick else FULL, progress, args.workers)
    print(json.dumps(results, indent=2) if args.json else table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
