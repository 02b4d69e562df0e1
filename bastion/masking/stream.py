"""The streaming masker: one per output stream, fed chunks as they arrive from the target.

Guarantee: the concatenation of everything `feed` and `flush` return equals masking the whole stream at
once with the same flush points. With `flush` only at end of stream, chunking never changes the output,
so a secret split across chunks that arrive within the idle window is masked exactly as if whole.

`flush` (idle or end of stream) must emit the held partial line, so a single-line secret cut by an idle
flush has its first part shown: that is unavoidable without holding output indefinitely. The rest is
still masked: the flushed partial line (up to MAX_SECRET bytes) is rescanned with what follows, and any
match reaching past the flush point has its remainder replaced. A private key BEGIN marker cut by a
flush still opens the block, so the key material after it is never shown. A flush cutting a colour code
or charset selection is scanned without that partial sequence, so the value it follows is not taken to
end inside it (and fail its validator); the partial sequence itself is emitted as it is.

BEGIN and END markers are also looked for with escape sequences removed (`grep --color` prints
`-----BEGIN PGP \x1b[01;31m\x1b[KPRIVATE\x1b[m\x1b[K KEY BLOCK-----`), as the detectors are (see ansi.py);
a marker found that way spans at most KEY_MARKER_MAX bytes with its escapes.

How: complete lines are masked as they arrive (no pattern spans a line break). A partial line is held
back; once it reaches HOLD bytes without a line break, the masker emits a prefix ending at a point no
match straddles and at least OVERLAP bytes before the held end, so any secret up to MAX_SECRET bytes is
still seen whole. Inside a private key block nothing is emitted or held except the last few bytes
needed to recognise the END marker (END_MARKER_MAX, or KEY_TAIL near escape sequences); the block's
content is dropped, never buffered, however long. An END marker ending after an escape sequence that may
still be incomplete is taken only once that sequence is settled (or at a flush), since completing it can
reveal an earlier marker.

A key body printed without its BEGIN line opens a body instead: its base64 lines are dropped one by one
(at most one line is held while undecided) up to the END marker or the first line that is not base64,
which is emitted as usual. The stream starts as if after a line break, so a body can open it.
"""

from __future__ import annotations

import re

from bastion.masking.ansi import ESCAPE, ESCAPE_MAX, Stripped, escape_spans
from bastion.masking.detectors import (
    END_MARKER_MAX,
    KEY_BODY_HINTS,
    KEY_BODY_LINE,
    KEY_BODY_START,
    MAX_SECRET,
    PRIVATE_KEY_BEGIN,
    PRIVATE_KEY_END,
    Detector,
    key_body_start_ok,
    marker,
)
from bastion.masking.hints import Region, hint
from bastion.masking.policy import MaskingRules
from bastion.masking.scan import Candidate, Scanner, render, resolve, safe_cut

HOLD = 32 * 1024
OVERLAP = MAX_SECRET + 256
# Already-emitted bytes kept so lookbehinds at a region start see the real previous byte.
CONTEXT = 8
_KEY = "private-key"
# The longest BEGIN or END marker found with escape sequences inside it, counting them.
KEY_MARKER_MAX = 1024
# Bytes kept inside a key block when escape sequences are near its end: a marker of KEY_MARKER_MAX bytes,
# or one ending after an escape sequence not yet settled (ESCAPE_MAX bytes back at most).
KEY_TAIL = 2 * KEY_MARKER_MAX
_BREAK = re.compile(rb"\r\n|\r|\n")
# The start of a CSI or charset sequence, cut by the end of the buffer.
_OPEN_ESCAPE = re.compile(rb"\x1b(?:\[[0-?]{0,32}[ -/]{0,4}|[()*+])?")
_OPEN_ESCAPE_MAX = 2 + 32 + 4
_END_PREFIX = re.compile(rb"-[-A-Z0-9 ]*")
_BEGIN_HINT = hint(b"-----BEGIN ", "raw")
_BODY_HINTS = tuple(hint(text, "raw") for text in KEY_BODY_HINTS)


class Masker:
    """Masks one output stream; `counts` holds masks by kind, never the values."""

    def __init__(self, rules: MaskingRules) -> None:
        self._active = bool(rules.detectors)
        self._keys = any(d.name == _KEY for d in rules.detectors)
        self._detectors: tuple[Detector, ...] = tuple(d for d in rules.detectors if d.name != _KEY)
        self._scanner = Scanner(self._detectors)
        self._buf = b"\n"
        self._pos = 1
        # Where the next scan starts: before _pos only right after a flush cut a line.
        self._resume = 1
        self._in_key = False
        self._in_body = False
        self._counts: dict[str, int] = {}

    @property
    def counts(self) -> dict[str, int]:
        return dict(self._counts)

    @property
    def held(self) -> int:
        """Bytes received but not yet emitted (or dropped): the delay masking adds right now."""
        return len(self._buf) - self._pos

    def feed(self, data: bytes) -> bytes:
        """Takes a chunk, returns what is safe to emit now (possibly nothing)."""
        if not self._active:
            return data
        self._buf += data
        return self._drain(final=False)

    def flush(self) -> bytes:
        """At idle or end of stream: emits the held partial line, masked. A key block stays open."""
        if not self._active:
            return b""
        return self._drain(final=True)

    def _drain(self, final: bool) -> bytes:
        out: list[bytes] = []
        while True:
            if self._in_key:
                if not self._skip_key(final):
                    break
                continue
            if self._in_body:
                if not self._skip_body():
                    break
                continue
            region = self._next_region(final)
            if region is None:
                break
            out.append(self._mask(*region))
        if final and not (self._in_key or self._in_body):
            self._resume = self._flushed_line_start()
        self._trim()
        return b"".join(out)

    def _next_region(self, final: bool) -> tuple[int, bool] | None:
        """(end, is_window) of the next region to mask, or None when more input is needed."""
        buf, pos = self._buf, self._pos
        if pos >= len(buf):
            return None
        line_end = max(buf.rfind(b"\n", pos), buf.rfind(b"\r", pos))
        if line_end >= 0:
            return line_end + 1, False
        if final:
            return len(buf), False
        if len(buf) - pos >= HOLD:
            return pos + HOLD, True
        return None

    def _mask(self, end: int, window: bool) -> bytes:
        buf, pos, scan_from = self._buf, self._pos, self._resume
        region = Region(buf, scan_from, end)
        opener = self._opener(region)
        if opener is not None:
            end = max(pos, opener[0])
        scan_end = end if opener is not None or window else _before_open_escape(buf, pos, end)
        candidates = self._scanner.collect(buf, scan_from, scan_end, region)
        if scan_from < pos:
            candidates = _after_flush(candidates, pos)
        if window and opener is None:
            escapes = escape_spans(buf, pos, end) if buf.find(b"\x1b", pos, end) >= 0 else []
            end = safe_cut(candidates, escapes, end - OVERLAP, pos)
        text = render(self._detectors, buf, pos, end, resolve(candidates, min(end, scan_end)), self._counts)
        self._pos = self._resume = end
        if opener is None:
            return text
        self._counts[_KEY] = self._counts.get(_KEY, 0) + 1
        self._pos = self._resume = max(end, opener[1])
        self._in_key, self._in_body = opener[2], not opener[2]
        return text + marker(_KEY)

    def _opener(self, region: Region) -> tuple[int, int, bool] | None:
        """(start, end, is_block) of the first BEGIN marker or key body in the region, if any."""
        if not self._keys:
            return None
        buf, start, end = self._buf, region.start, region.end
        literal = region.first(_BEGIN_HINT)
        raw = None if literal < 0 else PRIVATE_KEY_BEGIN.search(buf, literal, end)
        begin = find_marker(PRIVATE_KEY_BEGIN, buf, start, end, None if raw is None else raw.span())
        limit = end if begin is None else begin[0]
        body = self._key_body(region, max(0, start - 1), limit)
        if body is not None:
            return body[0], body[1], False
        return None if begin is None else (begin[0], begin[1], True)

    def _key_body(self, region: Region, start: int, end: int) -> tuple[int, int] | None:
        """The first line in buf[start:end] (start at the line break before it) opening a key body."""
        first: tuple[int, int] | None = None
        for h in _BODY_HINTS:
            at = h.search(self._buf, start, end) if region.possible(h) else -1
            while at >= 0 and (first is None or at < first[0]):
                found = KEY_BODY_START.match(self._buf, at, end)
                if found is not None and key_body_start_ok(found.group()[1:]):
                    first = (at + 1, found.end())
                    break
                at = h.search(self._buf, at + 1, end)
        return first

    def _flushed_line_start(self) -> int:
        """Where the partial line just flushed began (at most MAX_SECRET back): rescanned with what follows."""
        floor = max(0, self._pos - MAX_SECRET)
        return max(floor, self._buf.rfind(b"\n", floor) + 1, self._buf.rfind(b"\r", floor) + 1)

    def _skip_key(self, final: bool) -> bool:
        """Drops key material up to the END marker; False while END has not arrived (or is not settled)."""
        buf, pos = self._buf, self._pos
        raw = PRIVATE_KEY_END.search(buf, pos)
        found = find_marker(PRIVATE_KEY_END, buf, pos, len(buf), None if raw is None else raw.span())
        if found is not None and (final or found[1] <= _settled(buf, pos)):
            self._pos = self._resume = found[1]
            self._in_key = False
            return True
        tail = KEY_TAIL if buf.find(b"\x1b", max(pos, len(buf) - KEY_TAIL)) >= 0 else END_MARKER_MAX
        self._pos = self._resume = max(pos, len(buf) - tail)
        return False

    def _skip_body(self) -> bool:
        """Drops the next base64 line of a key body, or closes it; False while that is undecided.

        _pos is at the line break after the last line dropped (or inside that line after a flush).
        """
        buf = self._buf
        brk = _BREAK.match(buf, self._pos)
        line = self._pos if brk is None else brk.end()
        closing = PRIVATE_KEY_END.match(buf, line)
        if closing is not None:
            self._pos = self._resume = closing.end()
            self._in_body = False
            return True
        body = KEY_BODY_LINE.match(buf, line)
        if body is not None and body.end() < len(buf) and buf[body.end()] in b"\r\n":
            self._pos = self._resume = body.end()
            return True
        partial = buf[line:]
        if (
            len(buf) == line
            or (body is not None and body.end() == len(buf))
            or (len(partial) < END_MARKER_MAX and _END_PREFIX.fullmatch(partial) is not None)
        ):
            return False
        self._in_body = False
        return True

    def _trim(self) -> None:
        keep_from = self._resume - CONTEXT
        if keep_from > 0:
            self._buf = self._buf[keep_from:]
            self._pos -= keep_from
            self._resume -= keep_from


def find_marker(
    pattern: re.Pattern[bytes], buf: bytes, start: int, end: int, raw: tuple[int, int] | None
) -> tuple[int, int] | None:
    """The first key marker in buf[start:end]: `raw` (the first found in the bytes as they are) or one
    found with escape sequences removed that starts before it and spans at most KEY_MARKER_MAX bytes.

    Each search starts one byte after the last, so what is found never depends on where the view began.
    """
    if buf.find(b"\x1b", start, end) < 0:
        return raw
    view = Stripped(buf, start, end)
    found = pattern.search(view.text)
    while found is not None:
        at = view.to_buf(found.start())
        if raw is not None and at >= raw[0]:
            break
        stop = view.end_to_buf(found.end())
        if stop - at <= KEY_MARKER_MAX:
            return at, stop
        found = pattern.search(view.text, found.start() + 1)
    return raw


def _settled(buf: bytes, start: int) -> int:
    """Where the first escape byte in buf[start:] that may yet begin an escape sequence is; else the end."""
    at = buf.find(b"\x1b", max(start, len(buf) - ESCAPE_MAX))
    while at >= 0 and ESCAPE.match(buf, at) is not None:
        at = buf.find(b"\x1b", at + 1)
    return len(buf) if at < 0 else at


def _before_open_escape(buf: bytes, pos: int, end: int) -> int:
    """Where a colour code or charset selection still being written ends a partial line flushed at end.

    A value followed by one (`APP_KEY=3f78...\x1b[0`) is scanned without it, as it will be once the
    sequence is complete, rather than taken for part of the value. Other bytes are scanned as they are.
    """
    if end < len(buf) or buf[end - 1 : end] in (b"\r", b"\n"):
        return end
    at = buf.rfind(b"\x1b", max(pos, end - _OPEN_ESCAPE_MAX), end)
    return at if at >= 0 and _OPEN_ESCAPE.fullmatch(buf, at, end) is not None else end


def _after_flush(candidates: list[Candidate], pos: int) -> list[Candidate]:
    """Matches reaching past an idle flush: only the part not yet emitted can still be masked."""
    return [
        c._replace(start=max(c.start, pos), value_start=max(c.value_start, pos))
        for c in candidates
        if c.value_end > pos
    ]


def mask_bytes(rules: MaskingRules, data: bytes) -> bytes:
    """Masks a whole text at once: the reference the streaming output is held to."""
    masker = Masker(rules)
    return masker.feed(data) + masker.flush()
