"""Terminal escape sequences (colours, cursor moves, titles, hyperlinks) seen through, not matched on.

`grep --color=always password app.conf` prints `db_\x1b[01;31m\x1b[Kpassword\x1b[m\x1b[K=hunter2`: the
label is split by colour codes, and a highlighted token can be too. Detectors also run over a view of
the text with CSI, OSC and charset-selection sequences removed; each match found there maps back to the
original bytes, so its replacement covers the escapes inside the secret and keeps those around it.
Sequences hold no line break, so a view never joins two lines.
"""

from __future__ import annotations

import re
from bisect import bisect_right

ESCAPE = re.compile(rb"\x1b(?:\[[0-?]{0,32}[ -/]{0,4}[@-~]|\][^\x07\x1b\r\n]{0,1024}(?:\x07|\x1b\\)|[()*+][ -~])")
# The longest sequence ESCAPE matches (an OSC): an escape byte further back that begins none never will.
ESCAPE_MAX = 2 + 1024 + 2


class Stripped:
    """buf[start:end] without escape sequences (`text`), and the way back to offsets in buf."""

    def __init__(self, buf: bytes, start: int, end: int) -> None:
        pieces: list[bytes] = []
        self._view_at: list[int] = [0]
        self._buf_at: list[int] = [start]
        length = 0
        for esc in ESCAPE.finditer(buf, start, end):
            pieces.append(buf[self._buf_at[-1] : esc.start()])
            length += esc.start() - self._buf_at[-1]
            self._view_at.append(length)
            self._buf_at.append(esc.end())
        pieces.append(buf[self._buf_at[-1] : end])
        self.text = b"".join(pieces)

    def to_buf(self, pos: int) -> int:
        """The offset in buf of the view byte at pos (pos is a view offset)."""
        i = bisect_right(self._view_at, pos) - 1
        return self._buf_at[i] + pos - self._view_at[i]

    def end_to_buf(self, pos: int) -> int:
        """The offset in buf just after the view byte before pos: a match's end, escapes after it excluded."""
        return self.to_buf(pos - 1) + 1 if pos > 0 else self.to_buf(0)


def escape_spans(buf: bytes, start: int, end: int) -> list[tuple[int, int]]:
    """The escape sequences in buf[start:end]; a stream is never cut inside one or right after one."""
    return [esc.span() for esc in ESCAPE.finditer(buf, start, end)]
