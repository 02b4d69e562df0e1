"""One agent channel relayed to one upstream channel, recorded as it goes.

Flow control is the channels' own: when the agent reads slowly, asyncssh calls `pause_writing` on the agent
session and the relay stops reading upstream (so upstream sshd stops sending once its window is used up); when
the target reads stdin slowly, the relay stops reading from the agent. Memory stays bounded by the SSH
windows, whatever the speeds. Data arriving before the upstream channel is open is held and reading paused.

Output passes through one masker per stream (stdout, stderr) before it reaches the agent or the recording.
A masker may hold back a partial line; it is flushed after 50 ms without output on its stream, at EOF and at
the end. Each stream has its own timer: a prompt held on stderr is not kept waiting by lines on stdout.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import asyncssh

from bastion.errors import StoreError
from bastion.gateway import compat
from bastion.gateway.messages import EXIT_FAILURE, line
from bastion.masking import Masker, MaskingRules
from bastion.recording import CastEncoder, RecordingSink

log = logging.getLogger("bastion.relay")

EXTENDED_STDERR = asyncssh.EXTENDED_DATA_STDERR
MASK_IDLE_FLUSH_S = 0.05
AGENT_WRITE_BUFFER = 256 * 1024


class Relay:
    """Moves bytes between `agent` and `upstream` channels and records them; `on_done` runs once at the end."""

    def __init__(
        self,
        agent: asyncssh.SSHServerChannel[bytes],
        sink: RecordingSink,
        encoder: CastEncoder,
        masking: MaskingRules,
        on_done: Callable[[int | None, str | None], None],
    ) -> None:
        self.agent = agent
        self.upstream: asyncssh.SSHClientChannel[bytes] | None = None
        self._sink = sink
        self._encoder = encoder
        self._on_done = on_done
        self._held_input: list[bytes] = []
        self._held_eof = False
        self._held_size: tuple[int, int, int, int] | None = None
        self._exit_status: int | None = None
        self._exit_signal: tuple[str, bool, str, str] | None = None
        self._done = False
        self._closer: Callable[[], Any] | None = None
        self._maskers: dict[int | None, Masker] = (
            {None: Masker(masking), EXTENDED_STDERR: Masker(masking)} if masking.enabled else {}
        )
        self._idle_flush: dict[int | None, asyncio.TimerHandle] = {}
        self._eof_pending = False
        # asyncssh's is_closing() is already true after write_eof(), when exit status must still be sent.
        self._agent_closed = False

    # agent side

    def agent_data(self, data: bytes) -> None:
        if self._done:
            return
        if self.upstream is None:
            self._held_input.append(data)
            self.agent.pause_reading()
            return
        self._record(self._encoder.input(time.monotonic(), data))
        if not self._done:  # input that could not be recorded is not passed on
            self.upstream.write(data)

    def agent_eof(self) -> None:
        if self.upstream is None:
            self._held_eof = True
        else:
            self.upstream.write_eof()

    def agent_resize(self, cols: int, rows: int, pixwidth: int, pixheight: int) -> None:
        self._record(self._encoder.resize(time.monotonic(), cols, rows))
        if self.upstream is None:
            self._held_size = (cols, rows, pixwidth, pixheight)
        else:
            self.upstream.change_terminal_size(cols, rows, pixwidth, pixheight)

    def agent_signal(self, signal: str) -> None:
        if self.upstream is not None:
            self.upstream.send_signal(signal)

    def agent_break(self, msec: int) -> None:
        if self.upstream is not None:
            self.upstream.send_break(msec)

    def agent_eow(self) -> None:
        if self.upstream is not None:
            compat.send_eow(self.upstream)

    def agent_paused(self, paused: bool) -> None:
        if self.upstream is None:
            return
        if paused:
            self.upstream.pause_reading()
        else:
            self.upstream.resume_reading()

    def agent_lost(self) -> None:
        self._agent_closed = True
        if self.upstream is not None:
            self.upstream.close()
        self.finish()

    # upstream side

    def attach(self, upstream: asyncssh.SSHClientChannel[bytes]) -> None:
        """The upstream channel is open: release what the agent sent meanwhile."""
        self.upstream = upstream
        held, self._held_input = self._held_input, []
        for data in held:
            self.agent_data(data)
        if self._held_size is not None:
            upstream.change_terminal_size(*self._held_size)
        if self._held_eof:
            upstream.write_eof()
        self.agent.resume_reading()

    def upstream_data(self, data: bytes, datatype: int | None) -> None:
        if self._done:
            return
        masker = self._maskers.get(datatype)
        if masker is not None:
            data = masker.feed(data)
            timer = self._idle_flush.pop(datatype, None)
            if timer is not None:
                timer.cancel()
            if masker.held:
                self._idle_flush[datatype] = asyncio.get_running_loop().call_later(
                    MASK_IDLE_FLUSH_S, self._flush_masker, datatype
                )
        if data:
            self.emit(data, datatype)

    def _flush_masker(self, datatype: int | None) -> None:
        self._idle_flush.pop(datatype, None)
        held = self._maskers[datatype].flush()
        if held and not self._done:
            self.emit(held, datatype)

    def _flush_maskers(self) -> None:
        for timer in self._idle_flush.values():
            timer.cancel()
        for datatype in self._maskers:
            self._flush_masker(datatype)

    @property
    def mask_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for masker in self._maskers.values():
            for kind, n in masker.counts.items():
                counts[kind] = counts.get(kind, 0) + n
        return counts

    def upstream_exit(self, status: int | None, signal: tuple[str, bool, str, str] | None) -> None:
        self._exit_status, self._exit_signal = status, signal

    def upstream_paused(self, paused: bool) -> None:
        if paused:
            self.agent.pause_reading()
        else:
            self.agent.resume_reading()

    def upstream_closed(self) -> None:
        if self._done:
            return
        self._flush_maskers()
        if self._exit_signal is not None:
            signal, core, msg, lang = self._exit_signal
            self.finish(lambda: self.agent.exit_with_signal(signal, core, msg, lang))
        elif self._exit_status is not None:
            status = self._exit_status
            self.finish(lambda: self.agent.exit(status))
        else:
            self.fail("the target ended the session without an exit status (connection lost?)", EXIT_FAILURE)

    # both

    def emit(self, data: bytes, datatype: int | None = None) -> None:
        """Records output and sends it to the agent (stdout and stderr both become `o` events).

        Output the recording refused is not sent. Recording is batched, so the last batch the agent saw before a
        write error (at most 256 KiB, or `recording_flush_s` of output) is what a failing disk can still lose.
        """
        self._record(self._encoder.output(time.monotonic(), data))
        if not self._agent_closed and not self._done:
            self.agent.write(data, datatype)

    def fail(self, message: str, status: int) -> None:
        """Ends the session from the bastion's side with one `bastion:` line on stderr."""
        text = line(message, pty=bool(self.agent.get_terminal_type()))
        self._record(self._encoder.output(time.monotonic(), text))
        if not self._agent_closed:
            self.agent.write(text, EXTENDED_STDERR)
        if self.upstream is not None:
            self.upstream.close()
        self.finish(lambda: self.agent.exit(status))

    def flush(self) -> None:
        try:
            self._sink.flush()
        except StoreError as exc:
            self.fail(f"{exc}; session stopped", EXIT_FAILURE)

    @property
    def exit_status(self) -> int | None:
        return self._exit_status

    @property
    def exit_signal(self) -> str | None:
        return self._exit_signal[0] if self._exit_signal else None

    @property
    def done(self) -> bool:
        return self._done

    def finish(self, closer: Callable[[], Any] | None = None) -> None:
        """Stops relaying; `on_done` finalizes the recording and rows, then calls `release_agent`.

        The agent gets its exit status only after the session is on record, so whoever reads the audit
        trail after `ssh` returns finds the session closed.
        """
        if self._done:
            return
        self._done = True
        for timer in self._idle_flush.values():
            timer.cancel()
        self._idle_flush.clear()
        self._closer = closer
        self._on_done(self._exit_status, self.exit_signal)

    def release_agent(self) -> None:
        if self._closer is not None and not self._agent_closed:
            if self._eof_pending:
                self.agent.write_eof()
            self._close_agent(self._closer)

    def _record(self, line: bytes) -> None:
        if self._done:
            return
        try:
            self._sink.write(line)
        except StoreError as exc:
            self.fail(f"{exc}; session stopped", EXIT_FAILURE)

    def upstream_eof(self) -> None:
        """Upstream's output ended: flush the maskers; the agent's EOF waits for the exit status.

        An OpenSSH ControlMaster closes the channel as soon as it sees EOF with its own input closed, so an
        EOF sent before the (recorded, then released) exit status would lose the status.
        """
        self._flush_maskers()
        self._eof_pending = True

    def _close_agent(self, closer: Callable[[], Any]) -> None:
        if not self._agent_closed:
            self._agent_closed = True
            closer()


class AgentChannelSession(asyncssh.SSHServerSession[bytes]):
    """asyncssh callbacks of the agent's channel, turned into relay calls once the relay exists."""

    def __init__(self, start: Callable[[AgentChannelSession], Any]) -> None:
        self._start = start
        self.chan: asyncssh.SSHServerChannel[bytes] | None = None
        self.relay: Relay | None = None
        self.kind = "shell"
        self.command: str | None = None
        self.term: tuple[str, tuple[int, int, int, int], dict[int, int]] | None = None
        self.task: asyncio.Task[Any] | None = None
        self._early: list[bytes] = []
        self._early_eof = False
        self._requested = False

    def connection_made(self, chan: asyncssh.SSHChannel[bytes]) -> None:
        self.chan = chan  # type: ignore[assignment]
        # Output waiting for the agent's window pauses the upstream channel past this much. asyncssh's 64 KiB is
        # two packets, so bulk output paused and resumed constantly; 256 KiB per session keeps memory bounded.
        chan.set_write_buffer_limits(AGENT_WRITE_BUFFER)

    # One start request per channel: asyncssh accepts further exec/shell/subsystem requests on a started
    # channel, and a second one must never replace the command that was decided (and maybe approved).

    def pty_requested(self, term_type: str, term_size: tuple[int, int, int, int], term_modes: Any) -> bool:
        if self._requested:
            return False
        self.term = (term_type, term_size, term_modes)
        return True

    def shell_requested(self) -> bool:
        return self._request("shell", None)

    def exec_requested(self, command: str) -> bool:
        return self._request("exec", command)

    def subsystem_requested(self, subsystem: str) -> bool:
        return self._request("subsystem", subsystem)

    def _request(self, kind: str, command: str | None) -> bool:
        if self._requested:
            log.warning("refused a second %s request on a started channel", kind)
            return False
        self._requested = True
        self.kind, self.command = kind, command
        return True

    def session_started(self) -> None:
        self.task = asyncio.ensure_future(self._start(self))

    def bind(self, relay: Relay) -> None:
        self.relay = relay
        for data in self._early:
            relay.agent_data(data)
        self._early.clear()
        if self._early_eof:
            relay.agent_eof()

    def data_received(self, data: bytes, datatype: int | None) -> None:
        if self.relay is None:
            self._early.append(data)
            assert self.chan is not None
            self.chan.pause_reading()
        else:
            self.relay.agent_data(data)

    def eof_received(self) -> bool:
        if self.relay is None:
            self._early_eof = True
        else:
            self.relay.agent_eof()
        return True

    def pause_writing(self) -> None:
        if self.relay:
            self.relay.agent_paused(True)

    def resume_writing(self) -> None:
        if self.relay:
            self.relay.agent_paused(False)

    def terminal_size_changed(self, width: int, height: int, pixwidth: int, pixheight: int) -> None:
        if self.relay:
            self.relay.agent_resize(width, height, pixwidth, pixheight)
        elif self.term:
            self.term = (self.term[0], (width, height, pixwidth, pixheight), self.term[2])

    def signal_received(self, signal: str) -> None:
        if self.relay:
            self.relay.agent_signal(signal)

    def break_received(self, msec: int) -> bool:
        if self.relay:
            self.relay.agent_break(msec)
        return True

    def eow_received(self) -> None:
        if self.relay:
            self.relay.agent_eow()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.relay:
            self.relay.agent_lost()
        elif self.task is not None and not self.task.done():
            self.task.cancel()


class UpstreamChannelSession(asyncssh.SSHClientSession[bytes]):
    """asyncssh callbacks of the upstream channel, turned into relay calls."""

    def __init__(self, relay: Relay) -> None:
        self._relay = relay
        self._status: int | None = None
        self._signal: tuple[str, bool, str, str] | None = None

    def data_received(self, data: bytes, datatype: int | None) -> None:
        self._relay.upstream_data(data, datatype)

    def eof_received(self) -> bool:
        self._relay.upstream_eof()
        return True

    def pause_writing(self) -> None:
        self._relay.upstream_paused(True)

    def resume_writing(self) -> None:
        self._relay.upstream_paused(False)

    def exit_status_received(self, status: int) -> None:
        self._status = status
        self._relay.upstream_exit(status, self._signal)

    def exit_signal_received(self, signal: str, core_dumped: bool, msg: str, lang: str) -> None:
        self._signal = (signal, core_dumped, msg, lang)
        self._relay.upstream_exit(self._status, self._signal)

    def connection_lost(self, exc: Exception | None) -> None:
        self._relay.upstream_closed()
