"""Readers for raw click logs.

Every reader returns a pandas DataFrame in file order with at least

``session``
    the raw session id: int64 when every id is a plain integer, else ``str``;
``item``
    the raw item id as a string (``str`` dtype);
``time``
    float64 epoch seconds, UTC.

Some readers add the columns that a preprocessing rule needs
(:func:`read_diginetica` keeps ``timeframe`` and ``eventdate``).

Errors are :class:`~harness.errors.DataError` and name the file, the line
(1-based as an editor shows it, header included) and the column where they
apply. Blank lines are skipped but still counted, so line numbers stay those
of the file.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import re
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from harness.errors import DataError, quote

__all__ = [
    "TIME_FORMATS",
    "TableLayout",
    "SESSION_REC_LAYOUT",
    "read_diginetica",
    "read_yoochoose",
    "read_session_rec",
    "read_table",
]

#: Named time formats of :class:`TableLayout`; anything else containing ``%``
#: is a ``strftime`` format.
TIME_FORMATS = ("epoch_s", "epoch_ms", "iso")

#: DIGINETICA header spellings: the SR-GNN sample uses snake_case, the CIKM Cup
#: 2016 file camelCase.
_DIGINETICA_HEADERS = {
    "session_id": "session",
    "sessionId": "session",
    "item_id": "item",
    "itemId": "item",
    "timeframe": "timeframe",
    "eventdate": "eventdate",
}
_DIGINETICA_EXPECTED = "session_id;user_id;item_id;timeframe;eventdate (or sessionId;userId;itemId;timeframe;eventdate)"
_YOOCHOOSE_EXPECTED = "session,timestamp,item,category rows (RecSys Challenge 2015 yoochoose-clicks.dat)"
_INTEGER = re.compile(r"-?(0|[1-9][0-9]*)")

#: Times must lie in the calendar range of pandas' timestamps (whole days
#: inside 1677-09-21 .. 2262-04-11), so that every date computed from them
#: exists; a value outside is almost always a unit mix-up.
TIME_RANGE = ("1677-09-22", "2262-04-11")
_TIME_MIN = pd.Timestamp(TIME_RANGE[0], tz="UTC").timestamp()
_TIME_MAX = pd.Timestamp(TIME_RANGE[1], tz="UTC").timestamp()
#: Integers beyond 2**53 are not exact as float64, so they are refused.
_EXACT_INTEGER = 2.0**53


_NOT_SEPARATORS = ('"', "\n", "\r", "\0")


@dataclass(frozen=True)
class TableLayout:
    """How to read a generic event table (CSV, TSV or Parquet).

    Attributes:
        sep: field separator of a text file (ignored for Parquet).
        session, item, time: the column names holding each field.
        time_format: ``epoch_s``, ``epoch_ms``, ``iso`` (ISO-8601; a time
            without zone is taken as UTC) or a ``strftime`` format such as
            ``%Y-%m-%d %H:%M:%S``.
    """

    sep: str = ","
    session: str = "session"
    item: str = "item"
    time: str = "time"
    time_format: str = "epoch_s"

    def __post_init__(self) -> None:
        if self.time_format not in TIME_FORMATS and "%" not in self.time_format:
            raise ValueError(
                f"time_format: expected one of {', '.join(TIME_FORMATS)} or a strftime format "
                f"containing '%', got {quote(self.time_format)}"
            )
        if len(self.sep) != 1 or self.sep in _NOT_SEPARATORS:
            raise ValueError(
                f"sep: expected a single character other than a quote, a line break or NUL, got {quote(self.sep)}"
            )
        columns = (self.session, self.item, self.time)
        if len(set(columns)) < 3:
            raise ValueError(f"session: the session, item and time columns must differ, got {quote(list(columns))}")
        if self.time_format not in TIME_FORMATS:
            try:  # a bad directive ("%Q", a stray "%") fails on any input
                pd.to_datetime(pd.Series(["2000-01-01"]), format=self.time_format, errors="coerce")
            except ValueError as exc:
                raise ValueError(f"time_format: not a valid strftime format ({quote(str(exc))})") from None


#: The session-rec framework's pre-split files: ``SessionId<TAB>ItemId<TAB>Time``.
SESSION_REC_LAYOUT = TableLayout(sep="\t", session="SessionId", item="ItemId", time="Time", time_format="epoch_s")


# --------------------------------------------------------------------------- #
# public readers
# --------------------------------------------------------------------------- #


def read_diginetica(path: str | Path) -> pd.DataFrame:
    """Read DIGINETICA ``train-item-views.csv`` (CIKM Cup 2016).

    The file is ``;``-separated with the header
    ``session_id;user_id;item_id;timeframe;eventdate`` or its camelCase
    spelling. Returns ``session``, ``item``, ``time`` plus ``timeframe``
    (int64 milliseconds, orders the clicks of a session) and ``eventdate``
    (float64 epoch seconds of that day's UTC midnight). ``time`` is
    ``eventdate + timeframe / 1000``.
    """
    path = Path(path)
    frame = _read_text(path, sep=";", header=True, expected=_DIGINETICA_EXPECTED)
    _check_header_unique(frame, path, ";", list(_DIGINETICA_HEADERS), _DIGINETICA_EXPECTED)
    frame = _rename_diginetica(frame, path)
    _require_values(frame, path, header=True, columns=("session", "item", "timeframe", "eventdate"))
    timeframe = _parse_integer(frame["timeframe"], path, "timeframe", header=True, expected="an integer timeframe (ms)")
    eventdate = _parse_datetime(
        frame["eventdate"], path, "eventdate", header=True, fmt="%Y-%m-%d", expected="a date YYYY-MM-DD"
    )
    time = eventdate + timeframe / 1000.0
    _check_time_range(time, frame["timeframe"], path, "timeframe", True, "timeframe (ms) after eventdate")
    return pd.DataFrame(
        {
            "session": _session_ids(frame["session"]),
            "item": _item_ids(frame["item"]),
            "time": time,
            "timeframe": timeframe,
            "eventdate": eventdate,
        }
    )


def read_yoochoose(path: str | Path, *, chunksize: int = 2_000_000) -> pd.DataFrame:
    """Read YOOCHOOSE ``yoochoose-clicks.dat`` (RecSys Challenge 2015).

    ``,``-separated ``session,timestamp,item,category`` with ISO-8601
    timestamps such as ``2014-04-07T10:51:09.277Z``. The original file has no
    header; a header line (which the SR-GNN script needs, so many copies have
    one) is recognised and skipped. The category column is not read. The full
    file has 33M rows, so it is read in chunks with the C parser and parsed
    vectorised; strings stay in pandas' compact ``str`` dtype. Returns
    ``session`` (int64), ``item`` (str), ``time``.
    """
    path = Path(path)
    header = _yoochoose_header(path)
    try:  # fast path: the C parser converts session ids itself
        chunks = _read_text_chunks(path, chunksize, skip_header=header, session_dtype=np.int64)
        parts = [_yoochoose_chunk(chunk, path, header) for chunk in chunks]
    except _ConversionFailed:  # read again as text to say where and why
        chunks = _read_text_chunks(path, chunksize, skip_header=header, session_dtype=str)
        parts = [_yoochoose_chunk(chunk, path, header) for chunk in chunks]
    frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    if frame.empty:
        raise DataError(f"no click rows; expected {_YOOCHOOSE_EXPECTED}", path=path)
    return frame


def read_session_rec(path: str | Path) -> pd.DataFrame:
    """Read a session-rec framework file: tab-separated ``SessionId ItemId Time``
    with ``Time`` in epoch seconds."""
    return read_table(path, SESSION_REC_LAYOUT)


def read_table(path: str | Path, layout: TableLayout = TableLayout()) -> pd.DataFrame:
    """Read a generic event table: CSV/TSV with a header, or Parquet
    (``.parquet``/``.pq``), with the columns and time format of ``layout``."""
    path = Path(path)
    names = {layout.session: "session", layout.item: "item", layout.time: "time"}
    if path.suffix.lower() in (".parquet", ".pq"):
        frame, header = _read_parquet(path, list(names)), None
    else:
        sep_name = "TAB" if layout.sep == "\t" else repr(layout.sep)
        expected = f"{sep_name}-separated columns with a header naming {', '.join(map(repr, names))}"
        frame, header = _read_text(path, sep=layout.sep, header=True, expected=expected), True
        _check_header_unique(frame, path, layout.sep, list(names), expected)
        missing = [c for c in names if c not in frame.columns]
        if missing:
            raise DataError(
                f"missing column(s) {missing}; expected {expected}; found {quote(list(frame.columns))}"
                + (_case_hint(missing, frame.columns) or _separator_hint(frame.columns, layout.sep)),
                path=path,
                line=1,
            )
        frame = frame.loc[:, list(names)].astype(str)
    frame = frame.rename(columns=names)
    _require_values(frame, path, header=header, columns=("session", "item", "time"),
                    shown={role: column for column, role in names.items()})
    return pd.DataFrame(
        {
            "session": _session_ids(frame["session"]),
            "item": _item_ids(frame["item"]),
            "time": _parse_time(frame["time"], path, layout.time, header, layout.time_format),
        }
    )


# --------------------------------------------------------------------------- #
# text input
# --------------------------------------------------------------------------- #

_READ_OPTIONS = dict(dtype=str, keep_default_na=False, skip_blank_lines=False, engine="c")


def _read_text(path: Path, *, sep: str, header: bool, expected: str) -> pd.DataFrame:
    """All fields as strings, blank lines dropped; index ``i`` is file line
    ``i + 2`` (header) or ``i + 1`` (no header)."""
    _check_file(path, expected)
    try:
        frame = pd.read_csv(path, sep=sep, header=0 if header else None, **_READ_OPTIONS)
    except UnicodeDecodeError:
        raise _encoding_error(path, sep, expected) from None
    except _DECOMPRESSION_ERRORS as exc:
        raise _damaged_archive(exc, path) from None
    except OSError as exc:
        raise _unreadable(exc, path) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise _parser_error(exc, path, expected) from None
    if header and not isinstance(frame.index, pd.RangeIndex):
        # pandas takes the extra leading fields of a first row longer than the header as an index
        raise DataError(
            f"{len(frame.columns) + frame.index.nlevels} fields, but the header names {len(frame.columns)}; "
            f"expected {expected}",
            path=path,
            line=_first_data_line(path),
        )
    frame = _drop_blank_lines(frame)
    if frame.empty:
        raise DataError(f"no data rows after the header; expected {expected}", path=path, line=1)
    return frame


def _check_header_unique(frame: pd.DataFrame, path: Path, sep: str, columns: list[str], expected: str) -> None:
    """Refuse a header that names a column that is read twice.

    pandas renames the second ``session`` to ``session.1`` and reads the
    first, silently; the header line is read again only when a name of that
    form appears.
    """
    mangled = {c for c in columns if any(re.fullmatch(re.escape(c) + r"\.\d+", str(name)) for name in frame.columns)}
    if not mangled:
        return
    fields = pd.read_csv(path, sep=sep, header=None, nrows=1, **_READ_OPTIONS).iloc[0].tolist()
    for column in columns:
        places = [i + 1 for i, name in enumerate(fields) if name == column]
        if len(places) > 1:
            raise DataError(f"the header names column {column!r} {len(places)} times (fields "
                            f"{', '.join(map(str, places))}); expected each once, with {expected}", path=path, line=1)


def _first_data_line(path: Path) -> int | None:
    """The line number of the first non-blank line after the header."""
    try:
        with _open_bytes(path) as handle:
            for number, raw in enumerate(handle, start=1):
                if number > 1 and raw.strip():
                    return number
    except (OSError, *_DECOMPRESSION_ERRORS):  # only used to place another error: leave the line out
        pass
    return None


class _ConversionFailed(Exception):
    """The C parser could not convert a field to the requested dtype."""


def _read_text_chunks(path: Path, chunksize: int, *, skip_header: bool, session_dtype: type) -> Iterator[pd.DataFrame]:
    """YOOCHOOSE rows in chunks: session as ``session_dtype``, timestamp and
    item as strings; index ``i`` is file line ``i + 1`` (``i + 2`` after a
    skipped header). With a numeric ``session_dtype`` a field it cannot
    convert (or a blank line) raises :class:`_ConversionFailed`. The
    category is read (and dropped) so that the C parser refuses a row with
    more than four fields, wherever it is, at no cost per row in Python."""
    dtypes = {"session": session_dtype, "timestamp": str, "item": str, "category": str}
    try:
        reader = pd.read_csv(
            path,
            sep=",",
            header=None,
            names=list(dtypes),
            skiprows=1 if skip_header else 0,
            chunksize=chunksize,
            **{**_READ_OPTIONS, "dtype": dtypes},
        )
        with reader:
            for chunk in reader:
                yield _drop_blank_lines(chunk.drop(columns="category"))
    except UnicodeDecodeError:
        raise _encoding_error(path, ",", _YOOCHOOSE_EXPECTED) from None
    except _DECOMPRESSION_ERRORS as exc:
        raise _damaged_archive(exc, path) from None
    except OSError as exc:
        raise _unreadable(exc, path) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise _parser_error(exc, path, _YOOCHOOSE_EXPECTED) from None
    except (ValueError, OverflowError) as exc:
        if session_dtype is not str:
            raise _ConversionFailed from exc
        raise _parser_error(exc, path, _YOOCHOOSE_EXPECTED) from None


def _check_file(path: Path, expected: str) -> None:
    """The file exists, is not empty, and is text or compressed as its name says.

    pandas decompresses a file by its suffix (``.gz``, ``.bz2``, ``.xz``,
    ``.zip``); a compressed file under another name, a 7z archive or a
    Parquet file would otherwise be read as garbled text, so its first bytes
    are checked here (eight bytes: nothing per row).
    """
    if not path.is_file():
        raise DataError(f"file not found; expected {expected}", path=path)
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(8)
    except OSError as exc:
        raise _unreadable(exc, path) from None
    if size == 0:
        raise DataError(f"file is empty (0 bytes); expected {expected}", path=path)
    kind = next((k for k, magic in _MAGIC.items() if re.match(magic, head)), None)
    suffix = path.suffix.lower()
    if kind is not None and _SUFFIX.get(kind) != suffix:
        if kind in _SUFFIX:
            fix = f"unpack it or give it the suffix {_SUFFIX[kind]}"
        elif kind == "Parquet":
            fix = "read it with format table and a .parquet name, or export it as text"
        else:
            fix = "unpack it first"
        raise DataError(f"this is a {kind} file (by its first bytes), not text: {fix}; expected {expected}", path=path)
    if kind is None and suffix in _SUFFIX.values():
        kind_of_suffix = next(k for k, v in _SUFFIX.items() if v == suffix)
        raise DataError(f"the name ends in {suffix} but the file is not {kind_of_suffix}-compressed (by its first "
                        f"bytes); rename it; expected {expected}", path=path)
    if kind == "zip":
        try:
            with zipfile.ZipFile(path) as archive:
                members = [m for m in archive.namelist() if not m.endswith("/")]
        except (OSError, *_DECOMPRESSION_ERRORS) as exc:
            raise _damaged_archive(exc, path) from None
        if len(members) != 1:
            raise DataError(f"the zip archive holds {len(members)} files {quote(members)}; expected exactly one, "
                            f"with {expected}", path=path)


#: first bytes of the binary formats a raw file is sometimes mistaken for
#: (byte patterns; bzip2's includes its block magic, so that a text starting "BZh" stays text)
_MAGIC = {"gzip": rb"\x1f\x8b", "bzip2": rb"BZh[1-9]1AY&", "xz": rb"\xfd7zXZ\x00", "zip": rb"PK\x03\x04",
          "7z": rb"7z\xbc\xaf\x27\x1c", "Parquet": rb"PAR1"}
#: the suffix by which pandas decompresses each format it can read
_SUFFIX = {"gzip": ".gz", "bzip2": ".bz2", "xz": ".xz", "zip": ".zip"}
#: what a truncated or corrupt compressed file raises while it is read
_DECOMPRESSION_ERRORS = (EOFError, zlib.error, lzma.LZMAError, zipfile.BadZipFile, gzip.BadGzipFile)


def _open_bytes(path: Path):  # noqa: ANN202 - a binary file object
    """The file's bytes as pandas reads them: decompressed by the suffix."""
    opener = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}.get(path.suffix.lower())
    if opener is not None:
        return opener(path, "rb")
    if path.suffix.lower() == ".zip":
        archive = zipfile.ZipFile(path)  # one member: _check_file made sure
        return archive.open(next(m for m in archive.namelist() if not m.endswith("/")))
    return path.open("rb")


def _damaged_archive(exc: BaseException, path: Path) -> DataError:
    """A compressed file that ends early or is corrupt."""
    detail = " ".join(str(exc).split()) or type(exc).__name__
    return DataError(f"cannot decompress: the file is truncated or corrupt ({quote(detail)}); "
                     "download or compress it again", path=path)


def _unreadable(exc: OSError, path: Path) -> DataError:
    """A file that exists but cannot be read (permissions, I/O error)."""
    if exc.errno is None and path.suffix.lower() in _SUFFIX.values():  # bz2: OSError("Invalid data stream")
        return _damaged_archive(exc, path)
    return DataError(f"cannot read the file ({exc.strerror or type(exc).__name__})", path=path)


def _encoding_error(path: Path, sep: str, expected: str) -> DataError:
    """Name the line, character and field of the first byte that is not UTF-8.

    pandas reports a byte position inside its read buffer, which is not a
    place in the file, so the file is scanned again (only on this error path).
    """
    try:
        with _open_bytes(path) as handle:
            for number, raw in enumerate(handle, start=1):
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    before = raw[: exc.start].decode("utf-8", errors="replace")
                    field = before.count(sep) + 1
                    return DataError(
                        f"character {len(before) + 1} (field {field}): byte 0x{raw[exc.start]:02x} is not UTF-8; "
                        f"expected UTF-8 text with {expected}",
                        path=path,
                        line=number,
                    )
    except _DECOMPRESSION_ERRORS as exc:
        return _damaged_archive(exc, path)
    except OSError as exc:
        return _unreadable(exc, path)
    # a sequence cut by the end of the file, which no single line shows
    return DataError(f"the file ends inside a UTF-8 character; expected UTF-8 text with {expected}", path=path)


def _parser_error(exc: Exception, path: Path, expected: str) -> DataError:
    """Turn a pandas parser failure into a one-line DataError with its line."""
    text = " ".join(str(exc).split())
    found = re.search(r"line (\d+)", text)
    line = int(found.group(1)) if found else None
    row = re.search(r"inside string starting at row (\d+)", text)  # an unclosed quote; rows count from 0
    if line is None and row is not None:
        line = int(row.group(1)) + 1
    detail = re.sub(r"^Error tokenizing data\. C error: ", "", text)
    return DataError(f"cannot parse ({detail}); expected {expected}", path=path, line=line)


def _drop_blank_lines(frame: pd.DataFrame) -> pd.DataFrame:
    # keep_default_na=False turns a blank line into a row of empty strings;
    # the index (and so the line number) of every other row is kept
    blank = (frame == "").all(axis=1)
    return frame[~blank] if blank.any() else frame


def _line_of(index_label: int, header: bool | None) -> int | None:
    """File line of a row index (None for Parquet, which has no lines)."""
    if header is None:
        return None
    return int(index_label) + (2 if header else 1)


def _fail_at(
    frame_index: pd.Index,
    bad: np.ndarray,
    values: pd.Series,
    path: Path,
    column: str,
    header: bool | None,
    expected: str,
) -> None:
    """Raise a DataError for the first True in ``bad`` (if any)."""
    if not bad.any():
        return
    pos = int(np.argmax(bad))
    label = frame_index[pos]
    where = "" if header is not None else f" (row {int(label) + 1})"
    raise DataError(
        f"expected {expected}, found {quote(values.iloc[pos])}{where}",
        path=path,
        line=_line_of(label, header),
        column=column,
    )


def _require_values(frame: pd.DataFrame, path: Path, *, header: bool | None, columns: tuple[str, ...],
                    shown: dict[str, str] | None = None) -> None:
    """Every required field must be non-empty (short rows read as ''); an
    error names a column as ``shown`` maps it (the file's own header name)."""
    for col in columns:
        values = frame[col]
        if pd.api.types.is_numeric_dtype(values.dtype):
            bad = values.isna().to_numpy()
        else:
            bad = (values.isna() | (values.astype(str).str.strip() == "")).to_numpy()
        _fail_at(frame.index, bad, values, path, (shown or {}).get(col, col), header,
                 "a value (the field is empty or the row is short)")


# --------------------------------------------------------------------------- #
# field parsing
# --------------------------------------------------------------------------- #


def _parse_integer(values: pd.Series, path: Path, column: str, *, header: bool | None, expected: str) -> np.ndarray:
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(numbers) | (numbers != np.floor(numbers)) | (np.abs(numbers) > _EXACT_INTEGER)
    _fail_at(values.index, bad, values, path, column, header, expected)
    return numbers.astype(np.int64)


def _parse_number(values: pd.Series, path: Path, column: str, *, header: bool | None, expected: str) -> np.ndarray:
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    _fail_at(values.index, ~np.isfinite(numbers), values, path, column, header, expected)
    return numbers


def _parse_datetime(
    values: pd.Series, path: Path, column: str, *, header: bool | None, fmt: str, expected: str
) -> np.ndarray:
    """Parse times vectorised; a time without zone is UTC. Returns epoch seconds."""
    stamps = pd.to_datetime(values, format=fmt, utc=True, errors="coerce")
    _fail_at(values.index, stamps.isna().to_numpy(), values, path, column, header, expected)
    return stamps.dt.as_unit("us").astype("int64").to_numpy() / 1e6


def _parse_time(values: pd.Series, path: Path, column: str, header: bool | None, time_format: str) -> np.ndarray:
    """Epoch seconds of a time column in ``time_format``, each inside :data:`TIME_RANGE`.

    A Parquet timestamp column is read as the times it holds, whatever
    ``time_format`` says (a timestamp carries its own unit); one without a
    zone is UTC.
    """
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        stamps = values.dt.tz_localize("UTC") if values.dt.tz is None else values.dt.tz_convert("UTC")
        _fail_at(values.index, stamps.isna().to_numpy(), values, path, column, header, "a timestamp")
        seconds = stamps.dt.as_unit("us").astype("int64").to_numpy() / 1e6
        _check_time_range(seconds, values, path, column, header, "timestamp")
        return seconds
    if time_format in ("epoch_s", "epoch_ms"):
        if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
            numbers = values.to_numpy(dtype=np.float64)  # Parquet numbers need no text parsing
            _fail_at(values.index, ~np.isfinite(numbers), values, path, column, header, f"a number ({time_format})")
        else:
            numbers = _parse_number(values, path, column, header=header, expected=f"a number ({time_format})")
        seconds = numbers / 1000.0 if time_format == "epoch_ms" else numbers
        _check_time_range(seconds, values, path, column, header, time_format)
        return seconds
    fmt = "ISO8601" if time_format == "iso" else time_format
    if pd.api.types.is_numeric_dtype(values.dtype):  # Parquet numbers: parsed as text, like a CSV's
        values = values.astype(str)
    return _parse_datetime(values, path, column, header=header, fmt=fmt, expected=f"a time in format {quote(time_format)}")


def _check_time_range(
    seconds: np.ndarray, values: pd.Series, path: Path, column: str, header: bool | None, unit: str
) -> None:
    """Refuse epoch seconds outside :data:`TIME_RANGE`, with a hint at the likely unit."""
    outside = (seconds < _TIME_MIN) | (seconds > _TIME_MAX)
    if not outside.any():
        return
    pos = int(np.argmax(outside))
    magnitude = abs(float(seconds[pos]))
    hint = ""
    if unit == "epoch_s" and magnitude < _TIME_MAX * 1e3:
        hint = "; it looks like milliseconds since 1970: set time_format: epoch_ms"
    elif unit in ("epoch_s", "epoch_ms"):
        hint = "; it looks like micro- or nanoseconds since 1970: convert the column to seconds or milliseconds"
    label = values.index[pos]
    where = "" if header is not None else f" (row {int(label) + 1})"
    raise DataError(
        f"expected a time between {TIME_RANGE[0]} and {TIME_RANGE[1]} ({unit}), found {quote(values.iloc[pos])}"
        f"{where}{hint}",
        path=path,
        line=_line_of(label, header),
        column=column,
    )


def _item_ids(values: pd.Series) -> pd.api.extensions.ExtensionArray:
    """Item ids as strings without surrounding whitespace (" 5" and "5" are one item)."""
    return values.astype(str).str.strip().array


def _session_ids(values: pd.Series) -> np.ndarray | pd.api.extensions.ExtensionArray:
    """int64 when every id is a plain integer (no leading zeros, so the
    conversion merges no two ids), else the strings themselves.

    Returns an array, not a Series: the caller's rows may have index gaps
    (blank lines), and a Series would be aligned on them.
    """
    if pd.api.types.is_integer_dtype(values.dtype):
        return values.to_numpy(dtype=np.int64)
    text = values.astype(str).str.strip()  # " 5" and "5" are one session
    if text.str.fullmatch(_INTEGER.pattern).all():
        numbers = pd.to_numeric(text, errors="coerce")
        if numbers.notna().all() and pd.api.types.is_integer_dtype(numbers.dtype):
            return numbers.to_numpy(dtype=np.int64)
    return text.array


# --------------------------------------------------------------------------- #
# format specifics
# --------------------------------------------------------------------------- #


def _rename_diginetica(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    present = {col: _DIGINETICA_HEADERS[col] for col in frame.columns if col in _DIGINETICA_HEADERS}
    fields = list(present.values())
    both = [col for col in present if fields.count(present[col]) > 1]
    if both:  # "session_id" and "sessionId": which one is meant?
        raise DataError(
            f"the header names the {present[both[0]]} column twice, as {' and '.join(map(repr, both[:2]))}; "
            f"expected one spelling: {_DIGINETICA_EXPECTED}",
            path=path,
            line=1,
        )
    if len(set(present.values())) < len(set(_DIGINETICA_HEADERS.values())):
        missing = [
            "/".join(spellings)
            for field in dict.fromkeys(_DIGINETICA_HEADERS.values())
            if field not in present.values()
            for spellings in [[h for h, f in _DIGINETICA_HEADERS.items() if f == field]]
        ]
        raise DataError(
            f"missing column(s) {missing}; expected the header {_DIGINETICA_EXPECTED}; "
            f"found {quote(';'.join(map(str, frame.columns)))}" + _separator_hint(frame.columns, ";"),
            path=path,
            line=1,
        )
    return frame.loc[:, list(present)].rename(columns=present)


def _separator_hint(columns: pd.Index, sep: str) -> str:
    """Say which separator the header seems to use when it is not ``sep``."""
    header = "".join(map(str, columns))
    for candidate, name in ((",", "','"), (";", "';'"), ("\t", "TAB"), ("|", "'|'"), (" ", "space")):
        if candidate != sep and candidate in header:
            expected = "TAB" if sep == "\t" else repr(sep)
            return f" (the file looks {name}-separated, expected {expected})"
    return ""


def _case_hint(missing: list[str], columns: pd.Index) -> str:
    """Name a found column that differs from a missing one only in case."""
    found = {str(c).strip().lower(): str(c) for c in columns}
    pairs = [f"{found[m.lower()]!r} for {m!r}" for m in missing if m.lower() in found]
    return f" (column names are case-sensitive: found {', '.join(pairs)})" if pairs else ""


def _yoochoose_header(path: Path) -> bool:
    """Check the first line: three or four ``,``-separated fields (the
    category may be missing), and whether it is a header (its first field is
    not a session number)."""
    _check_file(path, _YOOCHOOSE_EXPECTED)
    try:
        with _open_bytes(path) as handle:
            first = handle.readline().decode("utf-8", errors="replace").strip()
    except _DECOMPRESSION_ERRORS as exc:
        raise _damaged_archive(exc, path) from None
    except OSError as exc:
        raise _unreadable(exc, path) from None
    fields = first.split(",")
    if len(fields) < 3:
        raise DataError(
            f"found {len(fields)} ','-separated field(s) in {quote(first)}; expected {_YOOCHOOSE_EXPECTED}"
            + _separator_hint(pd.Index([first]), ","),
            path=path,
            line=1,
        )
    if len(fields) > 4:  # yoochoose-buys.dat: session,timestamp,item,price,quantity would read as clicks
        raise DataError(
            f"found {len(fields)} ','-separated fields in {quote(first)}; expected {_YOOCHOOSE_EXPECTED}"
            + (" (5 fields are the layout of yoochoose-buys.dat, which is not a click log)" if len(fields) == 5 else ""),
            path=path,
            line=1,
        )
    return _INTEGER.fullmatch(fields[0].strip()) is None and "session" in fields[0].lower()


def _yoochoose_chunk(chunk: pd.DataFrame, path: Path, header: bool) -> pd.DataFrame:
    """Validate and convert one chunk of raw YOOCHOOSE rows."""
    _require_values(chunk, path, header=header, columns=("session", "timestamp", "item"))
    session = chunk["session"].to_numpy()
    if session.dtype != np.int64:
        session = _parse_integer(chunk["session"], path, "session", header=header, expected="an integer session id")
    time = _parse_datetime(
        chunk["timestamp"],
        path,
        "timestamp",
        header=header,
        fmt="ISO8601",
        expected="an ISO-8601 timestamp like 2014-04-07T10:51:09.277Z",
    )
    return pd.DataFrame({"session": session, "item": _item_ids(chunk["item"]), "time": time})


def _read_parquet(path: Path, columns: list[str]) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"file not found; expected a Parquet file with columns {columns}", path=path)
    try:
        import pyarrow.parquet as pq

        schema = pq.read_schema(path)
        missing = [c for c in columns if c not in schema.names]
        if missing:
            raise DataError(f"missing column(s) {missing}; found {quote(schema.names)}", path=path)
        frame = pd.read_parquet(path, columns=columns)
    except DataError:
        raise
    except Exception as exc:  # pyarrow raises several types for a corrupt file
        raise DataError(f"cannot read as Parquet ({quote(' '.join(str(exc).split()))})", path=path) from None
    if frame.empty:
        raise DataError(f"no rows; expected events with columns {columns}", path=path)
    return frame
