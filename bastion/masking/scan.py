"""Finding and replacing secrets in one region of a buffer: the part of masking that knows no streaming.

Every detector runs over the original bytes and the overlaps are resolved once, so a value is never
masked twice and a marker is never mistaken for input. Regions are scanned in place with `pos`/`endpos`
so lookbehinds see the byte before the region exactly as they would in the whole text.
"""

from __future__ import annotations

from typing import NamedTuple

from bastion.masking.ansi import Stripped
from bastion.masking.detectors import Detector, marker, value_span
from bastion.masking.hints import Hint, Region, hint


class Candidate(NamedTuple):
    """One match: its full extent (where the stream must not be cut) and the value it replaces."""

    start: int
    end: int
    value_start: int
    value_end: int
    priority: int
    valid: bool


# Bytes before a segment kept when it is lowered, so lookbehinds still see them.
_LOOKBEHIND = 8


class Scanner:
    """The detectors of one stream, in priority order, each with its hints looked up once."""

    def __init__(self, detectors: tuple[Detector, ...]) -> None:
        self.detectors = detectors
        self._hints = tuple(tuple(hint(text, d.hint_view) for text in d.hints) for d in detectors)

    def collect(self, buf: bytes, start: int, end: int, region: Region) -> list[Candidate]:
        """Every match of every detector in buf[start:end], valid or not, ordered by value start.

        `region` (starting at start, ending at or after end) carries hint lookups already made there.
        A region holding escape sequences is also scanned without them (see ansi.py). A value found in
        the original bytes starting at an escape took the sequence for text (`password=\x1b[01` stops at
        `;`): it gives way to what the view finds. The view keeps the byte before the region for
        lookbehinds: the stream never starts a region inside or right after an escape sequence.
        """
        found = self._matches(buf, start, end, region)
        if buf.find(b"\x1b", start, end) >= 0:
            context = max(0, start - 1)
            view = Stripped(buf, context, end)
            text = view.text
            found = [c for c in found if buf[c.value_start : c.value_start + 1] != b"\x1b"]
            for c in self._matches(text, start - context, len(text), Region(text, start - context, len(text))):
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

    def _matches(self, buf: bytes, start: int, end: int, region: Region) -> list[Candidate]:
        found: list[Candidate] = []
        first = region.first
        for priority, detector in enumerate(self.detectors):
            hints = self._hints[priority]
            if not hints:
                segments = [(start, end)]
            else:
                upcoming = [first(h) for h in hints]
                if max(upcoming) < 0:
                    continue
                segments = _segments(hints, upcoming, detector.hint_back, region, end)
            finditer, validator, groups = detector.pattern.finditer, detector.validator, detector.value_groups
            for seg_start, seg_end in segments:
                if detector.folded:
                    offset = max(0, seg_start - _LOOKBEHIND)
                    text = buf[offset:seg_end].lower()
                else:
                    offset, text = 0, buf
                for match in finditer(text, seg_start - offset, seg_end - offset):
                    mstart, mend = match.span()
                    vstart, vend = value_span(detector, match) if groups else (mstart, mend)
                    valid = validator is None or validator(match.group())
                    found.append(
                        Candidate(mstart + offset, mend + offset, vstart + offset, vend + offset, priority, valid)
                    )
        return found


def _segments(
    hints: tuple[Hint, ...], upcoming: list[int], back: int, region: Region, end: int
) -> list[tuple[int, int]]:
    """The parts of buf[region.start:end] worth scanning: the lines holding a hint, from `back` bytes before.

    `upcoming` holds each hint's first occurrence in the region. No pattern crosses a line break, so
    scanning only those lines finds exactly what scanning the whole region would, at a fraction of the
    cost on ordinary output.
    """
    segments: list[tuple[int, int]] = []
    at = region.start
    while True:
        hit = end
        for p in upcoming:
            if 0 <= p < hit:
                hit = p
        if hit == end:
            return segments
        seg_start = max(region.line_start(at, hit), hit - back) if back else hit
        at = region.line_end(hit, end)
        segments.append((seg_start, at))
        upcoming = [region.find(h, at) if 0 <= p < at else p for h, p in zip(hints, upcoming, strict=True)]


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
