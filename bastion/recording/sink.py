"""The recording file: whole lines only, hashed as written, flushed in batches.

Lines are collected and written with `os.write` of complete lines, so a process killed at any moment leaves a
file that ends on a line boundary and `asciinema cat` reads it up to the last flushed event. The owner calls
`flush()` on a short timer (bounded delay) and the sink flushes by itself when its batch grows large.
Any write error is raised as StoreError: the session it records must stop (fail closed). A short write (a
full disk) is cut back to the last whole line first.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from bastion.errors import StoreError

log = logging.getLogger("bastion.recording")
_BATCH_BYTES = 256 * 1024


class RecordingSink:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fd: int | None = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o640)
        except OSError as exc:
            raise StoreError(f"cannot open recording {path.name}: {exc.strerror}") from None
        self._pending: list[bytes] = []
        self._pending_len = 0
        self._sha = hashlib.sha256()
        self.size = 0
        self.error: str | None = None  # the write that failed: the file holds what came before it, and no more

    def write(self, line: bytes) -> None:
        if not line or self.error is not None:  # after a failed write nothing more is taken: no gap in the file
            return
        self._pending.append(line)
        self._pending_len += len(line)
        if self._pending_len >= _BATCH_BYTES:
            self.flush()

    def flush(self) -> None:
        if not self._pending or self._fd is None or self.error is not None:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        self._pending_len = 0
        try:
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError as exc:
            self._cut_partial_line()
            self.error = f"cannot write recording {self.path.name}: {exc.strerror}"
            raise StoreError(self.error) from None
        self._sha.update(data)
        self.size += len(data)

    def _cut_partial_line(self) -> None:
        """After a short write (a full disk), the file goes back to its last whole line, so it stays readable."""
        try:
            os.ftruncate(self._fd, self.size)  # type: ignore[arg-type]
        except OSError:
            log.error("recording %s may end in a partial line: it could not be cut back", self.path.name)

    def close(self) -> str:
        """Flushes, fsyncs and closes; returns the SHA-256 of the whole file."""
        if self._fd is not None:
            try:
                self.flush()
                os.fsync(self._fd)
            finally:
                os.close(self._fd)
                self._fd = None
        return self._sha.hexdigest()

    @property
    def digest(self) -> str:
        """SHA-256 of what the file holds: every line written so far."""
        return self._sha.hexdigest()

    @property
    def closed(self) -> bool:
        return self._fd is None
