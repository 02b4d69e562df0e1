"""Finding the detectors' hints in a region cheaply, since on ordinary output that is nearly all the work.

A hint cannot occur in a region where one of its bytes does not, and whether a byte occurs is one memchr,
far cheaper than searching for the hint. Ordinary output lacks some uncommon byte of most hints (an
upper-case J for "eyJ", an x for "xox", a * for ":*:"), so most searches never run.

The rest cost a scan of the region each, and those that start alike share it: hints whose scan starts
at the same byte form a group, found by one regex whose alternatives all follow that byte; only when the
group occurs is each member looked for, from there. In the folded view k, p and c read as one marker
byte, which every keyword of the password detectors holds ("key", "pass", "secret", "token",
"credential"), so one scan covers them all; the three together are still rarer than most single letters.

The "lower" and "digits" views share that folded view: lower case, every digit 0, a space or dash _, k,
p and c the marker. A hint occurs there wherever it occurs in its own view (and in a few more places,
which costs a line scan, never a miss), and one translation replaces two.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache

_UPPER = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_LOWER = _UPPER.lower()
_MARKER = 1
_MARKED = b"kpc"
FOLD = bytes.maketrans(
    _UPPER + b"123456789 -" + _MARKED + _MARKED.upper(),
    _LOWER + b"000000000__" + bytes([_MARKER]) * 2 * len(_MARKED),
)
# Bytes of text, roughly from the most to the least common; a byte not listed is rarer than all of them.
# Rarer bytes are asked about first, and those past the common ones make a hint sparse.
_BY_FREQUENCY = b"=-.:/,etaoinsrhldcumfpgwybvkxjqzETAOINSRHLDCUMFPGWYBVKXJQZ"
_COMMON = _BY_FREQUENCY[: _BY_FREQUENCY.index(b"x")]
# Bytes in nearly every region: asking whether they occur almost never rules a hint out.
_EVERYWHERE = frozenset(b"0123456789 \t\r\n_" + bytes([_MARKER]) + _BY_FREQUENCY[: _BY_FREQUENCY.index(b"h")])
# How many of a hint's bytes are asked about: the rarest ones rule out most, the rest rarely pay.
_GATES = 3
# From this length bytes.find skips ahead far enough to beat the regex engine's literal-prefix scan.
_FIND_FROM = 8
# Occurrences of an uncommon byte checked one by one before trying the next one, of at most _PIVOTS,
# and then a search of the whole region.
_SPARSE = 8
_PIVOTS = 2

Search = Callable[[bytes, int, int], int]


class Hint:
    """One hint as searched: its bytes in the view searched, the bytes of buf that must occur, a search.

    A hint holding an uncommon byte (upper case, most punctuation) is looked for where that byte is: a
    region holding one (a secret on one of its lines, say) mostly holds it a few times, and a few memchr
    calls are cheaper than a scan. Any other hint is scanned for from its `lead` byte: the marker in a
    folded hint holding one; in one starting with folded digits (which are common), the last byte that
    is not one, so hints ending alike ("0000_0000" and "000_00_0000" end in "_0000") share a literal the
    regex engine scans for whole; else the first. A lookbehind checks the bytes before the lead byte.
    Hints scanned for from the same byte make a group.
    """

    def __init__(self, needle: bytes, folded: bool) -> None:
        self.needle, self.folded = needle, folded
        rarest = sorted(set(needle) - _EVERYWHERE, key=_rarity)
        self.gates: tuple[tuple[bytes, ...], ...] = tuple(_readings(c, folded) for c in rarest[:_GATES])
        self.lead = _lead(needle) if folded else 0
        self.search = _searcher(needle, self.lead)
        pivots = [c for c in rarest if c not in _COMMON][:_PIVOTS]
        self.group: Group | None = None
        if pivots:
            self.search = _sparse(needle, pivots, self.search)
        else:
            self.group = group(needle[self.lead], folded)
            self.group.add(self)


def hint(text: bytes, view: str) -> Hint:
    """The Hint for a detector's hint text in its view ("raw", "lower" or "digits")."""
    return hint_in(text.translate(FOLD) if view != "raw" else text, view != "raw")


@cache
def hint_in(needle: bytes, folded: bool) -> Hint:
    """The one Hint for a needle, so detectors sharing it share its search in every region."""
    return Hint(needle, folded)


def _lead(needle: bytes) -> int:
    marker = needle.find(bytes([_MARKER]))
    if marker >= 0:
        return marker
    return len(needle.rstrip(b"0")) - 1 if needle.startswith(b"0") and needle.strip(b"0") else 0


def _rarity(c: int) -> int:
    """A sort key putting the rarest bytes first."""
    at = _BY_FREQUENCY.find(bytes([c]))
    return -at if at >= 0 else -len(_BY_FREQUENCY)


def _readings(c: int, folded: bool) -> tuple[bytes, ...]:
    """The bytes of buf that read as c: both cases of a letter in the folded view."""
    if folded and c in _LOWER:
        return bytes([c]), bytes([c]).upper()
    return (bytes([c]),)


def _after_lead(needle: bytes, lead: int, skip: int = 0) -> bytes:
    """A regex matching needle from its lead byte (`skip` bytes past it), a lookbehind checking the rest."""
    behind = b"(?<=" + re.escape(needle) + b")" if lead else b""
    return re.escape(needle[lead + skip :]) + behind


def _searcher(needle: bytes, lead: int) -> Search:
    """The faster way to find needle in a view, scanning from `lead` bytes into it.

    The regex engine scans for a literal's first byte and then compares, which is quick unless that byte
    is common; bytes.find skips by the needle's length, which wins once the needle is long or made of
    one common byte (a run of digits).
    """
    if not lead and (len(needle) >= _FIND_FROM or len(set(needle)) == 1):
        return lambda text, start, end: text.find(needle, start, end)
    pattern = re.compile(_after_lead(needle, lead))

    def search(text: bytes, start: int, end: int) -> int:
        found = pattern.search(text, start + lead, end)
        return -1 if found is None else found.start() - lead

    return search


def _sparse(needle: bytes, pivots: list[int], full: Search) -> Search:
    """A search stepping from one occurrence of a pivot byte to the next, `full` if every pivot proves common.

    Which uncommon byte is rare depends on the output ("INFO" on every line makes I common), so each
    pivot gets a few steps in turn.
    """
    steps = [(bytes([c]), needle.index(c)) for c in pivots]

    def search(text: bytes, start: int, end: int) -> int:
        for byte, back in steps:
            at = text.find(byte, start + back, end)
            for _ in range(_SPARSE):
                if at < 0:
                    return -1
                if text.startswith(needle, at - back, end):
                    return at - back
                at = text.find(byte, at + 1, end)
        return full(text, start, end)

    return search


class Group:
    """Hints of one view scanned for from the same byte: one regex finds where the first of them may be."""

    def __init__(self, byte: int, folded: bool) -> None:
        self.byte, self.folded = byte, folded
        self.members: list[Hint] = []
        self._pattern: re.Pattern[bytes] | None = None

    def add(self, h: Hint) -> None:
        self.members.append(h)
        self._pattern = None

    def search(self, text: bytes, start: int, end: int) -> int:
        """The offset of the lead byte of the first member occurring in text[start:end], or -1."""
        if self._pattern is None:
            branches = b"|".join(_after_lead(h.needle, h.lead, 1) for h in self.members)
            self._pattern = re.compile(re.escape(bytes([self.byte])) + b"(?:" + branches + b")")
        found = self._pattern.search(text, start, end)
        return -1 if found is None else found.start()


@cache
def group(byte: int, folded: bool) -> Group:
    """The one Group of hints scanned for from this byte in this view."""
    return Group(byte, folded)


class Region:
    """buf[start:end] as hints are looked up in it; answers are kept, since detectors share hints."""

    def __init__(self, buf: bytes, start: int, end: int) -> None:
        self.buf, self.start, self.end = buf, start, end
        self._folded: bytes | None = None
        self._occurs: dict[bytes, bool] = {}
        self._first: dict[Hint, int] = {}
        self._groups: set[Group] = set()

    def first(self, h: Hint) -> int:
        """The offset in buf of the first occurrence of h in the region, or -1."""
        at = self._first.get(h)
        if at is not None:
            return at
        if not self.possible(h):
            at = -1
        elif h.group is not None and len(h.group.members) > 1 and h.group not in self._groups:
            self._scan_group(h.group)
            return self._first[h]
        else:
            at = self.find(h, self.start)
        self._first[h] = at
        return at

    def find(self, h: Hint, at: int) -> int:
        """The offset in buf of the first occurrence of h in buf[at:end] (at >= start), or -1."""
        if not h.folded:
            return h.search(self.buf, at, self.end)
        found = h.search(self._fold(), at - self.start, self.end - self.start)
        return found + self.start if found >= 0 else -1

    def possible(self, h: Hint) -> bool:
        """False when a byte of h is missing from the region, so h cannot occur there."""
        for readings in h.gates:
            for byte in readings:
                if self.occurs(byte):
                    break
            else:
                return False
        return True

    def occurs(self, byte: bytes) -> bool:
        """Whether the region holds this byte (asked once, kept)."""
        seen = self._occurs.get(byte)
        if seen is None:
            seen = self._occurs[byte] = self.buf.find(byte, self.start, self.end) >= 0
        return seen

    def line_start(self, at: int, hit: int) -> int:
        """Where the line holding hit starts, or at if that is later."""
        start = self.buf.rfind(b"\n", at, hit) + 1
        if self.occurs(b"\r"):
            start = max(start, self.buf.rfind(b"\r", at, hit) + 1)
        return max(at, start)

    def line_end(self, hit: int, end: int) -> int:
        """Just after the line break ending the line holding hit, or end if none comes before it."""
        stop = self.buf.find(b"\n", hit, end)
        if self.occurs(b"\r"):
            cr = self.buf.find(b"\r", hit, end)
            if cr >= 0 and not 0 <= stop < cr:
                stop = cr
        return stop + 1 if stop >= 0 else end

    def _scan_group(self, g: Group) -> None:
        """Finds the first occurrence of every member of g in one pass, stepping from one hit to the next.

        Each hit is checked against every member not yet found; after a few hits the members still
        missing are searched for one by one, from the last hit.
        """
        self._groups.add(g)
        text, base = (self._fold(), self.start) if g.folded else (self.buf, 0)
        low, high = self.start - base, self.end - base
        missing = [h for h in g.members if h not in self._first]
        at = g.search(text, low, high)
        for _ in range(_SPARSE):
            if at < 0:
                break
            for h in list(missing):
                if at - h.lead >= low and text.startswith(h.needle, at - h.lead, high):
                    self._first[h] = at - h.lead + base
                    missing.remove(h)
            if not missing:
                return
            at = g.search(text, at + 1, high)
        for h in missing:
            self._first[h] = -1 if at < 0 else self.find(h, max(self.start, at - h.lead + base))

    def _fold(self) -> bytes:
        if self._folded is None:
            self._folded = self.buf[self.start : self.end].translate(FOLD)
        return self._folded
