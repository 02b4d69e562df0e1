"""asciicast v2 encoding, with no I/O.

asciinema 2.4 reads line 1 as the JSON header and every following line as `[seconds, code, data]`; a blank
line ends the file and bad JSON aborts playback, so every line is one complete JSON document. Output may not
be UTF-8: each stream has its own incremental decoder with `errors="replace"`, so a character split across
chunks survives and undecodable bytes become U+FFFD in the cast (the agent still receives the raw bytes).
"""

from __future__ import annotations

import codecs
import json
from dataclasses import dataclass, field
from json.encoder import encode_basestring


@dataclass(frozen=True)
class CastHeader:
    width: int
    height: int
    timestamp: int
    title: str
    env: dict[str, str] = field(default_factory=dict)

    def encode(self) -> bytes:
        header = {
            "version": 2,
            "width": self.width,
            "height": self.height,
            "timestamp": self.timestamp,
            "title": self.title,
            "env": self.env,
        }
        return _line(header)


class CastEncoder:
    """Turns session bytes into asciicast event lines; times are seconds since `start` (monotonic)."""

    def __init__(self, start: float) -> None:
        self._start = start
        self._decoders = {
            "o": codecs.getincrementaldecoder("utf-8")(errors="replace"),
            "i": codecs.getincrementaldecoder("utf-8")(errors="replace"),
        }

    def output(self, now: float, data: bytes) -> bytes:
        return self._event(now, "o", data)

    def input(self, now: float, data: bytes) -> bytes:
        return self._event(now, "i", data)

    def resize(self, now: float, cols: int, rows: int) -> bytes:
        return _line([self._offset(now), "r", f"{cols}x{rows}"])

    def marker(self, now: float, label: str) -> bytes:
        return _line([self._offset(now), "m", label])

    def finish(self, now: float) -> bytes:
        """Flushes characters held back by the decoders (an incomplete sequence at the very end)."""
        lines = []
        for code, decoder in self._decoders.items():
            text = decoder.decode(b"", final=True)
            if text:
                lines.append(_line([self._offset(now), code, text]))
        return b"".join(lines)

    def _event(self, now: float, code: str, data: bytes) -> bytes:
        decoder = self._decoders[code]
        if not data:
            return b""
        if data.isascii() and not data.translate(None, _NOT_CONTROL) and decoder.getstate()[0] == b"":
            # Most output is ASCII text: escaped as bytes, it skips decoding, JSON's per-character walk and
            # re-encoding (about 3.5 times faster); the bytes are the same as below.
            for raw, escaped in _ESCAPES:
                data = data.replace(raw, escaped)
            return b"[%r, \"%s\", \"%s\"]\n" % (self._offset(now), code.encode(), data)
        text = decoder.decode(data)
        if not text:
            return b""
        # The same bytes as _line() gives, without building and walking a list for every chunk of output.
        return f'[{self._offset(now)!r}, "{code}", {encode_basestring(text)}]\n'.encode()

    def _offset(self, now: float) -> float:
        return round(max(0.0, now - self._start), 6)


# The control characters JSON writes as \uXXXX, \b or \f (deleting every other byte leaves them, if any), and
# the escapes the fast path writes itself, backslash first.
_NOT_CONTROL = bytes(b for b in range(256) if b >= 0x20 or b in b"\n\r\t")
_ESCAPES = ((b"\\", b"\\\\"), (b'"', b'\\"'), (b"\n", b"\\n"), (b"\r", b"\\r"), (b"\t", b"\\t"))


def _line(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": ")).encode("utf-8") + b"\n"
