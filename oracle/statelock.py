"""One service per state directory: an exclusive `flock` on the directory itself.

Shared by the meter service (`oracle run`) and the relayer (`oracle relay`): two processes on
one state directory would race for nonces, sequence numbers and cursors.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from oracle.errors import StateError

LOCK_FILE = "oracle.lock"


class StateLock:
    """Held until `release()`; `what` names the service in the "already running" error."""

    def __init__(self, state_dir: Path, *, what: str = "oracle", lock_file: str = LOCK_FILE):
        try:
            self._take(Path(state_dir), what, lock_file)
        except OSError as exc:
            raise StateError(
                f"state_dir {state_dir}: {exc.strerror or exc} (a read-only or full file system?)"
            ) from None

    def _take(self, state_dir: Path, what: str, lock_file: str) -> None:
        self._fd = self._dir_fd = -1
        state_dir.mkdir(parents=True, exist_ok=True)
        self.path = state_dir / lock_file
        # The lock is held on the directory itself, which cannot be deleted while the service
        # runs (it is not empty); the lock file only tells the pid.
        self._dir_fd = os.open(state_dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(self._dir_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._dir_fd)
            self._dir_fd = -1
            raise StateError(f"another {what} is running with state_dir {state_dir}") from None
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        os.ftruncate(self._fd, 0)
        os.write(self._fd, f"{os.getpid()}\n".encode())

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._dir_fd >= 0:
            fcntl.flock(self._dir_fd, fcntl.LOCK_UN)
            os.close(self._dir_fd)
            self._dir_fd = -1
