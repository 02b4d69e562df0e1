"""The shortcuts that make clean output cheap never change what is masked.

`reference` masks a whole text the obvious way: every detector runs over every byte, with and without
escape sequences, and key blocks and bodies are followed from their openers. Streamed output, cut into
chunks anywhere, must be byte-identical to it, with the same counts; with idle flushes as well, it must
match the same detectors scanning every region in full. Underneath, every hint lookup is held to a
plain search of its view, and the Luhn tables to the checksum computed digit by digit.
"""

from __future__ import annotations

import re
from dataclasses import replace
from itertools import pairwise
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.masking import Detector, Masker, MaskingRules, load_masking
from bastion.masking.ansi import ESCAPE
from bastion.masking.detectors import (
    BUILTIN,
    END_MARKER_MAX,
    KEY_BODY_HINTS,
    KEY_BODY_LINE,
    KEY_BODY_START,
    PRIVATE_KEY_BEGIN,
    PRIVATE_KEY_END,
    key_body_start_ok,
    luhn_ok,
    marker,
)
from bastion.masking.hints import Region, hint
from bastion.masking.stream import HOLD, KEY_MARKER_MAX

SHIPPED = Path(__file__).resolve().parent.parent / "policies" / "masking.yaml"
RULES = load_masking(SHIPPED).for_session(["agent"], "web-1", {})
# The same detectors without hints: each one scans every region in full.
HINTLESS = MaskingRules(tuple(replace(d, hints=()) for d in RULES.detectors))

_BREAK = re.compile(rb"\r\n|\r|\n")
_END_PREFIX = re.compile(rb"-[-A-Z0-9 ]*")


def reference(rules: MaskingRules, text: bytes) -> tuple[bytes, dict[str, int]]:
    """The whole text masked at once, flushed only at its end; and the masks by kind."""
    detectors = [d for d in rules.detectors if d.name != "private-key"]
    keys = len(detectors) < len(rules.detectors)
    counts: dict[str, int] = {}
    buf = b"\n" + text
    out: list[bytes] = []
    pos = 1
    while pos < len(buf):
        opener = _opener(buf, pos) if keys else None
        out.append(_mask_plain(detectors, buf, pos, len(buf) if opener is None else opener[0], counts))
        if opener is None:
            break
        out.append(marker("private-key"))
        counts["private-key"] = counts.get("private-key", 0) + 1
        _, stop, block = opener
        if block:
            close = _marker(PRIVATE_KEY_END, buf, stop)
            if close is None:
                break
            pos = close[1]
        else:
            after = _after_body(buf, stop)
            if after is None:
                break
            pos = after
    return b"".join(out), counts


def _opener(buf: bytes, pos: int) -> tuple[int, int, bool] | None:
    begin = _marker(PRIVATE_KEY_BEGIN, buf, pos)
    limit = len(buf) if begin is None else begin[0]
    for body in KEY_BODY_START.finditer(buf, pos - 1, limit):
        if key_body_start_ok(body.group()[1:]):
            return body.start() + 1, body.end(), False
    return None if begin is None else (begin[0], begin[1], True)


def _marker(pattern: re.Pattern[bytes], buf: bytes, pos: int) -> tuple[int, int] | None:
    """The first key marker from pos: in the bytes as they are, or with escapes removed (KEY_MARKER_MAX at most)."""
    found = [m.span() for m in [pattern.search(buf, pos)] if m is not None]
    index = _text_bytes(buf, pos, len(buf))
    view = bytes(buf[i] for i in index)
    for at in range(len(view)):
        m = pattern.match(view, at)
        if m is not None and index[m.end() - 1] + 1 - index[at] <= KEY_MARKER_MAX:
            found.append((index[at], index[m.end() - 1] + 1))
            break
    return min(found, key=lambda span: span[0]) if found else None


def _text_bytes(buf: bytes, start: int, end: int) -> list[int]:
    """The offsets of buf[start:end] that are not inside an escape sequence."""
    inside = set()
    for esc in ESCAPE.finditer(buf, start, end):
        inside.update(range(*esc.span()))
    return [i for i in range(start, end) if i not in inside]


def _after_body(buf: bytes, pos: int) -> int | None:
    """Where output resumes after a key body whose last dropped line ends at pos; None: the rest is held."""
    while True:
        brk = _BREAK.match(buf, pos)
        line = pos if brk is None else brk.end()
        closing = PRIVATE_KEY_END.match(buf, line)
        if closing is not None:
            return closing.end()
        body = KEY_BODY_LINE.match(buf, line)
        if body is not None and body.end() < len(buf) and buf[body.end()] in b"\r\n":
            pos = body.end()
            continue
        partial = buf[line:]
        if (
            not partial
            or (body is not None and body.end() == len(buf))
            or (len(partial) < END_MARKER_MAX and _END_PREFIX.fullmatch(partial) is not None)
        ):
            return None
        return pos


Found = tuple[int, int, int, int, int, bool]  # start, end, value start, value end, priority, valid


# A colour code or charset selection cut by the end of the text, not scanned as part of a value.
_OPEN_ESCAPE_AT_END = re.compile(rb"\x1b(?:\[[0-?]{0,32}[ -/]{0,4}|[()*+])?\Z")


def _mask_plain(detectors: list[Detector], buf: bytes, start: int, end: int, counts: dict[str, int]) -> bytes:
    limit = end
    if end == len(buf):
        tail = _OPEN_ESCAPE_AT_END.search(buf, start, end)
        limit = end if tail is None else tail.start()
    found = _matches(detectors, buf, start, limit)
    if b"\x1b" in buf[start:limit]:
        context = start - 1
        index = _text_bytes(buf, context, limit)
        view = bytes(buf[i] for i in index)

        def to_buf(p: int) -> int:
            return index[p] if p < len(index) else limit

        def end_to_buf(p: int) -> int:
            return index[p - 1] + 1 if p > 0 else to_buf(0)

        found = [f for f in found if buf[f[2] : f[2] + 1] != b"\x1b"]
        for s, e, vs, ve, prio, valid in _matches(detectors, view, start - context, len(view)):
            found.append((to_buf(s), end_to_buf(e), to_buf(vs), end_to_buf(ve), prio, valid))
    found.sort(key=lambda f: (f[2], f[4], f[2] - f[3]))
    pieces: list[bytes] = []
    at = start
    for _, e, vs, ve, prio, valid in found:
        if valid and e <= limit and vs >= at and ve > vs:
            kind = detectors[prio].name
            pieces += [buf[at:vs], marker(kind)]
            counts[kind] = counts.get(kind, 0) + 1
            at = ve
    pieces.append(buf[at:end])
    return b"".join(pieces)


def _matches(detectors: list[Detector], buf: bytes, start: int, end: int) -> list[Found]:
    found: list[Found] = []
    for priority, detector in enumerate(detectors):
        text = buf.lower() if detector.folded else buf
        for match in detector.pattern.finditer(text, start, end):
            span = match.span()
            for group in detector.value_groups:
                if match.group(group) is not None:
                    span = match.span(group)
                    break
            valid = detector.validator is None or detector.validator(match.group())
            found.append((match.start(), match.end(), span[0], span[1], priority, valid))
    return found


def stream(
    rules: MaskingRules, data: bytes, cuts: list[int], flushes: frozenset[int] = frozenset()
) -> tuple[bytes, dict[str, int]]:
    """Feeds data cut at the given offsets, flushing after the chunks ending at `flushes` and at the end."""
    masker = Masker(rules)
    out: list[bytes] = []
    for a, b in pairwise([0, *sorted(set(cuts)), len(data)]):
        out.append(masker.feed(data[a:b]))
        if b in flushes:
            out.append(masker.flush())
    out.append(masker.flush())
    return b"".join(out), masker.counts


UPPER = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"
LOWER = b"abcdefghijklmnopqrstuvwxyz"
DIGITS = b"0123456789"
ALNUM = UPPER + LOWER + DIGITS
B64URL = ALNUM + b"_-"


def chars(alphabet: bytes, low: int, high: int) -> st.SearchStrategy[bytes]:
    return st.lists(st.sampled_from(alphabet), min_size=low, max_size=high).map(bytes)


def joined(*parts: st.SearchStrategy[bytes] | bytes) -> st.SearchStrategy[bytes]:
    return st.tuples(*(st.just(p) if isinstance(p, bytes) else p for p in parts)).map(b"".join)


def one(*options: bytes) -> st.SearchStrategy[bytes]:
    return st.sampled_from(options)


def luhn_completed(digits: bytes) -> bytes:
    """digits with the check digit that makes the whole number pass Luhn."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = (ch - 48) * (1 if i % 2 else 2)
        total += d - 9 if d > 9 else d
    return digits + str(-total % 10).encode()


def grouped(number: bytes, sep: bytes, sizes: tuple[int, ...]) -> bytes:
    groups, at = [], 0
    for size in sizes:
        groups.append(number[at : at + size])
        at += size
    return sep.join([*groups, number[at:]] if at < len(number) else groups)


CARD = st.one_of(
    joined(one(b"4", b"5", b"3", b"6", b"2", b"1"), chars(DIGITS, 11, 17)).map(luhn_completed),
    st.tuples(joined(one(b"4", b"5"), chars(DIGITS, 14, 14)).map(luhn_completed), one(b" ", b"-")).map(
        lambda t: grouped(t[0], t[1], (4, 4, 4))
    ),
    st.tuples(joined(b"37", chars(DIGITS, 12, 12)).map(luhn_completed), one(b" ", b"-")).map(
        lambda t: grouped(t[0], t[1], (4, 6))
    ),
    chars(DIGITS, 12, 20),
)
KEYWORD = one(
    b"password", b"passwd", b"passphrase", b"secret", b"token", b"tokens", b"api_key", b"apikey", b"access-key",
    b"private_key", b"client_secret", b"credentials", b"db_password", b"SecretAccessKey", b"Pass",
)  # fmt: skip
VALUE = st.one_of(
    chars(ALNUM + b"/+=_-.", 1, 24),
    joined(b'"', chars(ALNUM + b" ;,&'", 1, 12), b'"'),
    joined(b"'", chars(ALNUM + b' ;,&"', 1, 12), b"'"),
    one(b"/etc/secret", b"$VAR", b"~/x", b"<redacted>", b"*", b"'$literal'", b'"$VAR"', b'""', b"''"),
    one(b"*Xk9m", b"~Xk9m", b"~", b"~app/x", b"<Xk9m", b"<none> x", b"***", b"a'b;c,d", b"x);", b"a; ls", b"b,"),
    joined(one(b'"', b"'", b'""'), chars(ALNUM + b" \\", 1, 12)),
    joined(b'"', chars(ALNUM + b" ", 0, 6), b'\\"', chars(ALNUM + b' \\"', 0, 8), b'"'),
    chars(ALNUM + b" ;,&:\t", 1, 20),
    joined(chars(ALNUM, 1, 6), b" ", chars(ALNUM + b" ", 1, 12), b";", chars(ALNUM + b"=;", 0, 8)),
    one(b"IQoJb3JpZ2luX2VjEJr" + b"AbCdEf0123456789+/" * 45, b'"' + b"FwoGZXIvYXdz/+Q" * 60 + b'"'),
)
SEPARATOR = one(b"=", b": ", b":=", b" = ", b":", b" => ", b"=>", b":  ", b" := ", b"\t:\t", b"= ")
CASE = st.sampled_from([bytes, bytes.upper, bytes.lower, bytes.swapcase])
SECRET = st.one_of(
    joined(one(b"AKIA", b"ASIA"), chars(UPPER + DIGITS, 16, 16)),
    joined(one(b"AKIA", b"ASIA"), chars(UPPER + DIGITS, 15, 17)),
    joined(
        one(b"aws_secret_access_key", b"AWS_SECRET_ACCESS_KEY", b"SecretAccessKey", b"secret-access-key"),
        one(b"=", b" = ", b": ", b'": "', b"\t:"),
        chars(ALNUM + b"/+", 39, 41),
    ),
    joined(b"eyJ", chars(B64URL, 7, 30), b".", chars(B64URL, 2, 30), b".", chars(B64URL, 0, 20)),
    joined(b"eyJ", chars(B64URL, 5, 30), b".", chars(B64URL, 1, 30), one(b".", b""), chars(B64URL, 0, 20)),
    joined(one(b"ghp_", b"gho_", b"ghu_", b"ghs_", b"ghr_", b"gh_"), chars(ALNUM, 34, 40)),
    joined(b"github_pat_", chars(ALNUM + b"_", 20, 30)),
    joined(
        one(b"glpat-", b"glrt-", b"gldt-", b"glcbt-", b"glagent-", b"gl-", b"GR1348941", b"SIE-glptt-"),
        chars(B64URL + b".", 17, 26),
    ),
    joined(
        one(b"xox", b"xoxe.xox", b"xapp"),
        one(b"a", b"b", b"p", b"e", b"c", b"z", b""),
        b"-",
        chars(ALNUM + b"-", 8, 24),
    ),
    joined(
        one(b"https://hooks.slack.com/", b"hooks.slack.com/"),
        one(b"services/", b"workflows/", b"triggers/", b"x/"),
        chars(B64URL + b"/", 6, 30),
    ),
    joined(
        one(b"", b"> ", b"Proxy-", b"HTTP_", b"'", b'"', b"X-"),
        one(b"Authorization", b"authorization", b"AUTHORIZATION"),
        one(b": ", b":", b"=", b"': '", b'": "', b" header "),
        one(b"", b"Bearer ", b"Basic ", b"token ", b"Digest "),
        chars(ALNUM + b"+/=._-", 1, 30),
        one(b"", b"'", b'"', b"\r", b"  ", b" more"),
    ),
    joined(
        one(b"Cookie: ", b"cookie:", b"Set-Cookie: ", b"COOKIE: ", b"; ", b";", b"x="),
        chars(ALNUM + b"._-", 0, 6),
        one(b"sessionid", b"PHPSESSID", b"connect.sid", b"auth", b"Token", b"jwt", b"theme", b"sess"),
        chars(ALNUM + b"._-", 0, 6),
        b"=",
        chars(ALNUM + b"%:.\\\x07", 1, 20),
        one(b"", b"; Path=/", b";", b", ", b"; lang=en"),
    ),
    joined(
        one(b"machine h login u", b"login alice", b"\n  ", b"\n", b"machine learning", b"default"),
        one(b" password ", b" password\t", b" Password ", b"password "),
        chars(ALNUM + b"!;'", 1, 16),
        one(b"", b" account x", b"  "),
    ),
    joined(
        one(b"", b"/usr/bin/", b"/var/lib/", b"sudo ", b"x"),
        one(b"mysql", b"mysqldump", b"mariadb", b"MySQL"),
        one(b" -uroot", b" -h db -u root", b"", b" -e 'select 1'"),
        one(b" -p", b" -P", b" -p ", b" --password="),
        chars(ALNUM + b"'", 0, 12),
    ),
    joined(
        one(b"Driver={x};UID=sa;", b"host=db; ", b"", b"x;"),
        one(b"PWD", b"pwd", b"Pass", b"pass", b"OLDPWD"),
        one(b"=", b" = "),
        one(b"{a;b}", b"/home/alice", b"", b"Xk9m ab"),
        chars(ALNUM, 0, 8),
        one(b";", b"", b";UID=u"),
    ),
    joined(
        b"<",
        one(b"password", b"db:secretKey", b"token", b"tokens", b"user", b"Api_Key"),
        one(b"", b' type="x"'),
        b">",
        chars(ALNUM + b" ;", 0, 12),
        one(b"</password>", b"</db:secretKey>", b"</token>", b"</tokens>", b"</user>", b"</Api_Key>", b""),
    ),
    joined(
        one(b"define(", b"DEFINE( ", b"define("),
        one(b"'DB_PASSWORD'", b'"AUTH_KEY"', b"'DB_USER'", b"'x_pwd'"),
        one(b", ", b","),
        one(b"'", b'"'),
        chars(ALNUM + b" \\'\"", 0, 12),
        one(b"'", b'"', b""),
        one(b");", b""),
    ),
    joined(
        one(b"ENV ", b"env  ", b"#(nop)  ENV ", b"printenv "),
        one(b"DB_PASSWORD", b"SMTP_PASS", b"API_TOKEN", b"PATH", b"x_pwd"),
        one(b" ", b"=", b"\t"),
        chars(ALNUM + b" ", 0, 12),
    ),
    CARD,
    joined(chars(DIGITS, 3, 3), b"-", chars(DIGITS, 2, 2), b"-", chars(DIGITS, 4, 4)),
    st.tuples(CASE, KEYWORD)
    .map(lambda t: t[0](t[1]))
    .flatmap(lambda key: joined(key, one(b"", b'"', b"'"), SEPARATOR, VALUE)),
    joined(one(b"Server=db;User Id=sa;", b"", b"x;"), one(b"Password", b"pwd", b"Token"), b"=", VALUE, b";"),
    joined(chars(UPPER, 1, 6), one(b"_PWD", b"_PASS", b"_KEY", b"_pwd", b"_TOKEN"), SEPARATOR, VALUE),
    joined(
        b"\n",
        one(b"", b"/root/.pgpass:", b".pgpass:3:", b"     1\t", b"7:", b"a/b:", b"x:"),
        one(b"db.example.com", b"*", b"localhost", b"10.0.0.1"),
        b":",
        one(b"5432", b"65432", b"*", b"22", b"123456"),
        one(b":app:alice:", b":*:*:", b":12:34:", b":app:1001:"),
        chars(ALNUM + b"\\:* ", 1, 12),
        one(b"", b"  ", b"\t"),
    ),
    joined(
        one(b"postgres://", b"https://", b"redis://", b"//"),
        chars(ALNUM, 0, 8),
        one(b":", b""),
        chars(ALNUM + b"!%:/@", 0, 12),
        one(b"@db:5432/app", b"@", b"/x@y", b"8443/x@y", b"ab/cd@db"),
    ),
    one(
        b"-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----",
        b"-----BEGIN OPENSSH PRIVATE KEY-----",
        b"-----END OPENSSH PRIVATE KEY-----",
        b"-----BEGIN CERTIFICATE-----",
        b"\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtz\n",
        b"\nMC4CAQAwBQYDK2VwBCIEIAC7pUkXQ81ybdP2RVKDfo8A9lyVeYsln1MW1Eba3fFh\r\n",
        b"\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEApGL1SxRO+Uql7FhLpqED\n",
        b"\nMay 14 10:00:01 web-1 sshd[1234]: Accepted publickey\n",
        b"QyNTUxOQAAACDf1zv0pE3S+0c0eWEZcdi5cDFZAWUOO7w3YgD1H2T0tgAAAJjQ8dxr\n",
        b"-----END",
        b"-----BEGIN PGP \x1b[01;31m\x1b[KPRIVATE\x1b[m\x1b[K KEY BLOCK-----\nlQOYBGZ2\n=AbCd\n",
        b"-----END PGP \x1b[01;31m\x1b[KPRIVATE\x1b[m\x1b[K KEY BLOCK-----",
        b"-----\x1b[1mBEGIN\x1b[0m RSA PRIVATE KEY-----",
        b"-----BEGIN RSA \x1b]0;-----END RSA PRIVATE KEY-----",
        b"\x07PRIVATE KEY-----",
    ),
)
ESCAPES = one(
    b"\x1b[01;31m", b"\x1b[m\x1b[K", b"\x1b[0m", b"\x1b]0;title\x07", b"\x1b]8;;file:///etc\x1b\\", b"\x1b(B", b"\x1b",
)  # fmt: skip
LOG = st.tuples(
    chars(DIGITS, 1, 2), chars(DIGITS, 1, 3), chars(DIGITS, 2, 7), chars(b"0123456789abcdef", 8, 32), st.booleans()
).map(
    lambda t: (
        (
            b"2024-05-%sT10:22:01.%sZ INFO [worker-3] GET /api/v1/items/%s from 10.0.0.1 status=200 req=%s"
            if t[4]
            else b"May 14 10:00:%s web-1 app[%s]: passed %s tokens, key %s, monkey=1"
        )
        % t[:4]
    )
)
FILLER = one(
    b" ", b"\n", b"\n", b"\r\n", b"\r", b"=", b":", b"-", b"_", b"'", b'"', b"0", b"1234", b"4111", b"\t",
    b"\xff", b"\x80\xfe", b"\xc3(", b"key", b"pass", b"IA", b"gh", b"eyJ", b"xox", b"*:", b"M",
)  # fmt: skip
COLOURED = st.tuples(SECRET, st.integers(0, 60), ESCAPES).map(lambda t: t[0][: t[1]] + t[2] + t[0][t[1] :])
PART = st.one_of(LOG, SECRET, COLOURED, st.tuples(CASE, SECRET).map(lambda t: t[0](t[1])), FILLER, ESCAPES)
TEXT = st.lists(st.tuples(PART, one(b" ", b"\n", b"", b"\r\n", b" ")), max_size=40).map(
    lambda parts: b"".join(part + sep for part, sep in parts)
)


@settings(max_examples=500, deadline=None)
@given(TEXT, st.data())
def test_any_chunking_matches_the_reference(text: bytes, data: st.DataObject) -> None:
    cuts = data.draw(st.lists(st.integers(min_value=0, max_value=len(text)), max_size=20))
    assert stream(RULES, text, cuts) == reference(RULES, text)


@settings(max_examples=300, deadline=None)
@given(TEXT, st.data())
def test_idle_flushes_match_scanning_without_hints(text: bytes, data: st.DataObject) -> None:
    cuts = data.draw(st.lists(st.integers(min_value=0, max_value=len(text)), max_size=20))
    flushes = data.draw(st.frozensets(st.sampled_from([0, *cuts])))
    assert stream(RULES, text, cuts, flushes) == stream(HINTLESS, text, cuts, flushes)


def test_long_lines_match_scanning_without_hints() -> None:
    secret = b"db_\x1b[01;31mpassword\x1b[m=hunter2 ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8 4111 1111 1111 1111 "
    line = (b"status=200 took=0.1s " * 1500 + secret) * 4 + b"\n"
    for size in (4096, HOLD - 1, HOLD + 3):
        cuts = list(range(size, len(line), size))
        assert stream(RULES, line, cuts) == stream(HINTLESS, line, cuts)


def test_a_colour_code_cut_by_the_end_is_not_part_of_a_value() -> None:
    for text in (b"APP_KEY=3f786850e387550fdab836ed7e6dc881\x1b", b"password=abc\x1b[0", b"x password=abc\x1b("):
        out = reference(RULES, text)
        assert stream(RULES, text, [3, 20]) == out
        assert out[0].endswith(b"=[MASKED:env-secret]\x1b") or b"=[MASKED:password-assignment]\x1b" in out[0]


def test_hint_far_into_the_longest_pgpass_line() -> None:
    line = b"h" * 253 + b":65432:app:alice:pw\n"
    assert stream(RULES, line, []) == reference(RULES, line)
    assert stream(RULES, line, [])[0].endswith(b":65432:app:alice:[MASKED:pgpass]\n")


def luhn_by_digit(digits: bytes) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = (ch - 48) * (2 if i % 2 else 1)
        total += d - 9 if i % 2 and d > 9 else d
    return total % 10 == 0


@given(st.one_of(chars(DIGITS, 0, 24), st.binary(max_size=24)))
def test_luhn_tables_agree_with_the_checksum_digit_by_digit(digits: bytes) -> None:
    assert luhn_ok(digits) == luhn_by_digit(digits)


VIEWS = {
    "raw": lambda text: text,
    "lower": bytes.lower,
    "digits": lambda text: text.translate(bytes.maketrans(b"123456789 -", b"000000000__")),
}
HINTS = sorted(
    {(text, d.hint_view) for d in BUILTIN for text in d.hints}
    | {(text, "raw") for text in (b"-----BEGIN ", *KEY_BODY_HINTS)}
)
HINT_TEXT = st.lists(
    st.one_of(
        st.tuples(CASE, st.sampled_from([text for text, _ in HINTS])).map(lambda t: t[0](t[1])),
        st.binary(max_size=6),
        chars(ALNUM + b" -_:*\n\r=", 1, 12),
        FILLER,
    ),
    max_size=30,
).map(b"".join)


@settings(max_examples=500, deadline=None)
@given(HINT_TEXT, st.data())
def test_a_hint_is_never_found_after_its_first_occurrence(buf: bytes, data: st.DataObject) -> None:
    start = data.draw(st.integers(min_value=0, max_value=len(buf)))
    end = data.draw(st.integers(min_value=start, max_value=len(buf)))
    at = data.draw(st.integers(min_value=start, max_value=end))
    region = Region(buf, start, end)
    for text, view in HINTS:
        h = hint(text, view)
        seen = VIEWS[view](buf[start:end])
        first, later = seen.find(text), seen.find(text, at - start)
        found = region.first(h)
        assert first < 0 or start <= found <= start + first, (text, view)
        found = region.find(h, at)
        assert later < 0 or at <= found <= start + later, (text, view)
