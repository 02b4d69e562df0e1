"""What the agent sees when the bastion itself answers: exit statuses and the one `bastion:` line (SPEC)."""

from __future__ import annotations

EXIT_PENDING = 75
EXIT_DENIED = 77
EXIT_FAILURE = 255


def line(message: str, *, pty: bool) -> bytes:
    """One `bastion:` line; a pty needs CRLF to start the next line at column 0.

    The message often quotes the agent's command or an approver's reason: escaped, neither can add a line
    of its own (a fake `bastion:` answer) or drive the reader's terminal.
    """
    return f"bastion: {shown(message)}{chr(13) + chr(10) if pty else chr(10)}".encode()


def shown(value: object) -> str:
    """Text as a person may safely read it: control characters (newline, ESC, CR, ...) escaped.

    Backslashes are doubled, so a single one always starts an escape: a real newline (shown `\\n`) cannot pass
    for a typed backslash-n (shown `\\\\n`). An approver reading `echo hi\\nrm -rf ~` must know whether it
    is one command or two.
    """
    text = str(value)
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(c if c.isprintable() and c != "\\" else c.encode("unicode_escape").decode("ascii") for c in text)
