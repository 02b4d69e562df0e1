"""Finding and replacing secrets in one region of a buffer: the part of masking that knows no streaming.

Every detector runs over the original bytes and the overlaps are resolved once, so a value is never
masked twice and a marker is never mistaken for input. Regions are scanned in place with `pos`/`endpos`
so lookbehinds see the byte before the region exactly as they would in the whole text.
"""

from __future__ import annotations

from typing import NamedTuple

from bastion.masking.detectors import Detector, marker, value_span


class Candidate(NamedTuple):
    """One match: its full extent (where the stream must not be cut) and the value it replaces."""

    start: int
    end: int
    value_start: int
    value_end: int
    priority: int
    valid: bool


def collect(detectors: tuple[Detector, ...], buf: bytes, start: int, end: int) -> list[Candidate]:
    """Every match of every detector in buf[start:end], valid or not, ordered by value start."""
    found: list[Candidate] = []
    for priority, detector in enumerate(detectors):
        for match in detector.pattern.finditer(buf, start, end):
            vstart, vend = value_span(detector, match)
            valid = detector.validator is None or detector.validator(match.group())
            found.append(Candidate(match.start(), match.end(), vstart, vend, priority, valid))
    found.sort(key=lambda c: (c.value_start, c.priority, c.value_start - c.value_end))
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


def safe_cut(candidates: list[Candidate], target: int, floor: int) -> int:
    """The last offset at or before target that no match straddles, so the next window rescans cleanly.

    Falls back to target when chained matches reach back to floor (a pathological run of look-alikes).
    """
    cut = target
    moved = True
    while moved:
        moved = False
        for cand in candidates:
            if cand.start < cut < cand.end:
                cut = cand.start
                moved = True
    return cut if cut > floor else target
