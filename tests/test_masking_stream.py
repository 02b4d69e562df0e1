"""The streaming masker: chunking never changes the output, key blocks never leak, holding is bounded."""

from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.masking import Masker, MaskingPolicy, MaskingRules, mask_bytes
from bastion.masking.detectors import END_MARKER_MAX
from bastion.masking.stream import HOLD

RULES = MaskingPolicy().for_session(["agent"], "web-1", {})

KEY_BODY = b"b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW"
KEY = b"-----BEGIN OPENSSH PRIVATE KEY-----\n" + KEY_BODY + b"\n" + KEY_BODY + b"\n-----END OPENSSH PRIVATE KEY-----\n"
SECRETS = [
    b"AKIAIOSFODNN7EXAMPLE",
    b"aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    b"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    b"ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8",
    b"glpat-AbCdEfGhIjKlMnOpQrSt",
    b"xoxb-123456789012-AbCdEfGhIjKl",
    b"4111 1111 1111 1111",
    b"5555555555554444",
    b"123-45-6789",
    b'"password": "hunter two"',
    b"token=abc123",
]
SAMPLE = (
    b"Last login: Tue May 14 10:00:01 2024 from 10.0.0.7\n"
    + b"\n".join(b"line %d: value %s ok" % (i, s) for i, s in enumerate(SECRETS))
    + b"\nkey follows\n"
    + KEY
    + b"card 4111111111111112 is not one\r\nprompt$ "
)


def stream(data: bytes, cuts: list[int], rules: MaskingRules = RULES) -> tuple[bytes, dict[str, int]]:
    """Feeds data cut at the given offsets, flushing only at the end."""
    masker = Masker(rules)
    bounds = [0, *sorted(set(cuts)), len(data)]
    out = b"".join(masker.feed(data[a:b]) for a, b in pairwise(bounds))
    return out + masker.flush(), masker.counts


def whole(data: bytes) -> bytes:
    return mask_bytes(RULES, data)


def test_whole_sample_is_masked() -> None:
    out = whole(SAMPLE)
    for secret in SECRETS:
        assert secret not in out
    assert KEY_BODY not in out
    assert b"key follows\n[MASKED:private-key]\ncard 4111111111111112 is not one\r\nprompt$ " in out
    assert b"Last login: Tue May 14 10:00:01 2024 from 10.0.0.7\n" in out


def test_cut_at_every_offset_matches_whole() -> None:
    expected = whole(SAMPLE)
    for offset in range(len(SAMPLE) + 1):
        assert stream(SAMPLE, [offset])[0] == expected, offset


def test_byte_at_a_time_matches_whole_and_counts() -> None:
    out, counts = stream(SAMPLE, list(range(len(SAMPLE))))
    assert out == whole(SAMPLE)
    assert counts == {
        "aws-access-key": 1,
        "aws-secret-key": 1,
        "jwt": 1,
        "github-token": 1,
        "gitlab-token": 1,
        "slack-token": 1,
        "card-number": 2,
        "us-ssn": 1,
        "password-assignment": 2,
        "private-key": 1,
    }


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(SAMPLE)), max_size=40))
def test_random_chunkings_match_whole(cuts: list[int]) -> None:
    assert stream(SAMPLE, cuts)[0] == whole(SAMPLE)


FRAGMENTS = [
    *SECRETS,
    b"\n",
    b"\r\n",
    b" ",
    b"\t",
    b"-",
    b"=",
    b":",
    b'"',
    b"'",
    b"0",
    b"4111",
    b"1234567890",
    b"password",
    b"secret",
    b"token",
    b"api_key",
    b"AKIA",
    b"eyJ",
    b"gh",
    b"xox",
    b"glpat-",
    b"-----BEGIN RSA PRIVATE KEY-----",
    b"-----END RSA PRIVATE KEY-----",
    b"-----BEGIN ",
    b"PRIVATE KEY-----",
    b"ordinary log text",
    b"\xff\xfe",
    b"x" * 300,
    b"\x1b[01;31m",
    b"\x1b[m\x1b[K",
    b"\x1b]0;title\x07",
    b"\x1b",
    b"\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtz",
    b"\nMC4CAQAwBQYDK2VwBCIEIAC7pUkXQ81ybdP2RVKDfo8A9lyVeYsln1MW1Eba3fFh",
    b"AAAABBBB",
    b"$ ",
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=60), st.data())
def test_generated_text_any_chunking_matches_whole(parts: list[bytes], data: st.DataObject) -> None:
    text = b"".join(parts)
    cuts = data.draw(st.lists(st.integers(min_value=0, max_value=len(text)), max_size=20))
    assert stream(text, cuts)[0] == whole(text)


def test_long_line_is_held_boundedly_and_still_masked() -> None:
    filler = b"abcdefghij " * 1000
    line = b"".join(filler + s + b" " for s in SECRETS) + b"\n"
    masker = Masker(RULES)
    out = b""
    for i in range(0, len(line), 1000):
        out += masker.feed(line[i : i + 1000])
        assert masker.held < HOLD + 1000
    out += masker.flush()
    assert out == whole(line)
    assert all(s not in out for s in SECRETS)
    assert masker.counts["card-number"] == 2


def test_long_line_chunkings_match_whole() -> None:
    line = (b"x" * (HOLD - 30) + b" " + SECRETS[2] + b" " + b"y" * (HOLD - 5) + b" " + SECRETS[0] + b" ") * 3
    expected = whole(line)
    assert SECRETS[2] not in expected
    assert SECRETS[0] not in expected
    for size in (1, 7, 4096, HOLD - 1, HOLD + 3):
        assert stream(line, list(range(size, len(line), size)))[0] == expected, size


def test_private_key_across_many_chunks_emits_nothing_of_it() -> None:
    masker = Masker(RULES)
    out = [masker.feed(b"cat id_ed25519\n")]
    chunks = [KEY[i : i + 5] for i in range(0, len(KEY), 5)]
    for chunk in chunks[:-1]:
        out.append(masker.feed(chunk))
        out.append(masker.flush())  # idle between chunks must not leak the block
    out.append(masker.feed(chunks[-1] + b"$ "))
    out.append(masker.flush())
    text = b"".join(out)
    # The marker's own text may show before the idle flush that cut it; the key material never does.
    assert text == b"cat id_ed25519\n-----BEGIN OPENSSH PRIVATE KEY[MASKED:private-key]\n$ "
    assert masker.counts == {"private-key": 1}


def test_key_block_in_whole_chunks_with_idle_flushes_shows_only_the_marker() -> None:
    masker = Masker(RULES)
    lines = KEY.splitlines(keepends=True)
    out = b"".join(masker.feed(line) + masker.flush() for line in lines)
    assert out == b"[MASKED:private-key]\n"


def test_secret_cut_by_an_idle_flush_has_its_remainder_masked() -> None:
    masker = Masker(RULES)
    shown = masker.feed(b"export GITHUB_TOKEN=ghp_A1b2C3d4E5f6") + masker.flush()
    assert shown == b"export GITHUB_TOKEN=[MASKED:password-assignment]"
    rest = masker.feed(b"G7h8I9j0K1l2M3n4O5p6Q7r8 done\n")
    assert rest == b"[MASKED:github-token] done\n"
    masker = Masker(RULES)
    assert masker.feed(b"AKIAIOSFOD") + masker.flush() == b"AKIAIOSFOD"
    assert masker.feed(b"NN7EXAMPLE\n") == b"[MASKED:aws-access-key]\n"


def test_private_key_without_end_is_dropped_not_held() -> None:
    masker = Masker(RULES)
    out = masker.feed(b"-----BEGIN RSA PRIVATE KEY-----\n")
    for _ in range(200):
        out += masker.feed(KEY_BODY + b"\n")
        assert masker.held <= END_MARKER_MAX
    out += masker.flush()
    assert out == b"[MASKED:private-key]"
    out += masker.feed(b"-----END RSA PRIVATE KEY-----\nback to normal\n")
    assert out == b"[MASKED:private-key]\nback to normal\n"


def test_complete_lines_are_emitted_at_once_and_partial_line_waits_for_flush() -> None:
    masker = Masker(RULES)
    assert masker.feed(b"one\ntwo password=hun") == b"one\n"
    assert masker.feed(b"ter2 three") == b""
    assert masker.flush() == b"two password=[MASKED:password-assignment] three"
    assert masker.held == 0


def test_masking_off_passes_bytes_through_untouched() -> None:
    masker = Masker(MaskingRules(()))
    assert masker.feed(b"AKIAIOSFODNN7EXAMPLE partial") == b"AKIAIOSFODNN7EXAMPLE partial"
    assert masker.flush() == b""
    assert masker.counts == {}


BODY_SAMPLE = (
    b"db_\x1b[01;31m\x1b[Kpassword\x1b[m\x1b[K=hunter2secret\n"
    + b"\x1b[1m"
    + SECRETS[3][:9]
    + b"\x1b[0m"
    + SECRETS[3][9:]
    + b" MYSQL_PWD=hunter2\n"
    + KEY_BODY
    + b"\n"
    + KEY_BODY
    + b"\n-----END OPENSSH PRIVATE KEY-----\n"
    + b"$ sed -n 2,3p key.pem\r\n"
    + b"MC4CAQAwBQYDK2VwBCIEIAC7pUkXQ81ybdP2RVKDfo8A9lyVeYsln1MW1Eba3fFh\r\nAAAA\r\n$ "
)


def test_escapes_and_key_bodies_cut_at_every_offset_match_whole() -> None:
    expected = whole(BODY_SAMPLE)
    assert b"hunter2" not in expected and SECRETS[3][9:] not in expected
    assert KEY_BODY not in expected and b"VeYsln1MW" not in expected
    assert expected.count(b"[MASKED:private-key]") == 2
    assert expected.endswith(b"[MASKED:private-key]\r\n$ ")
    for offset in range(len(BODY_SAMPLE) + 1):
        assert stream(BODY_SAMPLE, [offset])[0] == expected, offset
    assert stream(BODY_SAMPLE, list(range(len(BODY_SAMPLE))))[0] == expected


def test_long_coloured_line_chunkings_match_whole() -> None:
    colour = b"\x1b[01;31m" + SECRETS[2][:20] + b"\x1b[m" + SECRETS[2][20:] + b"\x1b[K "
    line = (b"\x1b[1mab\x1b[0m " * 3000 + colour) * 3 + b"\n"
    expected = whole(line)
    assert SECRETS[2][20:] not in expected
    for size in (1, 4096, HOLD - 1, HOLD + 3):
        assert stream(line, list(range(size, len(line), size)))[0] == expected, size


def test_key_body_line_held_across_idle_flush_is_never_shown() -> None:
    masker = Masker(RULES)
    out = masker.feed(KEY_BODY + b"\n" + KEY_BODY[:30]) + masker.flush()
    out += masker.feed(KEY_BODY[30:] + b"\n-----END OPENSSH") + masker.flush()
    out += masker.feed(b" PRIVATE KEY-----\nok\n") + masker.flush()
    assert out == b"[MASKED:private-key]\nok\n"


def test_idle_flush_inside_a_trailing_colour_code_still_masks_the_value() -> None:
    key = b"3f786850e387550fdab836ed7e6dc881"
    for sequence in (b"\x1b[0m", b"\x1b[01;31m", b"\x1b(B"):
        for cut in range(1, len(sequence)):
            masker = Masker(RULES)
            out = masker.feed(b"APP_KEY=" + key + sequence[:cut]) + masker.flush()
            out += masker.feed(sequence[cut:] + b"\n") + masker.flush()
            assert out == b"APP_KEY=[MASKED:env-secret]" + sequence + b"\n", (sequence, cut)


def test_idle_flush_before_a_closing_quote_still_masks_the_value() -> None:
    masker = Masker(RULES)
    out = masker.feed(b'{"token": "abcDEF123456') + masker.flush()
    out += masker.feed(b'"}\n') + masker.flush()
    assert out == b'{"token": "[MASKED:password-assignment]"}\n'
