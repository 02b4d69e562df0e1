"""Realistic variants of the formats the built-in detectors cover: each line masked exactly, streamed or not."""

import pytest

from bastion.masking import Masker, MaskingPolicy, mask_bytes

DEFAULT = MaskingPolicy().for_session(["agent"], "web-1", {})


def streamed(data: bytes, size: int) -> bytes:
    masker = Masker(DEFAULT)
    out = b"".join(masker.feed(data[i : i + size]) for i in range(0, len(data), size))
    return out + masker.flush()


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
