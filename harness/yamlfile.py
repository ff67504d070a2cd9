"""Reading the YAML files a user writes (dataset specs, suites).

:func:`load_yaml_file` is the one way sessionbench reads such a file. Beyond
``yaml.safe_load`` it refuses what would otherwise pass silently or end in a
traceback: a key given twice in one mapping (YAML would keep the last one), a
file that is not UTF-8, a file that cannot be read, and nesting too deep for
the parser, and an integer with a leading zero (YAML 1.1 reads ``010`` as
octal 8). Every refusal is a one-line :class:`~harness.errors.ConfigError`
naming the file and, where it applies, the line and column.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from harness.errors import ConfigError, quote

__all__ = ["finite_float", "load_yaml_file", "load_yaml_text", "numeric_string", "read_text_file"]


class _Refused(yaml.constructor.ConstructorError):
    """Valid YAML that would silently mean something else than it says."""


class _DuplicateKey(_Refused):
    """A key given twice in one mapping."""


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key repeated within one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # "<<: *base" merges a mapping whose keys may be overridden on purpose
            key = self.construct_object(key_node, deep=True)
            try:
                if key in first_line:
                    raise _DuplicateKey(
                        None,
                        None,
                        f"duplicate key {quote(key)}, first given on line {first_line[key]}; "
                        "each key may appear once",
                        key_node.start_mark,
                    )
                first_line[key] = key_node.start_mark.line + 1
            except TypeError:
                continue  # an unhashable key: SafeLoader reports it below
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        """YAML 1.1 reads ``010`` as octal (8): refuse a leading zero rather
        than turn ``seeds: [010]`` into seed 8."""
        value = super().construct_yaml_int(node)
        digits = str(node.value).replace("_", "").lstrip("+-")
        if len(digits) > 1 and digits[0] == "0" and digits[1] not in "xXbB" and ":" not in digits:
            raise _Refused(None, None, f"{quote(node.value)} is an octal number in YAML 1.1 (it means {value}); "
                           "write it without the leading zero, or quote it", node.start_mark)
        return value


_StrictLoader.add_constructor("tag:yaml.org,2002:int", _StrictLoader.construct_yaml_int)


def load_yaml_text(text: str, where: str) -> Any:
    """Parse YAML ``text`` strictly; errors name ``where`` and the line and column."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = " ".join(str(exc.problem or exc.context or "").split()) or "syntax error"
        if isinstance(exc, _Refused):
            raise ConfigError(f"{where}{at}: {problem}") from None
        raise ConfigError(f"{where}{at}: not valid YAML ({problem})") from None
    except yaml.YAMLError as exc:  # a ReaderError: a character YAML does not allow
        line, column = _line_column(text, getattr(exc, "position", None))
        at = f", line {line}, column {column}" if line else ""
        reason = getattr(exc, "reason", None) or "unreadable"
        character = getattr(exc, "character", None)
        shown = f" (U+{character:04X})" if isinstance(character, int) else ""
        raise ConfigError(f"{where}{at}: not valid YAML ({reason}{shown})") from None
    except RecursionError:
        raise ConfigError(f"{where}: not valid YAML (nested too deeply)") from None
    except ValueError as exc:  # Python refuses to convert an integer of over 4300 digits
        raise ConfigError(f"{where}: not valid YAML ({quote(str(exc))})") from None


def read_text_file(path: str | Path, what: str = "YAML file") -> str:
    """The text of ``path``, decoded as UTF-8 (a byte-order mark is dropped).

    Raises:
        ConfigError: the file cannot be read or is not UTF-8 (naming the
            line and column of the first bad byte); ``what`` names the kind
            of file.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"{path}: cannot read the {what} ({reason})") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError(
            f"{path}, line {line}, column {column}: byte 0x{raw[exc.start]:02x} is not UTF-8; "
            f"expected a UTF-8 encoded {what}"
        ) from None


def load_yaml_file(path: str | Path, what: str = "YAML file") -> Any:
    """The content of the YAML file ``path``, read as UTF-8, keys unique.

    Raises:
        ConfigError: the file is missing or unreadable, not UTF-8, not valid
            YAML or repeats a key; ``what`` names the kind of file.
    """
    return load_yaml_text(read_text_file(path, what), str(path))


def numeric_string(value: Any) -> Any:
    """The number a string such as ``"1e3"`` spells, else ``value`` unchanged.

    YAML 1.1 reads ``1e3`` and ``1e-4`` (no dot) as strings, so every key
    that takes a real number accepts them, as float hyper-parameters do.
    """
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    return value


def finite_float(value: Any) -> float | None:
    """``value`` as a finite float, else None.

    Takes a number or a numeric string (see :func:`numeric_string`); a
    boolean, any other type, NaN, an infinity and an integer beyond the range
    of a float (YAML reads ``1`` followed by 400 zeros as an exact int) give
    None, so that a caller refuses them in its own words.
    """
    value = numeric_string(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _line_column(text: str, position: int | None) -> tuple[int | None, int | None]:
    """1-based line and column of character ``position`` in ``text``."""
    if position is None:
        return None, None
    line = text.count("\n", 0, position) + 1
    return line, position - (text.rfind("\n", 0, position) + 1) + 1
