"""What the agent sees when the bastion itself answers: exit statuses and the one `bastion:` line (SPEC)."""

from __future__ import annotations

EXIT_PENDING = 75
EXIT_DENIED = 77
EXIT_FAILURE = 255


def line(message: str, *, pty: bool) -> bytes:
    """One `bastion:` line; a pty needs CRLF to start the next line at column 0."""
    return f"bastion: {message}{chr(13) + chr(10) if pty else chr(10)}".encode()
