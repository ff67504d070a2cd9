"""Errors that sessionbench reports to its users.

Every error a user can cause (a bad file, a bad spec, a bad command-line value,
a plugin that breaks the API contract) is a :class:`SessionbenchError`. The CLI
prints such an error as one line and exits with status 2. A model whose own
code raises while fitting or scoring gives a :class:`ModelFailure`: one line
and exit status 1. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
import reprlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

#: Quoted user input is cut to about this many characters, so that an error
#: about a 10 MB line is still one readable line.
QUOTE_LIMIT = 200

#: a container with more elements than this (nested ones counted, shared
#: ones once per use, as YAML aliases expand) is shown in part: a 500-byte
#: YAML file of nested aliases holds billions of elements
_QUOTE_ELEMENTS = 10_000
_PARTIAL = reprlib.Repr()
_PARTIAL.maxlevel, _PARTIAL.maxlist, _PARTIAL.maxtuple, _PARTIAL.maxdict = 4, 8, 8, 8


def quote(value: Any, limit: int = QUOTE_LIMIT) -> str:
    """``repr(value)`` for an error message, cut to about ``limit`` characters.

    Every error message that shows a user's input goes through this one
    function. A long string keeps its first ``limit`` characters and says how
    long it was; any other long value is cut likewise.
    """
    if isinstance(value, (str, bytes)) and len(value) > limit:
        return f"{value[:limit]!r}... ({len(value):,} characters)"
    if not _has_at_most(value, _QUOTE_ELEMENTS):
        text = _PARTIAL.repr(value)
        return f"{text[:limit]}{'...' if len(text) > limit else ''} (over {_QUOTE_ELEMENTS:,} elements)"
    text = repr(value)
    if len(text) > limit:
        return f"{text[:limit]}... ({len(text):,} characters)"
    return text


def _has_at_most(value: Any, budget: int) -> bool:
    """Whether ``value`` holds at most ``budget`` elements, nested ones
    included; stops counting once past it."""
    pending, seen = [value], 0
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            children = [*item.keys(), *item.values()]
        elif isinstance(item, (list, tuple, set, frozenset)):
            children = list(item)
        else:
            continue
        seen += len(children)
        if seen > budget:
            return False
        pending.extend(children)
    return True


def describe(value: Any) -> str:
    """``<type> <quoted value>``: what a key held, for "expected X, got Y" messages."""
    return f"{type(value).__name__} {quote(value)}"


def did_you_mean(name: Any, choices: Iterable[Any]) -> str:
    """``" (did you mean 'x'?)"`` when ``name`` is a likely typo of one of
    ``choices``, else ``""``: placed right after the unknown name or key in
    an error message.

    A close match is what :func:`difflib.get_close_matches` finds (similarity
    ratio >= 0.6), compared case-insensitively, so ``SRGNN`` finds ``srgnn``.
    """
    if not isinstance(name, str) or not name:
        return ""
    options = {str(c).lower(): str(c) for c in choices}
    match = difflib.get_close_matches(name.lower(), list(options), n=1, cutoff=0.6)
    if not match or options[match[0]] == name:
        return ""
    return f" (did you mean {options[match[0]]!r}?)"


class SessionbenchError(Exception):
    """An error caused by user input; printed as one line by the CLI (exit 2)."""


class DataError(SessionbenchError):
    """A raw data file cannot be read or gives an unusable dataset.

    The message names the file and, where they apply, the line (1-based, as an
    editor shows it, header included) and the column.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        column: str | None = None,
    ) -> None:
        self.path = None if path is None else str(path)
        self.line = line
        self.column = column
        self.reason = message
        where = []
        if self.path is not None:
            where.append(self.path)
        if line is not None:
            where.append(f"line {line}")
        if column is not None:
            where.append(f"column {column!r}")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class ConfigError(SessionbenchError):
    """A spec, suite or command-line value is invalid (names file and key)."""


class UnknownNameError(SessionbenchError):
    """An unknown dataset preset or model name."""


class ContractError(SessionbenchError):
    """A model (plugin) broke a rule of the plugin API; names model and rule."""


class ModelFailure(Exception):
    """A model's own code raised while fitting or scoring (CLI exit status 1).

    Not a :class:`SessionbenchError`: the input was fine, the model failed.
    The message names the model, the method, the exception type and its
    message; the original exception is the ``__cause__``.
    """

    def __init__(self, model: str, method: str, error: BaseException) -> None:
        self.model = model
        self.method = method
        self.error = error
        detail = " ".join(str(error).split()) or "(no message)"
        super().__init__(f"{model} failed in {method}: {type(error).__name__}: {detail}")
