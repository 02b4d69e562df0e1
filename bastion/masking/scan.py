"""Finding and replacing secrets in one region of a buffer: the part of masking that knows no streaming.

Every detector runs over the original bytes and the overlaps are resolved once, so a value is never
masked twice and a marker is never mistaken for input. Regions are scanned in place with `pos`/`endpos`
so lookbehinds see the byte before the region exactly as they would in the whole text.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

from bastion.masking.ansi import Stripped
from bastion.masking.detectors import Detector, marker, value_span


class Candidate(NamedTuple):
    """One match: its full extent (where the stream must not be cut) and the value it replaces."""

    start: int
    end: int
    value_start: int
    value_end: int
    priority: int
    valid: bool


_DIGITS_AS_ZERO = bytes.maketrans(b"123456789 -", b"000000000__")
# Bytes before a region kept in the derived views so lookbehinds still see them.
_LOOKBEHIND = 8


class _Views:
    """The region as the detectors' hints and folded patterns read it, each built at most once."""

    def __init__(self, buf: bytes, start: int, end: int) -> None:
        self.base = max(0, start - _LOOKBEHIND)
        self._buf, self._start, self._end = buf, start, end
        self._made: dict[str, bytes] = {}
        self._first: dict[tuple[str, bytes], int] = {}

    def get(self, name: str) -> bytes:
        if name not in self._made:
            region = self._buf[self.base : self._end]
            if name == "raw":
                self._made[name] = region
            else:
                self._made[name] = region.lower() if name == "lower" else region.translate(_DIGITS_AS_ZERO)
        return self._made[name]

    def first(self, name: str, hint: bytes) -> int:
        """The first occurrence of hint in the region (in view coordinates); detectors share hints."""
        key = (name, hint)
        if key not in self._first:
            self._first[key] = self.get(name).find(hint, self._start - self.base, self._end - self.base)
        return self._first[key]


def _segments(detector: Detector, views: _Views, buf: bytes, start: int, end: int) -> Iterator[tuple[int, int]]:
    """The parts of buf[start:end] worth scanning: the lines holding a hint, from `hint_back` before it.

    No pattern crosses a line break, so scanning only those lines finds exactly what scanning the whole
    region would, at a fraction of the cost on ordinary output.
    """
    if not detector.hints:
        yield start, end
        return
    text, offset = views.get(detector.hint_view), views.base
    upcoming = {hint: views.first(detector.hint_view, hint) for hint in detector.hints}
    at = start
    while True:
        live = [p for p in upcoming.values() if p >= 0]
        if not live:
            return
        hit = min(live) + offset
        line_start = max(buf.rfind(b"\n", at, hit), buf.rfind(b"\r", at, hit)) + 1
        breaks = [b for b in (buf.find(b"\n", hit, end), buf.find(b"\r", hit, end)) if b >= 0]
        seg_end = min(breaks) + 1 if breaks else end
        yield max(at, line_start, hit - detector.hint_back), seg_end
        at = seg_end
        for hint, p in upcoming.items():
            if 0 <= p < at - offset:
                upcoming[hint] = text.find(hint, at - offset, end - offset)


def collect(detectors: tuple[Detector, ...], buf: bytes, start: int, end: int) -> list[Candidate]:
    """Every match of every detector in buf[start:end], valid or not, ordered by value start.

    A region holding escape sequences is also scanned without them (see ansi.py). A value found in the
    original bytes starting at an escape took the sequence for text (`password=\x1b[01` stops at `;`):
    it gives way to what the view finds. The view keeps the byte before the region for lookbehinds: the stream never
    starts a region inside or right after an escape sequence.
    """
    found = _matches(detectors, buf, start, end)
    if buf.find(b"\x1b", start, end) >= 0:
        context = max(0, start - 1)
        view = Stripped(buf, context, end)
        found = [c for c in found if buf[c.value_start : c.value_start + 1] != b"\x1b"]
        for c in _matches(detectors, view.text, start - context, len(view.text)):
            found.append(
                c._replace(
                    start=view.to_buf(c.start),
                    end=view.end_to_buf(c.end),
                    value_start=view.to_buf(c.value_start),
                    value_end=view.end_to_buf(c.value_end),
                )
            )
    found.sort(key=lambda c: (c.value_start, c.priority, c.value_start - c.value_end))
    return found


def _matches(detectors: tuple[Detector, ...], buf: bytes, start: int, end: int) -> list[Candidate]:
    found: list[Candidate] = []
    views = _Views(buf, start, end)
    for priority, detector in enumerate(detectors):
        text, offset = (views.get("lower"), views.base) if detector.folded else (buf, 0)
        for seg_start, seg_end in _segments(detector, views, buf, start, end):
            for match in detector.pattern.finditer(text, seg_start - offset, seg_end - offset):
                vstart, vend = value_span(detector, match)
                valid = detector.validator is None or detector.validator(match.group())
                found.append(
                    Candidate(
                        match.start() + offset, match.end() + offset, vstart + offset, vend + offset, priority, valid
                    )
                )
    return found


def resolve(candidates: list[Candidate], limit: int) -> list[Candidate]:
    """Leftmost value wins, then the earlier detector, then the longer value; only matches ending by limit."""
    chosen: list[Candidate] = []
    last_end = -1
    for cand in candidates:
        if cand.valid and cand.end <= limit and cand.value_start >= last_end and cand.value_end > cand.value_start:
            chosen.append(cand)
            last_end = cand.value_end
    return chosen


def render(
    detectors: tuple[Detector, ...],
    buf: bytes,
    start: int,
    end: int,
    chosen: list[Candidate],
    counts: dict[str, int],
) -> bytes:
    """buf[start:end] with each chosen value replaced by its marker; counts gain one per replacement."""
    if not chosen:
        return buf[start:end]
    pieces: list[bytes] = []
    at = start
    for cand in chosen:
        kind = detectors[cand.priority].name
        pieces.append(buf[at : cand.value_start])
        pieces.append(marker(kind))
        counts[kind] = counts.get(kind, 0) + 1
        at = cand.value_end
    pieces.append(buf[at:end])
    return b"".join(pieces)


def safe_cut(candidates: list[Candidate], escapes: list[tuple[int, int]], target: int, floor: int) -> int:
    """The last offset at or before target that no match straddles, so the next window rescans cleanly.

    It is not inside or right after an escape sequence either, so the next window's byte before its
    start is the one a whole-text scan would see. Falls back to target when chained matches reach back
    to floor (a pathological run of look-alikes).
    """
    cut = target
    moved = True
    while moved:
        moved = False
        for cand in candidates:
            if cand.start < cut < cand.end:
                cut = cand.start
                moved = True
        for esc_start, esc_end in escapes:
            if esc_start < cut <= esc_end:
                cut = esc_start
                moved = True
    return cut if cut > floor else target
