"""Built-in secret detectors: a name, a bytes pattern and an optional validator.

Patterns are bytes because the gateway moves bytes and output need not be UTF-8; every secret format we
look for is ASCII. Two invariants keep streaming exact (see `stream.py`): no single-line pattern can
match a line break, and no match is longer than `MAX_SECRET` bytes. Lookbehinds look at one byte at most.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass

# The longest single-line secret masked exactly when it streams through a long line (see stream.py).
MAX_SECRET = 8192

Validator = Callable[[bytes], bool]


@dataclass(frozen=True)
class Detector:
    """One kind of secret; `value_groups` name the part replaced when the rest (a label) stays visible.

    `hints` make clean output cheap: literals, searched in the `hint_view` of a region ("raw", "lower"
    or "digits", where every digit reads as 0 and a space or dash as _), without which no match can exist;
    a match starts at most
    `hint_back` bytes before the first hint, so the pattern only runs from there. `folded` patterns are
    written in lower case and run over the lowered bytes, which is far faster than IGNORECASE.
    """

    name: str
    pattern: re.Pattern[bytes]
    validator: Validator | None = None
    value_groups: tuple[str, ...] = ()
    custom: bool = False
    hints: tuple[bytes, ...] = ()
    hint_view: str = "raw"
    hint_back: int = 0
    folded: bool = False


def marker(kind: str) -> bytes:
    """What a secret becomes: it names the kind so a reader knows something was there."""
    return b"[MASKED:" + kind.encode("ascii") + b"]"


def _luhn_term(ch: int, doubled: bool) -> int:
    d = (ch - 48) * (2 if doubled else 1)
    return (d - 9 if doubled and d > 9 else d) % 10


# Each byte's Luhn term modulo 10, as it counts from the right in an even or an odd place.
_LUHN_KEPT = bytes(_luhn_term(ch, False) for ch in range(256))
_LUHN_DOUBLED = bytes(_luhn_term(ch, True) for ch in range(256))


def luhn_ok(digits: bytes) -> bool:
    """The card checksum: it turns most random 16-digit numbers (ids, timestamps) back into plain text.

    Every run of 13 or more digits is checked (hex ids are full of them), so the terms come from tables.
    """
    kept = digits[-1::-2].translate(_LUHN_KEPT)
    doubled = digits[-2::-2].translate(_LUHN_DOUBLED)
    return (sum(kept) + sum(doubled)) % 10 == 0


_NOT_DIGITS = bytes(c for c in range(256) if not 48 <= c <= 57)


def card_ok(raw: bytes) -> bool:
    """Payment networks issue numbers starting 2–6; epoch-millisecond timestamps start with 1."""
    digits = raw.translate(None, _NOT_DIGITS)
    return 13 <= len(digits) <= 19 and digits[:1] in (b"2", b"3", b"4", b"5", b"6") and luhn_ok(digits)


_RANDOM_KEY = re.compile(rb"(?=[^0-9]*[0-9])(?=[^A-Za-z]*[A-Za-z])[A-Za-z0-9+/=_\-.]{16,512}")
_ENV_LABEL = re.compile(rb"([A-Za-z0-9_]*)[ \t]*(?::=|=>|[:=])[ \t]*")
_PATH_OR_PLACEHOLDER = re.compile(rb"~(?:[^\s/]*/|$)|\*+$|<[a-z][a-z0-9_.'\-]*[ >]")


def env_secret_ok(raw: bytes) -> bool:
    """`*_PWD`/`*_PASS` hold a password whatever it looks like, unless it is a path, a variable reference or
    a placeholder; `*_KEY` names ids and sort keys too, so its value must look random (16+ characters,
    letters and digits).

    A `$` in single quotes is literal (`export DB_PASS='$ecret'`), so only an unquoted or double-quoted
    `$` makes a reference. A path starts with `/`, or `~` with a `/` after it or alone (`~/.pgpass`,
    `~app/key`). A placeholder is a run of stars (a value another tool already hid) or `<` and a lower-case
    word up to `>` or a space (`<none>`, `<redacted>`, kubectl's `<set to the key ...>`). Anything else
    starting `*`, `~` or `<` is a password (`*Xk9m`, `~Xk9m`, `<Xk9m`).
    """
    label = _ENV_LABEL.match(raw)
    if label is None:
        return False
    name, value = label.group(1), raw[label.end() :]
    literal = value[:1] == b"'"
    value = value.strip(b"\"'")
    if value[:1] == b"$" and not literal:
        return False
    if value[:1] == b"/" or _PATH_OR_PLACEHOLDER.match(value) is not None:
        return False
    if not name.endswith(b"KEY"):
        return True
    return _RANDOM_KEY.fullmatch(value) is not None


PRIVATE_KEY_BEGIN = re.compile(rb"-----BEGIN (?:[A-Z0-9]{1,16} ){0,3}PRIVATE KEY(?: BLOCK)?-----")
PRIVATE_KEY_END = re.compile(rb"-----END (?:[A-Z0-9]{1,16} ){0,3}PRIVATE KEY(?: BLOCK)?-----")
# Bytes kept while inside a key block so an END marker split across chunks is still seen.
END_MARKER_MAX = 96

# A private key body printed without its BEGIN line (`tail -n +2 id_ed25519`, `sed -n 2,5p key.pem`): a
# whole line of base64 that starts an OpenSSH key ("openssh-key-v1") or a DER private key, found with the
# \n before it (KEY_BODY_HINTS). Following base64 lines belong to it until the END marker or another line.
KEY_BODY_START = re.compile(rb"\n(?:b3BlbnNzaC1rZXktdjE|M)[A-Za-z0-9+/]{15,75}={0,2}(?![^\r\n])")
KEY_BODY_HINTS = (b"\nM", b"\nb3BlbnNzaC1rZXktdjE")
KEY_BODY_LINE = re.compile(rb"[A-Za-z0-9+/]{1,76}={0,2}")
_OPENSSH_MAGIC = b"b3BlbnNzaC1rZXktdjE"


def key_body_start_ok(line: bytes) -> bool:
    """OpenSSH magic, or DER SEQUENCE { INTEGER 0|1, ... }: PKCS#1 RSA, SEC1 EC, DSA and PKCS#8 keys.

    Certificates, public keys, CSRs and encrypted PKCS#8 open with a nested SEQUENCE instead, so the
    public material printed the same way stays visible (and so do encrypted keys: a documented limit).
    """
    if line.startswith(_OPENSSH_MAGIC):
        return True
    try:
        der = binascii.a2b_base64(line[:12])
    except binascii.Error:
        return False
    if len(der) < 9 or der[0] != 0x30:
        return False
    at = 2
    if der[1] & 0x80:
        width = der[1] & 0x7F
        if not 1 <= width <= 3:
            return False
        at += width
    return der[at : at + 2] == b"\x02\x01" and der[at + 2] in (0, 1)


_ALNUM = rb"A-Za-z0-9"
_B64URL = rb"A-Za-z0-9_\-"

_PASSWORD_KEYS = (
    rb"password|passwd|passphrase|secret|token(?!s)|api[_-]?key|apikey|access[_-]?key|private[_-]?key"
    rb"|client[_-]?secret|credentials?"
)
_PASSWORD_HINTS = (b"pass", b"secret", b"token", b"key", b"credential")

# GitLab's documented token prefixes: personal, project and group access tokens, OAuth application secrets,
# deploy tokens, runner authentication tokens (created in the UI or by registration), CI/CD job tokens,
# pipeline trigger tokens, feed tokens, incoming mail tokens, agent for Kubernetes tokens, SCIM tokens and
# feature flag client tokens; GR1348941 starts the legacy runner registration tokens. Routable tokens
# carry `.`-separated parts (`glpat-<payload>.01.<crc>`).
_GITLAB_PREFIXES = (
    b"glpat", b"gloas", b"gldt", b"glrt", b"glrtr", b"glcbt", b"glptt", b"glft", b"glimt", b"glagent",
    b"glsoat", b"glffct",
)  # fmt: skip

# `Authorization:` and `Proxy-Authorization:` as headers (curl -v, HTTP dumps), dict or JSON entries and
# `HTTP_AUTHORIZATION=` variables. A scheme word (Bearer, Basic, token, Digest...) stays visible; the
# credential after it runs to the end of the line or the first quote, trailing blanks trimmed, so a
# quoted header (`-H "Authorization: Bearer x" https://...`) keeps what follows the quote. A value
# without a scheme is masked whole. `Authorization header missing` has no separator and stays; prose
# putting a colon straight after the word (`authorization: failed for bob`) loses its tail, as with
# password-assignment.
_AUTHORIZATION = (
    rb"(?<![a-z0-9])authorization[\"']?[ \t]{0,64}[:=][ \t]{0,64}[\"']?"
    rb"(?:[a-z][a-z0-9_.\-]{0,31}[ \t]{1,64})?(?P<value>[^\s\"'](?:[^\r\n\"']{0,%d}[^\s\"'])?)"
) % (MAX_SECRET - 512)

# Session cookies in `Cookie:` and `Set-Cookie:` headers: the value of a cookie whose name holds sess,
# sid, auth, token or jwt (sessionid, PHPSESSID, JSESSIONID, connect.sid, _gitlab_session, XSRF-TOKEN,
# next-auth.session-token...). Other cookies (preferences, load balancer affinity, analytics) stay
# visible, and so do a Set-Cookie's attributes. A pair is recognised as the first one after the header
# name or after `;` (the cookie separator), so `; sessionid=...` is masked wherever it appears, which
# only ever hides a session id. A value is cookie-octets: printable, without white space, quotes, `,`,
# `;` or a backslash. The header name is matched as `Cookie` or (HTTP/2) `cookie: `, cookie names in
# any case.
_COOKIE_NAME = rb"[^\s=;,\"']{0,64}(?:sess|sid|auth|token|jwt)[^\s=;,\"']{0,64}"
_COOKIE = (
    rb"(?:Cookie[\"']?[ \t]{0,64}:[ \t]{0,64}[\"']?|cookie: [ \t]{0,63}[\"']?|;[ \t]{0,64})(?i:" + _COOKIE_NAME + rb")="
    rb"(?P<value>[!#-+\--:<-\[\]-~]{1,%d})"
) % (MAX_SECRET - 512)

# Labelled values. Every part of a match is bounded so that a label and its value stay within MAX_SECRET
# (a label and its separators take at most _LABEL_MAX bytes); a quoted value with escapes counts double.
_LABEL_MAX = 256
_VALUE_MAX = MAX_SECRET - _LABEL_MAX
_QUOTED_MAX = _VALUE_MAX // 2
_GAP = rb"[ \t]{0,64}"
# A separator with white space before or after it (`key: value`, `key = value`, `key => value`) is the
# ini/YAML/properties style, where the unquoted value runs to the end of the line; a bare one
# (`key=value`, `--password=value`) is the command line and key=value log style, where it ends at the
# first space. A quote after the label (`"key": value`, `'key' => value`) marks JSON or a hash literal,
# whose unquoted values are literals ending at `,` or `}`.
_SEPARATOR = (
    rb"(?:(?P<spaced>[ \t]{1,64}(?::=|=>|[:=])" + _GAP + rb"|(?::=|=>|[:=])[ \t]{1,64})"
    rb"|[\"']?" + _GAP + rb"(?::=|=>|[:=])" + _GAP + rb")"
)
# The value, in order of preference:
# - quoted: `"..."` with backslash escapes (JSON `\"`), `'...'` with `''` (YAML);
# - an empty pair of quotes ending the value masks nothing; `""Xk9m` is an unterminated quote;
# - an unterminated quote: from the quote to the end of the line (trailing blanks trimmed);
# - after a spaced separator: the rest of the line, trimmed (`password: correct horse battery staple`);
# - after a bare `=`, in a connection string (ADO.NET, JDBC, ODBC: `Server=db;Password=my pw;`): up to
#   the `;`, spaces included, when what follows the `;` is another `Key=`, a quote or the end of the line;
# - otherwise up to white space, `&` (URL query strings) or `"`, less any `,;')]}` ending it: a password
#   holds `;`, `,` and `'` more often than a bare value is followed by one without a space, so
#   `password=Xk9m;Q2vL` hides `Xk9m;Q2vL`, `password=abc; ls` hides `abc`, and `{'token':abc,'x':1}`
#   hides `abc,'x':1` (JSON and hash literals quote their strings, which ends them earlier).
# Prose rarely puts a keyword straight before `:` or `=`; when it does (`token: refreshed for bob`), the
# rest of that line is hidden: more is masked, never less.
_VALUE = (
    rb"(?:\"(?P<dq>(?:[^\"\\\r\n]|\\[^\r\n]){1,%(q)d})\""
    rb"|'(?P<sq>(?:[^'\r\n]|''){1,%(q)d})'"
    rb"|(?:\"\"|'')(?P<empty>)(?![^\s,;&)\]}])"
    rb"|[\"'](?P<open>[^\r\n]{0,%(v1)d}[^\s])"
    rb"|(?(spaced)(?P<line>[^\s\"'](?:[^\r\n]{0,%(v2)d}[^\s])?)"
    rb"|(?:(?P<cs>[^\s\"';][^;\"'\r\n]{0,%(v1)d})"
    rb"(?=;[ \t]{0,64}(?:[A-Za-z][A-Za-z0-9 _.\-]{0,63}=|[\"']|(?![^\r\n])))"
    rb"|(?P<bare>[^\s\"',;&](?:[^\s\"&]{0,%(v2)d}[^\s\"&,;')\]}])?))))"
) % {b"q": _QUOTED_MAX, b"v1": _VALUE_MAX - 1, b"v2": _VALUE_MAX - 2}
_VALUE_GROUPS = ("dq", "sq", "empty", "open", "line", "cs", "bare")

# Password-labelled forms without a `:` or `=` after the label, all masked as password-assignment. Their
# values are bounded by _FORM_MAX so that the label and markup around them stay within MAX_SECRET.
# - XML elements named like a password key: `<password>x</password>`, `<db:secretKey>x</db:secretKey>`,
#   up to the closing tag on the same line (a value spanning lines is not seen);
# - PHP `define('DB_PASSWORD', '...')` and wp-config's `define('AUTH_KEY', '...')`: a name holding a
#   password key, `pass`, `pwd` or `key`, with a quoted value (salts are not covered);
# - Dockerfile's legacy `ENV DB_PASSWORD value` (a name holding a password key, `_PASS` or `_PWD`):
#   the rest of the line, as Docker reads it;
# - `PWD=` and `pass=` in connection strings (ODBC, libpq-style): after a `;` or, first in the string,
#   before one; a `{...}` value (ODBC's quoting) is taken whole. `PWD=/home/alice` in `env` output has
#   no `;` around it and stays.
_FORM_MAX = MAX_SECRET - 1024
_FORM_KEYS = rb"(?:" + _PASSWORD_KEYS + rb")"
_FORMS = (
    rb"<(?P<tag>[a-z0-9_:.\-]{0,32}" + _FORM_KEYS + rb"[a-z0-9_:.\-]{0,32})(?:[ \t][^<>\r\n]{0,256})?>"
    rb"(?P<xml>[^<\r\n]{1,%(v)d})</(?P=tag)[ \t]{0,8}>"
    rb"|define\([ \t]{0,8}[\"'][a-z0-9_]{0,32}(?:" + _PASSWORD_KEYS + rb"|pass|pwd|key)[a-z0-9_]{0,32}[\"']"
    rb"[ \t]{0,8},[ \t]{0,8}"
    rb"(?:\"(?P<ddq>(?:[^\"\\\r\n]|\\[^\r\n]){1,%(q)d})\"|'(?P<dsq>(?:[^'\\\r\n]|\\[^\r\n]){1,%(q)d})')"
    rb"|(?<![a-z0-9_])env[ \t]{1,8}[a-z0-9_]{0,32}(?:" + _PASSWORD_KEYS + rb"|_pass|_pwd)[a-z0-9_]{0,32}[ \t]{1,64}"
    rb"(?P<env>[^\s=](?:[^\r\n]{0,%(v)d}[^\s])?)"
    rb"|;[ \t]{0,8}(?:pwd|pass)[ \t]{0,8}=[ \t]{0,8}"
    rb"(?P<odbc>\{[^}\r\n]{1,%(v)d}\}|[^\s;\"'{](?:[^;\"'\r\n]{0,%(v)d}[^\s;\"'])?)"
    rb"|(?<![^\s\"'])(?:pwd|pass)=(?P<first>\{[^}\r\n]{1,%(v)d}\}|[^\s;\"'{/][^;\"'\r\n]{0,%(v)d})(?=;)"
) % {b"v": _FORM_MAX, b"q": _FORM_MAX // 2}
# The longest distance from a match's start to its first hint: `define(`, blanks, a quote, a name prefix
# and the longest lead before a hint inside a key (`private_`).
_FORMS_BACK = len(b"define(") + 8 + 1 + 32 + len(b"private_")

# .netrc needs the case of what it reads, so it is matched on the bytes as they are: `machine h login u
# password p` on one line, or an indented `password p` alone on its line (netrc keywords are lower case;
# `Password expired` stays). The MySQL client's `-pSECRET` is not covered: the client hides it from `ps`
# itself, and the only literal every such command line holds ("mysql") is common enough in ordinary output
# that searching for it costs more than the rest of the password forms together.
_NETRC = (
    rb"(?<![^\s])(?:machine|login)[ \t]{1,8}[^\s]{1,253}[ \t]{1,8}password[ \t]{1,8}(?P<netrc>[^\s]{1,1024})"
    rb"|(?<![^\r\n])[ \t]{0,64}password[ \t]{1,8}(?P<alone>[^\s]{1,1024})[ \t]{0,64}(?![^\r\n])"
)
_NETRC_BACK = len(b"machine") + 8 + 253 + 8

# pgpass lines, also as `grep -H`/`grep -n` (a path ending in pgpass or holding a /, a line number) or
# `cat -n` print them. The password runs to the end of the line (spaces allowed; `\:` and `\\` escaped).
_PGPASS_PREFIX = rb"(?:[ \t]{0,8}[0-9]{1,9}\t|[^\s:]{0,255}(?:/[^\s:/]{1,64}|pgpass):(?:[0-9]{1,9}:)?|[0-9]{1,9}:)?"
_PGPASS_PREFIX_MAX = 255 + 1 + 64 + 1 + 10
_PGPASS_HOST_MAX = 253
_PGPASS_UNIT = rb"(?:\\[\\:]|[^\\:\s])"
_PGPASS_VALUE = rb"(?P<value>" + _PGPASS_UNIT + rb"(?:(?:\\[\\:]|[^\\:\r\n]){0,2048}" + _PGPASS_UNIT + rb")?)"

BUILTIN: tuple[Detector, ...] = (
    Detector("private-key", PRIVATE_KEY_BEGIN),
    Detector(
        "aws-access-key",
        re.compile(rb"(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])"),
        hints=(b"AKIA", b"ASIA"),
    ),
    Detector(
        "aws-secret-key",
        re.compile(
            rb"(?:aws[_-]?secret[_-]?access[_-]?key|secret[_-]?access[_-]?key|aws[_-]?secret[_-]?key)"
            rb"[\"']?[ \t]*[:=][ \t]*[\"']?(?P<value>[a-z0-9/+]{40})(?![a-z0-9/+=])"
        ),
        value_groups=("value",),
        hints=(b"secret",),
        hint_view="lower",
        hint_back=4,
        folded=True,
    ),
    Detector(
        "jwt",
        re.compile(
            rb"(?<![" + _B64URL + rb"])eyJ[" + _B64URL + rb"]{7,1024}\.[" + _B64URL + rb"]{2,6144}"
            rb"\.[" + _B64URL + rb"]{0,1024}(?![" + _B64URL + rb"])"
        ),
        hints=(b"eyJ",),
    ),
    Detector(
        "github-token",
        re.compile(
            rb"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{22,244})"
            rb"(?![A-Za-z0-9_])"
        ),
        hints=(b"gh", b"github_pat_"),
    ),
    Detector(
        "gitlab-token",
        re.compile(
            rb"(?<![" + _ALNUM + rb"_])(?:(?:" + b"|".join(_GITLAB_PREFIXES) + rb")-|GR1348941)"
            rb"[" + _B64URL + rb"](?:[" + _B64URL + rb".]{18,253}[" + _B64URL + rb"])(?![" + _B64URL + rb"])"
        ),
        # One hint for every prefix: each hint costs a lookup in every region, and "gl" is rare enough.
        hints=(b"gl", b"GR1348941"),
    ),
    Detector(
        "slack-token",
        re.compile(
            rb"(?<![" + _ALNUM + rb"])(?:(?:xoxe\.)?xox[abposrecd]-|xapp-)[" + _ALNUM + rb"\-]{10,255}"
            rb"(?![" + _ALNUM + rb"\-])"
            rb"|hooks\.slack\.com/(?:services|workflows|triggers)/(?P<value>[" + _B64URL + rb"/]{8,255})"
        ),
        value_groups=("value",),
        hints=(b"xox", b"xapp-", b"hooks.slack.com/"),
    ),
    Detector(
        "card-number",
        re.compile(
            rb"(?<![0-9])(?:[0-9]{13,19}"
            rb"|[0-9]{4}(?P<s1>[ -])[0-9]{4}(?P=s1)[0-9]{4}(?P=s1)[0-9]{1,7}"
            rb"|[0-9]{4}(?P<s2>[ -])[0-9]{6}(?P=s2)[0-9]{4,5})(?![0-9])"
        ),
        validator=card_ok,
        hints=(b"0" * 13, b"0000_0000"),
        hint_view="digits",
    ),
    Detector(
        "us-ssn",
        re.compile(rb"(?<![0-9-])(?!000|666|9)[0-9]{3}-(?!00)[0-9]{2}-(?!0000)[0-9]{4}(?![0-9-])"),
        hints=(b"000_00_0000",),
        hint_view="digits",
    ),
    Detector(
        "password-assignment",
        re.compile(rb"(?:" + _PASSWORD_KEYS + rb")[a-z0-9_\-]{0,32}" + _SEPARATOR + _VALUE),
        value_groups=_VALUE_GROUPS,
        hints=_PASSWORD_HINTS,
        hint_view="lower",
        hint_back=len(b"private_"),
        folded=True,
    ),
    Detector(
        "password-assignment",
        re.compile(_FORMS),
        value_groups=("xml", "ddq", "dsq", "env", "odbc", "first"),
        hints=(*_PASSWORD_HINTS, b"pwd"),
        hint_view="lower",
        hint_back=_FORMS_BACK,
        folded=True,
    ),
    Detector(
        "password-assignment",
        re.compile(_NETRC),
        value_groups=("netrc", "alone"),
        # Looked up in the lower-case view, where "pass" is found together with password-assignment's hints.
        hints=(b"pass",),
        hint_view="lower",
        hint_back=_NETRC_BACK,
    ),
    Detector(
        "env-secret",
        re.compile(rb"(?<![A-Za-z0-9_])[A-Z][A-Z0-9_]{0,62}_(?:PWD|PASS|KEY)" + _SEPARATOR + _VALUE),
        validator=env_secret_ok,
        value_groups=_VALUE_GROUPS,
        hints=(b"_PWD", b"_PASS", b"_KEY"),
        hint_back=63,
    ),
    Detector(
        "pgpass",
        re.compile(
            rb"(?<![^\r\n])" + _PGPASS_PREFIX + rb"[A-Za-z0-9._\-*\[\]]{1,253}:(?:[0-9]{4,5}|\*)"
            rb"(?::[^:\s]{1,63}){2}:" + _PGPASS_VALUE + rb"[ \t]{0,64}(?![^\r\n])"
        ),
        value_groups=("value",),
        hints=(b":0000", b":*:"),
        hint_view="digits",
        hint_back=_PGPASS_PREFIX_MAX + _PGPASS_HOST_MAX,
    ),
    Detector(
        "url-password",
        # A `/` in the password is taken as written (RFC 3986 wants it escaped, people do not), unless
        # digits and a `/` make it a port and a path (`https://host:8443/a@b`).
        re.compile(rb"://[^\s:/@]{0,128}:(?![0-9]{1,5}/)(?P<value>[^\s@]{1,1024})@"),
        value_groups=("value",),
        # "://" is in most output and its bytes in nearly all; "@" ends every match and is rare.
        hints=(b"@",),
        hint_back=len(b"://") + 128 + 1 + 1024,
    ),
    Detector(
        "http-authorization",
        re.compile(_AUTHORIZATION),
        value_groups=("value",),
        hints=(b"authorization",),
        hint_view="lower",
        folded=True,
    ),
    Detector(
        "session-cookie",
        re.compile(_COOKIE),
        value_groups=("value",),
        # Raw hints: in the folded view "cookie" is made of bytes found in nearly every region.
        # "cookie: " (HTTP/2 and curl's spelling) is long enough to be found by skipping, not byte by byte.
        hints=(b"Cookie", b"cookie: ", b";"),
    ),
)

BUILTIN_NAMES: tuple[str, ...] = tuple(dict.fromkeys(d.name for d in BUILTIN))


def value_span(detector: Detector, match: re.Match[bytes]) -> tuple[int, int]:
    """The bytes to replace: the labelled value when the detector keeps its label visible."""
    for group in detector.value_groups:
        if match.group(group) is not None:
            return match.span(group)
    return match.span()


def custom_detector(name: str, pattern: str, ignore_case: bool = False) -> Detector:
    """A policy's own regex; `re.error` propagates so the loader can name the rule.

    A group named `value` keeps the rest of the match visible. Matches spanning a line break or longer
    than MAX_SECRET are ignored, which keeps streamed output identical to masking the whole text.
    """
    compiled = re.compile(pattern.encode("utf-8"), re.IGNORECASE if ignore_case else 0)
    groups = ("value",) if "value" in compiled.groupindex else ()
    return Detector(name, compiled, validator=_single_line, value_groups=groups, custom=True)


def _single_line(raw: bytes) -> bool:
    return 0 < len(raw) <= MAX_SECRET and b"\n" not in raw and b"\r" not in raw
