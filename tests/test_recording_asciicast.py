"""asciicast event lines: the ASCII fast path writes exactly the bytes the general JSON path writes."""

from __future__ import annotations

import codecs
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.recording.asciicast import CastEncoder, _line

ASCII_TEXT = st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=200).map(str.encode)
# What the fast path takes: printable ASCII with the escapes it writes itself.
PLAIN_TEXT = st.text(alphabet=st.sampled_from('ab "\\\t\r\n{}~\x7f'), max_size=200).map(str.encode)
UTF8_TEXT = st.text(max_size=50).map(str.encode)
CHUNKS = st.lists(st.one_of(PLAIN_TEXT, ASCII_TEXT, UTF8_TEXT, st.binary(max_size=40)), max_size=12)


def _reference(chunks: list[bytes], cut: int) -> list[bytes]:
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    data = b"".join(chunks)
    lines = []
    for piece in (data[:cut], data[cut:]) if cut else (data,):
        text = decoder.decode(piece)
        if text:
            lines.append(_line([1.5, "o", text]))
    return lines


@settings(max_examples=400)
@given(CHUNKS, st.integers(min_value=0, max_value=400))
def test_event_lines_match_json_whatever_the_bytes(chunks: list[bytes], cut: int) -> None:
    data = b"".join(chunks)
    cut = min(cut, len(data))
    encoder = CastEncoder(0.0)
    pieces = (data[:cut], data[cut:]) if cut else (data,)
    lines = [line for piece in pieces if (line := encoder.output(1.5, piece))]
    assert lines == _reference(chunks, cut)
    for line in lines:
        assert json.loads(line)[1] == "o"


def test_a_character_split_across_chunks_is_kept_whole() -> None:
    encoder = CastEncoder(0.0)
    euro = "€ ok\n".encode()
    first, second = encoder.output(1.0, euro[:1]), encoder.output(2.0, euro[1:] + b'say "hi"\t\\\n')
    assert first == b""
    assert json.loads(second)[2] == '€ ok\nsay "hi"\t\\\n'


def test_controls_other_than_newline_tab_and_return_take_the_json_path() -> None:
    line = CastEncoder(0.0).output(1.0, b"bell\x07 back\x08 feed\x0c del\x7f\n")
    assert line == _line([1.0, "o", "bell\x07 back\x08 feed\x0c del\x7f\n"])


def test_plain_ascii_with_every_escape() -> None:
    text = 'say "hi"\tto C:\\temp\r\n'
    assert CastEncoder(0.0).output(1.0, text.encode()) == _line([1.0, "o", text])
