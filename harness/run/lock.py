"""One writer per output folder.

``sessionbench run`` (and ``runs prune``) hold an exclusive lock on the
output folder for as long as they write there: the file ``<out>/.lock``,
locked with ``flock`` and holding the owner's pid, host and start time. The
kernel releases the lock when its process ends, however it ends, so a lock
file left by a dead process is *stale* and is taken over (the caller is told
whose it was). A lock held by a live process is a one-line error naming it.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness.errors import SessionbenchError

LOCK_FILE = ".lock"


class LockedError(SessionbenchError):
    """Another live process holds the output folder's lock."""


class OutputLock:
    """An exclusive lock on an output folder (a context manager).

    ``stale`` is the previous owner's record (pid, host, started) when a
    lock file left by a process that is gone was taken over, else None.
    """

    def __init__(self, out_dir: str | Path, *, command: str = "sessionbench run") -> None:
        self.path = Path(out_dir) / LOCK_FILE
        self.command = command
        self.stale: dict[str, Any] | None = None
        self._fd: int | None = None

    def acquire(self) -> OutputLock:
        """Take the lock or raise :class:`LockedError`."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                os.close(fd)
                if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                raise LockedError(f"{self.path.parent}: in use by {describe(read_owner(self.path))}; "
                                  f"wait for it to finish (one writer per output folder)") from None  # fmt: skip
            if _same_file(fd, self.path):
                break
            # the owner removed the file between our open and our flock: lock the new one
            os.close(fd)
        previous = _parse(os.pread(fd, 4096, 0))
        if previous:  # a record without a lock: its process ended without removing it
            self.stale = previous
        record = {"pid": os.getpid(), "host": socket.gethostname(), "command": self.command,
                  "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}  # fmt: skip
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Remove the lock file and release the lock."""
        if self._fd is None:
            return
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def holder(out_dir: str | Path) -> dict[str, Any] | None:
    """The record of the live process holding ``out_dir``'s lock, or None
    when it is free (a probe: it takes a shared lock for an instant)."""
    path = Path(out_dir) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as err:
        if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise
        return read_owner(path) or {"pid": "?", "host": "?"}
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def read_owner(path: str | Path) -> dict[str, Any]:
    """The record in a lock file ({} when absent or unreadable)."""
    try:
        return _parse(Path(path).read_bytes())
    except OSError:
        return {}


def describe(owner: dict[str, Any]) -> str:
    """``sessionbench run (pid 123 on host h, since 2026-...)``."""
    if not owner:
        return "another process"
    return (f"{owner.get('command', 'a process')} (pid {owner.get('pid', '?')} on host {owner.get('host', '?')}, "
            f"since {owner.get('started', '?')})")  # fmt: skip


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (mine.st_dev, mine.st_ino) == (st.st_dev, st.st_ino)


def _parse(data: bytes) -> dict[str, Any]:
    try:
        record = json.loads(data.decode() or "{}")
    except (UnicodeDecodeError, ValueError):
        return {"pid": "?", "host": "?"} if data.strip() else {}
    return record if isinstance(record, dict) else {}
