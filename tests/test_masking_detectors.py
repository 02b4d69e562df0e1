"""Each built-in detector, with what it must mask and the look-alikes it must leave alone."""

import pytest

from bastion.masking import MaskingPolicy, mask_bytes
from bastion.masking.detectors import card_ok, luhn_ok

RULES = MaskingPolicy().for_session(["agent"], "web-1", {})

# Published example values (AWS docs, jwt.io, test card numbers), never real secrets.
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
GH = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"


def masked(text: str) -> str:
    return mask_bytes(RULES, (text + "\n").encode()).decode()[:-1]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("key AKIAIOSFODNN7EXAMPLE end", "key [MASKED:aws-access-key] end"),
        ("ASIAY34FZKBOKMUTVV7A", "[MASKED:aws-access-key]"),
        (f"aws_secret_access_key = {AWS_SECRET}", "aws_secret_access_key = [MASKED:aws-secret-key]"),
        (f"export AWS_SECRET_ACCESS_KEY={AWS_SECRET}", "export AWS_SECRET_ACCESS_KEY=[MASKED:aws-secret-key]"),
        (f'"SecretAccessKey": "{AWS_SECRET}",', '"SecretAccessKey": "[MASKED:aws-secret-key]",'),
        (f"Authorization: Bearer {JWT}", "Authorization: Bearer [MASKED:jwt]"),
        (f"GITHUB_TOKEN {GH}", "GITHUB_TOKEN [MASKED:github-token]"),
        ("gho_" + "x" * 36, "[MASKED:github-token]"),
        ("github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz", "[MASKED:github-token]"),
        ("remote glpat-AbCdEfGhIjKlMnOpQrSt", "remote [MASKED:gitlab-token]"),
        ("xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", "[MASKED:slack-token]"),
        ("xoxp-1234567890-abcdef", "[MASKED:slack-token]"),
        ("visa 4111111111111111 ok", "visa [MASKED:card-number] ok"),
        ("visa 4111 1111 1111 1111", "visa [MASKED:card-number]"),
        ("mc 5555-5555-5555-4444.", "mc [MASKED:card-number]."),
        ("amex 3782 822463 10005", "amex [MASKED:card-number]"),
        ("ssn 123-45-6789", "ssn [MASKED:us-ssn]"),
        ("password=hunter2", "password=[MASKED:password-assignment]"),
        ("export DB_PASSWORD='s3 cr3t'", "export DB_PASSWORD='[MASKED:password-assignment]'"),
        ("passwd: letmein", "passwd: [MASKED:password-assignment]"),
        ("  secret: abc123", "  secret: [MASKED:password-assignment]"),
        ('{"api_key": "k-123", "user": "bob"}', '{"api_key": "[MASKED:password-assignment]", "user": "bob"}'),
        ("curl https://x/?token=abc&page=2", "curl https://x/?token=[MASKED:password-assignment]&page=2"),
        ("mysql --password=pw1 -u root", "mysql --password=[MASKED:password-assignment] -u root"),
        ("CLIENT_SECRET := zzz", "CLIENT_SECRET := [MASKED:password-assignment]"),
    ],
)
def test_masks_secret(text: str, expected: str) -> None:
    assert masked(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "4111111111111112",  # fails Luhn
        "4111 1111 1111 1112",
        "1700000000000 1716822000123",  # epoch milliseconds
        "commit 3f786850e387550fdab836ed7e6dc881de23001b",  # a 40-char git SHA is not an AWS secret
        "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "id 123e4567-e89b-12d3-a456-426614174000",
        "2024-05-17T10:22:01.123Z 10.0.12.254 192.168.1.1:8443 ::1",
        "000-12-3456 666-12-3456 912-12-3456 123-00-4567 123-45-0000 555-123-4567",
        "AKIAIOSFODNN7EXAMPL",  # 19 characters
        "XAKIAIOSFODNN7EXAMPLE1",
        "eyJhbGciOiJIUzI1NiJ9 alone",
        "ghp_short glpat-short xoxb-",
        "PasswordAuthentication no",
        "[sudo] password for alice: ",
        "password:",
        "Token expired: yes",
        "-----BEGIN PUBLIC KEY----- -----BEGIN CERTIFICATE-----",
        "size=4096 bytes=1234567 port=22",
    ],
)
def test_leaves_look_alike(text: str) -> None:
    assert masked(text) == text


@pytest.mark.parametrize(
    "kind",
    [
        "OPENSSH PRIVATE KEY",
        "RSA PRIVATE KEY",
        "EC PRIVATE KEY",
        "DSA PRIVATE KEY",
        "ENCRYPTED PRIVATE KEY",
        "PRIVATE KEY",
        "PGP PRIVATE KEY BLOCK",
    ],
)
def test_private_key_block(kind: str) -> None:
    text = f"before\n-----BEGIN {kind}-----\nMIIEowIBAAKCAQEA\nQ2xhdWRl\n-----END {kind}-----\nafter\n"
    assert mask_bytes(RULES, text.encode()) == b"before\n[MASKED:private-key]\nafter\n"


def test_private_key_on_one_line_with_escaped_newlines() -> None:
    text = b'{"key": "-----BEGIN RSA PRIVATE KEY-----\\nMIIE\\n-----END RSA PRIVATE KEY-----\\n", "n": 1}\n'
    assert mask_bytes(RULES, text) == b'{"key": "[MASKED:private-key]\\n", "n": 1}\n'


def test_label_stays_visible_and_value_is_masked_once() -> None:
    assert masked("token=AKIAIOSFODNN7EXAMPLE") == "token=[MASKED:aws-access-key]"


def test_output_that_is_not_utf8_passes_through() -> None:
    data = b"\xff\xfe binary \x00\x80 password=\xc3\x28x\n"
    assert mask_bytes(RULES, data) == b"\xff\xfe binary \x00\x80 password=[MASKED:password-assignment]\n"


def test_luhn() -> None:
    assert luhn_ok(b"79927398713")
    assert not luhn_ok(b"79927398710")
    assert card_ok(b"4111-1111-1111-1111")
    assert not card_ok(b"1111111111111117")  # Luhn-valid but no card network starts with 1


# Generated for these tests (ssh-keygen -t ed25519, openssl genpkey); never used anywhere.
OPENSSH_BODY = (
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtz\n"
    "c2gtZWQyNTUxOQAAACA8dvjenLTt28DBod7bNjAtiNJlOtjYJhv0Wkkw2cBrOAAA\n"
    "YTx2+N6ctO3bwMGh3ts2MC2I0mU62NgmG/RaSTDZwGs4AAAAAAECAwQF\n"
)
PKCS8_ED25519 = "MC4CAQAwBQYDK2VwBCIEIAC7pUkXQ81ybdP2RVKDfo8A9lyVeYsln1MW1Eba3fFh\n"
RSA_FIRST = "MIIEowIBAAKCAQEApGL1SxRO+Uql7FhLpqEDMIIBIjANBgkqhkiG9w0BAQEFAAOC\n"
SPKI_FIRST = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEApGL1SxRO+Uql7FhLpqED\n"
CERT_FIRST = "MIIDdzCCAl+gAwIBAgIEAgAAuTANBgkqhkiG9w0BAQUFADBaMQswCQYDVQQGEwJJ\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("db_\x1b[01;31m\x1b[Kpassword\x1b[m\x1b[K=hunter2secret", "db_\x1b[01;31m\x1b[Kpassword\x1b[m\x1b[K=[MASKED:"),
        ("password=\x1b[01;31mhunter2\x1b[m rest", "password=\x1b[01;31m[MASKED:"),
        (f"x {GH[:10]}\x1b[1;31m{GH[10:20]}\x1b[0m{GH[20:]} y", "x [MASKED:github-token] y"),
        (f"\x1b[32m{GH}\x1b[0m", "\x1b[32m[MASKED:github-token]\x1b[0m"),
        (
            "\x1b]8;;file:///etc\x1b\\AKIAIOSFODNN7EXAMPLE\x1b]8;;\x1b\\",
            "\x1b]8;;file:///etc\x1b\\[MASKED:aws-access-key]",
        ),
        ("\x1b]0;token=abc123\x07$ ", "\x1b]0;token=[MASKED:password-assignment]"),
        ("\x1b(B\x1b[mapi_key\x1b(B\x1b[m: k-123", "api_key\x1b(B\x1b[m: [MASKED:password-assignment]"),
    ],
)
def test_escape_sequences_do_not_hide_a_secret(text: str, expected: str) -> None:
    out = masked(text)
    assert expected in out
    assert "hunter2" not in out and "abc123" not in out and "k-123" not in out and GH[20:] not in out


def test_escape_sequences_outside_secrets_are_kept() -> None:
    text = "\x1b[01;34mdir\x1b[0m  \x1b[01;32mrun.sh\x1b[0m  size=4096\x1b[K"
    assert masked(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (OPENSSH_BODY + "-----END OPENSSH PRIVATE KEY-----\n$ ", "[MASKED:private-key]\n$ "),
        ("$ sed -n 2,3p id\n" + OPENSSH_BODY + "$ ", "$ sed -n 2,3p id\n[MASKED:private-key]\n$ "),
        (
            "a\r\n" + PKCS8_ED25519.replace("\n", "\r\n") + "-----END PRIVATE KEY-----\r\nb\r\n",
            "a\r\n[MASKED:private-key]\r\nb\r\n",
        ),
        (RSA_FIRST + RSA_FIRST + "\nnext\n", "[MASKED:private-key]\n\nnext\n"),
        (RSA_FIRST + "abc def\n", "[MASKED:private-key]\nabc def\n"),
    ],
)
def test_private_key_body_without_begin(text: str, expected: str) -> None:
    assert mask_bytes(RULES, text.encode()) == expected.encode()


@pytest.mark.parametrize(
    "text",
    [
        SPKI_FIRST + "-----END PUBLIC KEY-----\n",
        CERT_FIRST + CERT_FIRST + "-----END CERTIFICATE-----\n",
        "MIIEowIBAAKCAQEA short\n",
        "Mozilla/5.0 (X11; Linux x86_64)\n",
        "MAX_CONNECTIONS=100\n",
        "x " + PKCS8_ED25519,  # not at a line start
    ],
)
def test_public_base64_and_look_alikes_are_not_key_bodies(text: str) -> None:
    assert mask_bytes(RULES, text.encode()) == text.encode()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("MYSQL_PWD=hunter2 mysql -u root", "MYSQL_PWD=[MASKED:env-secret] mysql -u root"),
        ("export SMTP_PASS='s3 cr3t'", "export SMTP_PASS='[MASKED:env-secret]'"),
        ("STRIPE_KEY=sk_live_4eC39HqLyjWDarjtT1zdp7dc", "STRIPE_KEY=[MASKED:env-secret]"),
        ("APP_ENCRYPTION_KEY=3f786850e387550fdab836ed7e6dc881", "APP_ENCRYPTION_KEY=[MASKED:env-secret]"),
        (f'AWS_SECRET_ACCESS_KEY="{AWS_SECRET}"', 'AWS_SECRET_ACCESS_KEY="[MASKED:aws-secret-key]"'),
        ("db.example.com:5432:app:alice:s3cr\\:et", "db.example.com:5432:app:alice:[MASKED:pgpass]"),
        ("*:*:*:postgres:pw", "*:*:*:postgres:[MASKED:pgpass]"),
    ],
)
def test_env_and_pgpass_secrets(text: str, expected: str) -> None:
    assert masked(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "MAX_TOKENS=4096",
        "max_tokens: 4096",
        "SORT_KEY=name PRIMARY_KEY=user_id GPG_KEY=0xABCD1234",
        "KMS_KEY=arn:aws:kms:eu-west-1:123456789012:key/abc",
        "OLDPWD=/home/alice PWD=/tmp HOME_PASS=$PASSWORD_FILE",
        "SSH_AUTH_SOCK=/tmp/ssh-XXXX/agent.123",
        "file.c:12:5: error: expected ';'",
        "12:30:45:123:foo",
        "ERROR:5432:main:foo: something failed",
        "2024-05-17T10:22:01.123Z INFO [worker-3] GET /api/v1/items/42 status=200",
        "root:x:0:0:root:/root:/bin/bash",
    ],
)
def test_env_and_pgpass_look_alikes(text: str) -> None:
    assert masked(text) == text
