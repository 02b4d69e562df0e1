"""The streaming masker: one per output stream, fed chunks as they arrive from the target.

Guarantee: the concatenation of everything `feed` and `flush` return equals masking the whole stream at
once with the same flush points. With `flush` only at end of stream, chunking never changes the output,
so a secret split across chunks that arrive within the idle window is masked. `flush` cuts the stream:
a single-line secret split exactly across an idle flush is seen as two halves (unavoidable without
holding output forever), while a private key block that has begun stays masked across any flush.

How: complete lines are masked as they arrive (no pattern spans a line break). A partial line is held
back; once it reaches HOLD bytes without a line break, the masker emits a prefix ending at a point no
match straddles and at least OVERLAP bytes before the held end, so any secret up to MAX_SECRET bytes is
still seen whole. Inside a private key block nothing is emitted or held except the last few bytes
needed to recognise the END marker; the block's content is dropped, never buffered, however long.
"""

from __future__ import annotations

from bastion.masking.detectors import (
    END_MARKER_MAX,
    MAX_SECRET,
    PRIVATE_KEY_BEGIN,
    PRIVATE_KEY_END,
    Detector,
    marker,
)
from bastion.masking.policy import MaskingRules
from bastion.masking.scan import collect, render, resolve, safe_cut

HOLD = 32 * 1024
OVERLAP = MAX_SECRET + 256
# Already-emitted bytes kept so lookbehinds at a region start see the real previous byte.
CONTEXT = 8
_KEY = "private-key"


class Masker:
    """Masks one output stream; `counts` holds masks by kind, never the values."""

    def __init__(self, rules: MaskingRules) -> None:
        self._active = bool(rules.detectors)
        self._keys = any(d.name == _KEY for d in rules.detectors)
        self._detectors: tuple[Detector, ...] = tuple(d for d in rules.detectors if d.name != _KEY)
        self._buf = b""
        self._pos = 0
        self._in_key = False
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
                if not self._skip_key():
                    break
                continue
            region = self._next_region(final)
            if region is None:
                break
            out.append(self._mask(*region))
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
        buf, pos = self._buf, self._pos
        begin = PRIVATE_KEY_BEGIN.search(buf, pos, end) if self._keys else None
        if begin is not None:
            end = begin.start()
        candidates = collect(self._detectors, buf, pos, end)
        if window and begin is None:
            end = safe_cut(candidates, end - OVERLAP, pos)
        text = render(self._detectors, buf, pos, end, resolve(candidates, end), self._counts)
        self._pos = end
        if begin is None:
            return text
        self._counts[_KEY] = self._counts.get(_KEY, 0) + 1
        self._pos = begin.end()
        self._in_key = True
        return text + marker(_KEY)

    def _skip_key(self) -> bool:
        """Drops key material up to the END marker; False while END has not arrived yet."""
        found = PRIVATE_KEY_END.search(self._buf, self._pos)
        if found is None:
            self._pos = max(self._pos, len(self._buf) - END_MARKER_MAX)
            return False
        self._pos = found.end()
        self._in_key = False
        return True

    def _trim(self) -> None:
        if self._pos > CONTEXT:
            self._buf = self._buf[self._pos - CONTEXT :]
            self._pos = CONTEXT


def mask_bytes(rules: MaskingRules, data: bytes) -> bytes:
    """Masks a whole text at once: the reference the streaming output is held to."""
    masker = Masker(rules)
    return masker.feed(data) + masker.flush()
