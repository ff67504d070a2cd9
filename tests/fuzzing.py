"""Shared pieces of the fuzz tests (tests/test_fuzz_*.py).

The property every fuzz test checks: whatever a user feeds in (raw files,
spec and suite YAML, command-line strings), sessionbench either succeeds or
stops with a one-line error (exit status 2), never a traceback, never a hang
(each example runs under a hard alarm), and writes nothing outside the
output and cache folders it was given.

Two profiles: the default runs a few examples per test, so that `make test`
stays quick; ``HYPOTHESIS_PROFILE=fuzz`` (``make fuzz``) runs many more.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import platformdirs
from hypothesis import HealthCheck, settings

REPO = Path(__file__).resolve().parents[1]
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "default")
#: examples per fuzz test: a few in `make test`, many in `make fuzz`
SCALE = 40 if PROFILE == "fuzz" else 1
#: an example that takes longer than this has hung (a hard limit, raised by SIGALRM)
HANG_SECONDS = 60


def fuzz_settings(examples: int) -> settings:
    """Hypothesis settings for a fuzz test with ``examples`` examples in the quick profile."""
    return settings(
        max_examples=examples * SCALE,
        deadline=timedelta(seconds=HANG_SECONDS),
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                               HealthCheck.data_too_large, HealthCheck.filter_too_much],
        database=None,  # no .hypothesis folder written into the repository
        derandomize=PROFILE != "fuzz",  # `make test` sees the same examples every time
    )


class Hang(Exception):
    """An example ran past :data:`HANG_SECONDS`."""


@contextlib.contextmanager
def no_hang(seconds: int = HANG_SECONDS) -> Iterator[None]:
    """Fail an example that runs for more than ``seconds`` (hypothesis's
    deadline only judges an example once it has finished)."""

    def alarm(signum, frame):
        raise Hang(f"the example ran for more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


#: where sessionbench reads or writes by default (the repository's reports and
#: shipped presets, the user data and cache folders); a fuzz example, which
#: names its own output and cache folders, must leave them as they were
WATCHED = [
    REPO / "reports",
    REPO / "harness" / "presets",
    platformdirs.user_data_path("sessionbench", appauthor=False),
    platformdirs.user_cache_path("sessionbench", appauthor=False),
]


def tree(*folders: Path) -> set[tuple[str, int, int]]:
    """Every file under ``folders`` with its size and modification time."""
    found = set()
    for folder in folders:
        for root, dirs, files in os.walk(folder):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            for name in files:
                path = Path(root) / name
                with contextlib.suppress(OSError):
                    info = path.stat()
                    found.add((str(path), info.st_size, info.st_mtime_ns))
    return found


def assert_one_line_error(message: str) -> None:
    """A user error is one line of reasonable length."""
    assert "\n" not in message.strip(), message
    assert "Traceback" not in message, message
    assert len(message) < 3000, f"an error of {len(message)} characters: {message[:300]}..."
