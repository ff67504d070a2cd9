"""Time limits per phase, and workers that die with their parent.

A run's worker process arms a :class:`Watchdog`: a daemon thread that

- ends the process (``os._exit``) when the phase in progress (``fit`` or
  ``score``) passes its time limit, after letting the caller record why
  (``on_timeout``); a model stuck in C code or asleep cannot outlive it;
- ends the process silently when its parent (the ``sessionbench run``
  process) is gone, so that an orphaned worker never writes later.

On Linux, :func:`die_with_parent` also asks the kernel to SIGKILL the
process when its parent dies (``PR_SET_PDEATHSIG``; strictly: when the
parent's thread that started it ends, so start workers from a thread that
lives as long as the run); the thread's check of the parent's pid is the
fallback elsewhere.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

#: exit status of a process ended by its watchdog for a time limit
#: (the one GNU ``timeout`` uses)
EXIT_TIMEOUT = 124
#: exit status of a worker that found its parent gone
EXIT_ORPHANED = 125
_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> bool:
    """Ask the kernel to SIGKILL this process when its parent dies (Linux).

    Returns True when the request was made. Exits at once (status
    :data:`EXIT_ORPHANED`) when the parent is already gone.
    """
    done = False
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)  # the C library is linked into the interpreter
            done = libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
        except (OSError, AttributeError):
            done = False
    if os.getppid() != parent_pid:  # the parent died before the request
        os._exit(EXIT_ORPHANED)
    return done


def format_seconds(seconds: float) -> str:
    """``2`` -> ``"2"``, ``0.5`` -> ``"0.5"`` (as limits are written)."""
    return f"{seconds:g}"


class Watchdog:
    """Per-phase time limits and a parent check for the calling process.

    Args:
        on_timeout: called as ``on_timeout(phase, limit_seconds)`` from the
            watchdog thread when a phase passes its limit, just before the
            process exits with :data:`EXIT_TIMEOUT`; it records why.
        parent_pid: end the process (silently) once this process is no
            longer its parent; None: no parent check.
        poll: seconds between checks.
    """

    def __init__(
        self,
        on_timeout: Callable[[str, float], None],
        *,
        parent_pid: int | None = None,
        poll: float = 0.1,
    ) -> None:
        self.on_timeout = on_timeout
        self.parent_pid = parent_pid
        self.poll = poll
        self._lock = threading.Lock()
        self._phase: tuple[str, float, float] | None = None  # (name, limit, deadline)
        self._thread = threading.Thread(target=self._watch, name="sessionbench-watchdog", daemon=True)
        self._thread.start()

    @contextmanager
    def phase(self, name: str, limit: float | None) -> Iterator[None]:
        """Run the block as phase ``name`` with at most ``limit`` seconds
        (None: no limit)."""
        if limit is None:
            yield
            return
        with self._lock:
            self._phase = (name, limit, time.monotonic() + limit)
        try:
            yield
        finally:
            with self._lock:  # blocks for ever once the watchdog is ending the process
                self._phase = None

    def _watch(self) -> None:
        while True:
            time.sleep(self.poll)
            if self.parent_pid is not None and os.getppid() != self.parent_pid:
                os._exit(EXIT_ORPHANED)
            self._lock.acquire()
            phase = self._phase
            if phase is not None and time.monotonic() >= phase[2]:
                try:  # the lock stays held: the main thread cannot leave the phase
                    self.on_timeout(phase[0], phase[1])
                finally:
                    os._exit(EXIT_TIMEOUT)
            self._lock.release()
