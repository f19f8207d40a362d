"""One writer per store: the process that writes holds an exclusive lock on ``PATH.lock``.

The stores cache the hot file in memory and rewrite it whole, so a second writing process would
silently undo the first one's changes at its next write. Readers (``report``, ``jobs list``) take no
lock: every file is replaced atomically, so they always read whole files. The kernel drops the lock
when its holder exits, even by kill -9, so a crashed bot never leaves the store locked.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class StoreInUse(RuntimeError):
    """Another process has the store open for writing."""


def lock_path(store_path: Path) -> Path:
    return store_path.with_name(store_path.name + ".lock")


class WriterLock:
    def __init__(self, store_path: Path) -> None:
        self.store_path = store_path
        self.path = lock_path(store_path)
        self._fd: int | None = None

    def acquire(self) -> None:
        """Takes the lock at once or raises StoreInUse naming the holder's process id."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip()
            os.close(fd)
            raise StoreInUse(
                f"{self.store_path} is open for writing by another process"
                + (f" (pid {holder})" if holder.isdigit() else "")
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None
