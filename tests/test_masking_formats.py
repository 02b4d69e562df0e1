"""Realistic variants of the formats the built-in detectors cover: each line masked exactly, streamed or not."""

from pathlib import Path

import pytest

from bastion.masking import Masker, MaskingPolicy, load_masking, mask_bytes
from bastion.masking.detectors import MAX_SECRET

DEFAULT = MaskingPolicy().for_session(["agent"], "web-1", {})
SHIPPED = load_masking(Path(__file__).resolve().parent.parent / "policies" / "masking.yaml").for_session(
    ["agent"], "web-1", {}
)

PW = "Xk9mQ2vL7pR4"
# Shaped like an AWS STS session token (they run to about 830 characters and more); not a real one.
STS = "IQoJb3JpZ2luX2VjEJr" + "AbCdEf0123456789+/" * 45
PA = "[MASKED:password-assignment]"
ENV = "[MASKED:env-secret]"
PG = "[MASKED:pgpass]"
URL = "[MASKED:url-password]"


def masked(text: str) -> str:
    out = mask_bytes(DEFAULT, (text + "\n").encode()).decode()[:-1]
    assert mask_bytes(SHIPPED, (text + "\n").encode()).decode()[:-1] == out
    return out


def streamed(data: bytes, size: int) -> bytes:
    masker = Masker(DEFAULT)
    out = b"".join(masker.feed(data[i : i + size]) for i in range(0, len(data), size))
    return out + masker.flush()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Hash literals: PHP, Ruby, Perl; Go and Pascal `:=`.
        (f"  'password' => '{PW}',", f"  'password' => '{PA}',"),
        (f'  :password => "{PW}",', f'  :password => "{PA}",'),
        (f"  password => '{PW}',", f"  password => '{PA}',"),
        (f"  'db_password'=>'{PW}',", f"  'db_password'=>'{PA}',"),
        (f'secret := "{PW}"', f'secret := "{PA}"'),
        # Values longer than 512 bytes, quoted or not.
        (f'        "SessionToken": "{STS}",', f'        "SessionToken": "{PA}",'),
        (f"aws_session_token = {STS}", f"aws_session_token = {PA}"),
        (f"export AWS_SESSION_TOKEN={STS}", f"export AWS_SESSION_TOKEN={PA}"),
        (f"password = '{'a b' * 400}'", f"password = '{PA}'"),
        # YAML, ini and properties: after `: ` or ` = ` the value runs to the end of the line.
        ("password: correct horse battery staple", f"password: {PA}"),
        ("  db_password:   correct horse battery staple   ", f"  db_password:   {PA}   "),
        ("secret = two words # and a comment", f"secret = {PA}"),
        ("api_key:\tk-123 k-456", f"api_key:\t{PA}"),
        # JSON: backslash escapes inside the quotes; unquoted literals end at `,`.
        ('{"password": "ab\\"' + PW + '"}', '{"password": "' + PA + '"}'),
        ('{"token": "a\\\\b", "user": "bob"}', '{"token": "' + PA + '", "user": "bob"}'),
        ('{"token_ttl":3600,"user":"bob"}', '{"token_ttl":' + PA + ',"user":"bob"}'),
        # Connection strings: a value up to the `;`, spaces included.
        (f"Server=db;User Id=sa;Password=my {PW};", f"Server=db;User Id=sa;Password={PA};"),
        (f"Password=my {PW};Server=db", f"Password={PA};Server=db"),
        # Unterminated quotes run to the end of the line; an empty pair masks nothing.
        (f"password='{PW}", f"password='{PA}"),
        (f'token = "{PW} more', f'token = "{PA}'),
        (f'secret=""{PW}', f'secret="{PA}'),
        ('password="" user=bob', 'password="" user=bob'),
        ("password = ''", "password = ''"),
        # YAML doubles a quote inside single quotes.
        (f"password: 'it''s {PW}'", f"password: '{PA}'"),
    ],
)
def test_password_assignment_variants(text: str, expected: str) -> None:
    assert masked(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # kubectl describe pod, docker-compose `environment:`, spaced assignments.
        (f"      DB_PASS:  {PW}", f"      DB_PASS:  {ENV}"),
        (f"      REDIS_PASS: {PW}", f"      REDIS_PASS: {ENV}"),
        ("  STRIPE_KEY: sk_live_4eC39HqLyjWDarjtT1zdp7dc", f"  STRIPE_KEY: {ENV}"),
        (f"SMTP_PASS = {PW}", f"SMTP_PASS = {ENV}"),
        (f"SMTP_PASS = my {PW}", f"SMTP_PASS = {ENV}"),
        (f"  - MYSQL_ROOT_PWD={PW}", f"  - MYSQL_ROOT_PWD={ENV}"),
        # A `$` in single quotes is literal, so the value is the password itself.
        (f"export DB_PASS='${PW}'", f"export DB_PASS='{ENV}'"),
    ],
)
def test_env_secret_variants(text: str, expected: str) -> None:
    assert masked(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "export DB_PASS=$OTHER_PASS",
        'export DB_PASS="$OTHER_PASS"',
        "      DB_PASS:      <set to the key 'password' in secret 'db-secret'>  Optional: false",
        "  SORT_KEY: name asc",
        "PRIMARY_KEY: user_id",
    ],
)
def test_env_secret_references_and_placeholders_stay(text: str) -> None:
    assert masked(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"db.example.com:5432:app:alice:my {PW}", f"db.example.com:5432:app:alice:{PG}"),
        (f"db.example.com:5432:app:alice:my {PW}  ", f"db.example.com:5432:app:alice:{PG}  "),
        (f"/root/.pgpass:db.example.com:5432:app:alice:{PW}", f"/root/.pgpass:db.example.com:5432:app:alice:{PG}"),
        (f"/root/.pgpass:3:db:5432:app:alice:{PW}", f"/root/.pgpass:3:db:5432:app:alice:{PG}"),
        (f".pgpass:db:5432:app:alice:{PW}", f".pgpass:db:5432:app:alice:{PG}"),
        (f"     1\tdb.example.com:5432:app:alice:{PW}", f"     1\tdb.example.com:5432:app:alice:{PG}"),
        (f"db.example.com:5432:app:1001:{PW}", f"db.example.com:5432:app:1001:{PG}"),
        (f"10.0.0.1:5432:12:34:{PW}", f"10.0.0.1:5432:12:34:{PG}"),
    ],
)
def test_pgpass_variants(text: str, expected: str) -> None:
    assert masked(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"REDIS_URL=redis://:{PW}@cache:6379/0", f"REDIS_URL=redis://:{URL}@cache:6379/0"),
        (f"postgres://app:{PW}@db:5432/app", f"postgres://app:{URL}@db:5432/app"),
        (f"postgres://app:ab:{PW}@db:5432/app", f"postgres://app:{URL}@db:5432/app"),
        (f"amqp://guest:{PW}@rabbit/", f"amqp://guest:{URL}@rabbit/"),
        (
            f"git clone https://oauth2:{PW}@gitlab.example.com/x.git",
            f"git clone https://oauth2:{URL}@gitlab.example.com/x.git",
        ),
    ],
)
def test_url_password_is_built_in(text: str, expected: str) -> None:
    assert masked(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2024-05-17T10:22:31.512Z INFO [worker-7] GET /api/v1/items/48213 from 10.1.2.3"
        " status=200 bytes=5123 took=0.012s",
        "May 14 10:00:01 web-1 sshd[1234]: Accepted publickey for alice from 10.0.0.7 port 52144 ssh2",
        "key_count: 12",
        "keys: 3, tokens_used: 1200",
        "max_tokens: 4096",
        "Token expired: yes",
        "[sudo] password for alice: ",
        "Enter passphrase for key '/root/.ssh/id_ed25519': ",
        "password:",
        "PasswordAuthentication no",
        "ERROR:5432:main:foo: something failed",
        "file.c:1234:5: error: expected ';'",
        "root:x:0:0:root:/root:/bin/bash",
        "daemon:*:19000:0:99999:7:::",
        "https://example.com:8443/path@x",
        "ssh://git@github.com:22/org/repo.git",
        "mailto alice@example.com at 10:22:31",
        "https://grafana.example.com/d/abc?from=now-1h&to=now",
    ],
)
def test_ordinary_lines_stay(text: str) -> None:
    assert masked(text) == text


def test_every_format_streams_as_it_masks_whole() -> None:
    lines = [
        f"  'password' => '{PW}',",
        f'        "SessionToken": "{STS}",',
        "password: correct horse battery staple",
        f"Server=db;User Id=sa;Password=my {PW};",
        f"/root/.pgpass:db.example.com:5432:app:alice:my {PW}",
        f"      DB_PASS:  {PW}",
        f"REDIS_URL=redis://:{PW}@cache:6379/0",
    ]
    data = ("\n".join(lines) + "\n").encode()
    expected = mask_bytes(DEFAULT, data)
    assert PW.encode() not in expected and STS[20:].encode() not in expected
    for size in (1, 7, 64, 1000):
        assert streamed(data, size) == expected, size


def test_longest_value_is_masked_whole_and_streamed() -> None:
    value = "A1b2" * ((MAX_SECRET - 512) // 4)
    data = f"aws_session_token = {value}\n".encode()
    assert mask_bytes(DEFAULT, data) == f"aws_session_token = {PA}\n".encode()
    assert streamed(data, 333) == mask_bytes(DEFAULT, data)


PGP_BODY = "lQOYBGZ2mLQBCADGq7vZ0uQm8eXh0mJXpQ1yq3f0dN0m4Yk0tW9m8l0o3QF1qf8v\nSECRETKEYMATERIAL\n=AbCd\n"
RED, OFF = "\x1b[01;31m\x1b[K", "\x1b[m\x1b[K"


@pytest.mark.parametrize(
    ("begin", "end"),
    [
        (f"-----BEGIN PGP {RED}PRIVATE{OFF} KEY BLOCK-----", f"-----END PGP {RED}PRIVATE{OFF} KEY BLOCK-----"),
        (f"-----BEGIN PGP {RED}PRIVATE{OFF} KEY BLOCK-----", "-----END PGP PRIVATE KEY BLOCK-----"),
        (f"-----{RED}BEGIN{OFF} RSA PRIVATE KEY-----", f"-----{RED}END{OFF} RSA PRIVATE KEY-----"),
        (f"{RED}-----BEGIN EC PRIVATE KEY-----{OFF}", f"{RED}-----END EC PRIVATE KEY-----{OFF}"),
    ],
)
def test_coloured_key_markers_open_and_close_the_block(begin: str, end: str) -> None:
    data = f"$ grep --color=always -A9 PRIVATE key\n{begin}\n{PGP_BODY}{end}\n$ \n".encode()
    out = mask_bytes(DEFAULT, data)
    assert b"SECRETKEYMATERIAL" not in out and b"lQOYBGZ2" not in out
    assert out.startswith(b"$ grep --color=always -A9 PRIVATE key\n")
    assert out.count(b"[MASKED:private-key]") == 1
    assert out.endswith(b"\n$ \n")
    for size in (1, 5, 17, 4096):
        assert streamed(data, size) == out, size


def test_coloured_end_marker_across_chunks_with_idle_flushes() -> None:
    begin = f"-----BEGIN PGP {RED}PRIVATE{OFF} KEY BLOCK-----\n".encode()
    end = f"-----END PGP {RED}PRIVATE{OFF} KEY BLOCK-----\nok\n".encode()
    masker = Masker(DEFAULT)
    out = masker.feed(begin + PGP_BODY.encode())
    for i in range(0, len(end), 6):
        out += masker.feed(end[i : i + 6]) + masker.flush()
    assert out == b"[MASKED:private-key]\nok\n"


AUTH = "[MASKED:http-authorization]"
COOKIE = "[MASKED:session-cookie]"
SLACK = "[MASKED:slack-token]"
GITLAB = "[MASKED:gitlab-token]"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # The scheme stays visible; the credential runs to the end of the line or the first quote.
        ("Authorization: Bearer 7f3a9c0e1d2b4a5f8e6c", f"Authorization: Bearer {AUTH}"),
        ("> Authorization: Basic YWxpY2U6c2VjcmV0\r", f"> Authorization: Basic {AUTH}\r"),
        ("Proxy-Authorization: Basic YWxpY2U6c2VjcmV0", f"Proxy-Authorization: Basic {AUTH}"),
        ("authorization: token ghx_notreally_abc123", f"authorization: token {AUTH}"),
        ("Authorization: sk-abc123def456", f"Authorization: {AUTH}"),
        (
            'curl -H "Authorization: Bearer abc.def" https://api.example.com/v1',
            f'curl -H "Authorization: Bearer {AUTH}" https://api.example.com/v1',
        ),
        (
            "{'Authorization': 'Bearer abc.def', 'Accept': 'application/json'}",
            f"{{'Authorization': 'Bearer {AUTH}', 'Accept': 'application/json'}}",
        ),
        ("HTTP_AUTHORIZATION=Basic YWxpY2U6c2VjcmV0", f"HTTP_AUTHORIZATION=Basic {AUTH}"),
        # A JWT keeps its own kind.
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln", "Authorization: Bearer [MASKED:jwt]"),
        # A labelled token with a scheme in front: the whole value goes.
        ("token: Bearer xyz123", f"token: {PA}"),
        ('"token": "Bearer xyz123"', f'"token": "{PA}"'),
        # Session cookies: names holding sess, sid, auth, token or jwt; the others stay.
        (
            "Cookie: theme=dark; sessionid=abc123; lang=en",
            f"Cookie: theme=dark; sessionid={COOKIE}; lang=en",
        ),
        ("cookie: PHPSESSID=abc123", f"cookie: PHPSESSID={COOKIE}"),
        (
            "Set-Cookie: JSESSIONID=abc123; Path=/; Secure; HttpOnly",
            f"Set-Cookie: JSESSIONID={COOKIE}; Path=/; Secure; HttpOnly",
        ),
        (
            "< set-cookie: connect.sid=s%3Aabc.def; Path=/",
            f"< set-cookie: connect.sid={COOKIE}; Path=/",
        ),
        (
            "Cookie: _gitlab_session=abc; __Secure-next-auth.session-token=def",
            f"Cookie: _gitlab_session={COOKIE}; __Secure-next-auth.session-token={PA}",
        ),
        # A name holding "token" is a password-assignment label too, which comes first.
        ("Cookie: XSRF-TOKEN=abc; auth_jwt=def", f"Cookie: XSRF-TOKEN={PA}; auth_jwt={COOKIE}"),
    ],
)
def test_http_credentials(text: str, expected: str) -> None:
    assert masked(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SLACK_APP_TOKEN=xapp-1-A0123456789-1234567890123-abcdef0123", f"SLACK_APP_TOKEN={SLACK}"),
        ("xoxe.xoxp-1-Mi0yLTEyMzQ1Njc4OTAtMTIzNDU2Nzg5MA", SLACK),
        ("refresh xoxe-1-My0xLTEyMzQ1Njc4OTAtMTIzNDU2Nzg5MA", f"refresh {SLACK}"),
        ("xoxc-1234567890-abcdefghij", SLACK),
        (
            "curl -X POST https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX -d @m",
            f"curl -X POST https://hooks.slack.com/services/{SLACK} -d @m",
        ),
        (
            "https://hooks.slack.com/workflows/T0000/A0000/123456/abcdefXYZ",
            f"https://hooks.slack.com/workflows/{SLACK}",
        ),
        ("glrt-AbCdEfGhIjKlMnOpQrSt12", GITLAB),
        ("gldt-AbCdEfGhIjKlMnOpQrSt12", GITLAB),
        ("glptt-0123456789abcdef0123456789abcdef01234567", GITLAB),
        ("glsoat-AbCdEfGhIjKlMnOpQrSt", GITLAB),
        ("gloas-0123456789abcdef0123456789abcdef0123456789abcdef0123456789ab", GITLAB),
        ("CI_JOB_TOKEN glcbt-64_AbCdEfGhIjKlMnOpQrSt", f"CI_JOB_TOKEN {GITLAB}"),
        ("glimt-AbCdEfGhIjKlMnOpQrSt glft-AbCdEfGhIjKlMnOpQrSt", f"{GITLAB} {GITLAB}"),
        ("glagent-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789", GITLAB),
        ("glffct-AbCdEfGhIjKlMnOpQrSt glrtr-AbCdEfGhIjKlMnOpQrSt", f"{GITLAB} {GITLAB}"),
        ("token glpat-AbCdEfGhIjKlMnOpQrSt.01.0w1hv7bym.", f"token {GITLAB}."),
        ("SIE-glpat-AbCdEfGhIjKlMnOpQrSt", f"SIE-{GITLAB}"),
        ("registration GR1348941AbCdEfGhIjKlMnOpQrSt", f"registration {GITLAB}"),
    ],
)
def test_slack_and_gitlab_prefixes(text: str, expected: str) -> None:
    assert masked(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Authorization header missing",
        "401 Unauthorized: missing authorization",
        'WWW-Authenticate: Bearer realm="api"',
        "Cookie: theme=dark; lang=en; _ga=GA1.2.3",
        "Content-Type: text/html; charset=utf-8",
        "Set-Cookie: lang=en; Path=/; Max-Age=3600",
        "for i in 1 2 3; do echo $i; done",
        "token count: 12",
        "https://hooks.slack.com/services/",
        "glibc 2.35, global options, glrt-short, gldt-",
        "xapp-short xoxe.",
    ],
)
def test_http_and_token_look_alikes_stay(text: str) -> None:
    assert masked(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # A bare value runs to white space, `&` or `"`: `;`, `,` and `'` inside it are part of the password,
        # and only a trailing `,;')]}` is left out.
        (f"password=Xk9m;{PW}", f"password={PA}"),
        (f"password=Xk9m,{PW} user=bob", f"password={PA} user=bob"),
        (f"password=Xk9m'{PW}", f"password={PA}"),
        (f"password={PW}; ls", f"password={PA}; ls"),
        (f"mysql --password={PW}, then", f"mysql --password={PA}, then"),
        (f"echo 'password={PW}'", f"echo 'password={PA}'"),
        (f"User(name=bob, password={PW})", f"User(name=bob, password={PA})"),
        (f'curl -d "user=bob&password={PW}&next=/" x', f'curl -d "user=bob&password={PA}&next=/" x'),
        (f"token={PW}; Path=/", f"token={PA}; Path=/"),
        # A connection string still ends a value at the `;` before the next key, spaces included.
        (f"Server=db;Password=my {PW}; User Id=sa", f"Server=db;Password={PA}; User Id=sa"),
        # env-secret values starting `*`, `~` or `<` that are not a path or a placeholder.
        (f"export DB_PASS=*{PW}", f"export DB_PASS={ENV}"),
        (f"export DB_PASS=~{PW}", f"export DB_PASS={ENV}"),
        (f"export DB_PASS=<{PW}", f"export DB_PASS={ENV}"),
        (f"export DB_PASS='<{PW}>'", f"export DB_PASS='{ENV}'"),
        # A `/` inside a URL password.
        (f"postgres://app:ab/{PW}@db:5432/app", f"postgres://app:{URL}@db:5432/app"),
        (f"redis://:{PW}/x@cache:6379", f"redis://:{URL}@cache:6379"),
    ],
)
def test_bare_values_and_their_delimiters(text: str, expected: str) -> None:
    assert masked(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "export SSH_KEY_PASS=~/.ssh/pass",
        "export DB_PASS=~",
        "export DB_PASS=~app/pass",
        "export DB_PASS=********",
        "      DB_PASS:      <none>",
        "export DB_PASS=/run/secrets/db",
        "https://example.com:8443/path/x@y",
        "docker pull registry:5000/app@sha256:0123abcd",
    ],
)
def test_paths_placeholders_and_ports_stay(text: str) -> None:
    assert masked(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # .netrc, on one line or one keyword a line.
        (f"machine api.example.com login alice password {PW}", f"machine api.example.com login alice password {PA}"),
        (f"default login alice password {PW} account x", f"default login alice password {PA} account x"),
        (f"    password {PW}", f"    password {PA}"),
        # ODBC and libpq-style connection strings.
        (
            f"Driver={{ODBC Driver 18}};Server=db;UID=sa;PWD={PW};",
            f"Driver={{ODBC Driver 18}};Server=db;UID=sa;PWD={PA};",
        ),
        (f"DSN=app;UID=u;PWD={{Xk9m;{PW}}};", f"DSN=app;UID=u;PWD={PA};"),
        (f"host=db; user=app; pass={PW}; dbname=app", f"host=db; user=app; pass={PA}; dbname=app"),
        (f"pwd={PW};uid=app", f"pwd={PA};uid=app"),
        # XML elements named like a password key.
        (f"<password>{PW}</password>", f"<password>{PA}</password>"),
        (f'  <db:secretKey type="x">my {PW}</db:secretKey>', f'  <db:secretKey type="x">{PA}</db:secretKey>'),
        (f"<token>{PW}</token><tokens>12</tokens>", f"<token>{PA}</token><tokens>12</tokens>"),
        # PHP define() and Dockerfile ENV without `=`.
        (f"define( 'DB_PASSWORD', '{PW}' );", f"define( 'DB_PASSWORD', '{PA}' );"),
        (f'define("AUTH_KEY", "it\\"s {PW}");', f'define("AUTH_KEY", "{PA}");'),
        (f"ENV DB_PASSWORD {PW}", f"ENV DB_PASSWORD {PA}"),
        (f"ENV SMTP_PASS my {PW}", f"ENV SMTP_PASS {PA}"),
        (f"/bin/sh -c #(nop)  ENV API_TOKEN {PW}", f"/bin/sh -c #(nop)  ENV API_TOKEN {PA}"),
    ],
)
def test_password_forms_without_a_separator(text: str, expected: str) -> None:
    assert masked(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "machine learning for log analysis",
        "Password expired",
        "password for alice changed",
        "login alice from 10.0.0.7 port 52144",
        "mysql -u root -p app",
        "mysql -P3306 -h db -u root",
        "find /var/lib/mysql -name '*.ibd' -print",
        "PWD=/home/alice",
        "OLDPWD=/root",
        "<passwordPolicy/>",
        "<user>alice</user>",
        "define('DB_USER', 'root');",
        "ENV PATH /usr/local/bin:$PATH",
        "#!/usr/bin/env python3",
        "2024-05-17 10:22:31 INFO tests pass: 12, fail: 0",
    ],
)
def test_password_form_look_alikes_stay(text: str) -> None:
    assert masked(text) == text
