"""Logging set-up: sessionbench's own loggers, the CLI's stderr output and a
run's ``log.txt``.

sessionbench's modules log to loggers named after their modules, all under
:data:`OWN_LOGGERS`. Importing sessionbench configures nothing; the CLI
calls :func:`configure_cli`, and a run's worker process adds
:func:`run_log_file` for the run (lines of INFO and above of sessionbench's
loggers, warnings and errors of any logger).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: the top-level logger names of sessionbench's own code
OWN_LOGGERS = ("sessionbench", "harness", "baselines", "srgnn")
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def is_own(name: str) -> bool:
    """Whether the logger ``name`` is one of sessionbench's."""
    return any(name == own or name.startswith(own + ".") for own in OWN_LOGGERS)


class OwnOrWarning(logging.Filter):
    """Passes sessionbench's records at any level, others' at WARNING and above."""

    def filter(self, record: logging.LogRecord) -> bool:
        return is_own(record.name) or record.levelno >= logging.WARNING


class _StderrHandler(logging.StreamHandler):
    """A stream handler writing to whatever ``sys.stderr`` is when a record
    is emitted (it may be replaced after the handler is made)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ sets it
        pass


def configure_cli(verbosity: int) -> int:
    """The CLI's logging: stderr, WARNING by default; ``-v`` shows
    sessionbench's INFO lines and ``-vv`` its DEBUG lines, while other
    libraries stay at WARNING. Like ``logging.basicConfig``, it adds its
    handler only when the root logger has none (an embedding application's
    or a test runner's handlers are left alone) but always sets the level.
    Returns the level of sessionbench's loggers."""
    level = logging.WARNING - 10 * min(int(verbosity), 2)
    root = logging.getLogger()
    if not root.handlers:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        handler.addFilter(OwnOrWarning())
        root.addHandler(handler)
    root.setLevel(level)
    return level


@contextmanager
def run_log_file(path: str | Path, stderr_level: int = logging.WARNING) -> Iterator[Path]:
    """While open, sessionbench's INFO lines (and everyone's warnings) also
    go to the file ``path``; the root logger's handlers (stderr) keep
    ``stderr_level``. Restores the previous levels on exit."""
    path = Path(path)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.setLevel(logging.INFO)
    handler.addFilter(OwnOrWarning())
    root = logging.getLogger()
    old_level, old_handler_levels = root.level, [(h, h.level) for h in root.handlers]
    for h in root.handlers:
        h.setLevel(max(stderr_level, h.level))
    root.setLevel(min(logging.INFO, stderr_level, old_level or logging.WARNING))
    root.addHandler(handler)
    try:
        yield path
    finally:
        root.removeHandler(handler)
        handler.close()
        root.setLevel(old_level)
        for h, level in old_handler_levels:
            h.setLevel(level)
