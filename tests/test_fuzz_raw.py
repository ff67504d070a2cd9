"""Fuzzing the raw-file readers and the preparation behind them.

Files are built from a grammar (headers, separators, field counts, id forms,
timestamp magnitudes and formats, encodings, blank lines, stray bytes): each
read either gives a well-formed frame or a one-line DataError, and preparing
a dataset from it either works or stops with a one-line SessionbenchError.
See tests/fuzzing.py for the profiles.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from fuzzing import WATCHED, assert_one_line_error, fuzz_settings, no_hang, tree
from hypothesis import given
from hypothesis import strategies as st

from harness.data import readers, specs
from harness.errors import DataError, SessionbenchError

SEPARATORS = [",", "\t", ";", "|", " "]
TIME_MIN, TIME_MAX = (pd.Timestamp(t, tz="UTC").timestamp() for t in readers.TIME_RANGE)

# -- field grammar ------------------------------------------------------------

integers = st.one_of(
    st.integers(-5, 50),
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, 2**53, 2**53 + 1, 2**63 - 1, 2**63, -(2**63), 10**30]),
)
ids = st.one_of(
    integers.map(str),
    st.tuples(st.sampled_from(["", " ", "  ", "\t", "0", "00"]), st.integers(0, 30)).map(lambda p: f"{p[0]}{p[1]}"),
    st.integers(0, 30).map(lambda i: f"{i} "),
    st.sampled_from(["", "x", "NA", "nan", "None", "1e3", "1.0", "-0", "+5", '"5"', "'5'", "٣", "５", "🙂", "a,b"]),
    st.text(max_size=8),
)
epoch = st.one_of(
    st.integers(1_300_000_000, 1_500_000_000),  # seconds, the usual range
    st.integers(1_300_000_000_000, 1_500_000_000_000),  # milliseconds
    st.integers(10**15, 10**19),  # micro- and nanoseconds
    st.integers(-(10**13), 10**13),
    st.floats(allow_nan=True, allow_infinity=True),
)
iso = st.one_of(
    st.datetimes(timezones=st.none() | st.just(__import__("datetime").timezone.utc)).map(lambda d: d.isoformat()),
    st.sampled_from(["2014-04-07T10:51:09.277Z", "9999-12-31", "0001-01-01T00:00:00", "2014-13-45", "2014-04-07 25:00",
                     "yesterday", "", "1e15", "2262-04-12T00:00:00Z", "1677-09-21"]),
)
times = st.one_of(epoch.map(str), iso, st.text(max_size=6))
fields = st.one_of(ids, times)


@st.composite
def table_bytes(draw, columns=("session", "item", "time")) -> bytes:
    """A delimited text file: a header (maybe wrong), rows (maybe ragged), odd encodings."""
    sep = draw(st.sampled_from(SEPARATORS))
    header = list(draw(st.permutations(columns)))
    if draw(st.booleans()):
        header = draw(st.lists(st.sampled_from([*columns, "extra", "Session", " session", ""]), min_size=1,
                               max_size=5))
    lines = [sep.join(header)] if draw(st.integers(0, 9)) else []
    for _ in range(draw(st.integers(0, 25))):
        kind = draw(st.integers(0, 19))
        if kind == 0:
            lines.append("")  # a blank line
            continue
        width = len(header) + (draw(st.integers(-2, 2)) if kind == 1 else 0)
        row = []
        for position in range(max(width, 0)):
            name = header[position] if position < len(header) else ""
            strategy = times if "time" in name else ids if name in ("session", "item") else fields
            row.append(draw(strategy))
        lines.append(sep.join(row))
    ending = draw(st.sampled_from(["\n", "\r\n"]))
    text = ending.join(lines) + (ending if draw(st.booleans()) else "")
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8", "utf-8-sig", "latin-1", "utf-16"]))
    data = text.encode(encoding, errors="replace")
    if data and draw(st.integers(0, 4)) == 0:  # a stray byte somewhere
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.sampled_from([b"\xff", b"\xe9", b"\x00", b"\xc3", b'"'])) + data[at:]
    return data


layouts = st.fixed_dictionaries({
    "sep": st.sampled_from([*SEPARATORS[:4], '"', "\n", "ab"]),
    "time_format": st.sampled_from([*readers.TIME_FORMATS, "%Y-%m-%d", "%Y-%m-%d %H:%M:%S", "%s", "%%", "%Y%", "x"]),
})


def check_frame(frame: pd.DataFrame) -> None:
    """What every reader promises: the three columns, string items, finite times in range."""
    assert list(frame.columns[:3]) == ["session", "item", "time"]
    assert len(frame) > 0
    assert frame["session"].dtype == np.int64 or all(isinstance(s, str) for s in frame["session"])
    assert all(isinstance(i, str) and i == i.strip() for i in frame["item"])
    time = frame["time"].to_numpy(dtype=np.float64)
    assert np.isfinite(time).all() and (time >= TIME_MIN).all() and (time <= TIME_MAX).all()


def read_or_error(reader, *args) -> pd.DataFrame | None:
    with no_hang():
        try:
            frame = reader(*args)
        except DataError as err:
            assert_one_line_error(str(err))
            return None
    check_frame(frame)
    return frame


@fuzz_settings(60)
@given(data=table_bytes(), layout=layouts)
def test_fuzz_read_table(data, layout):
    try:
        layout = readers.TableLayout(**layout)
    except ValueError as err:  # a spec's ConfigError names the key: "time_format: ..."
        assert_one_line_error(str(err))
        assert str(err).startswith(("sep: ", "time_format: "))
        return
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "events.csv"
        path.write_bytes(data)
        read_or_error(readers.read_table, path, layout)


@fuzz_settings(40)
@given(data=table_bytes(columns=("session_id", "user_id", "item_id", "timeframe", "eventdate")))
def test_fuzz_read_diginetica(data):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "train-item-views.csv"
        path.write_bytes(data.replace(b",", b";") if data[:1] == b"s" else data)
        read_or_error(readers.read_diginetica, path)


@fuzz_settings(40)
@given(data=table_bytes(columns=("session", "timestamp", "item", "category")), chunk=st.sampled_from([1, 3, 1000]))
def test_fuzz_read_yoochoose(data, chunk):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "yoochoose-clicks.dat"
        path.write_bytes(data)
        read_or_error(lambda p: readers.read_yoochoose(p, chunksize=chunk), path)


COMPRESSORS = {".gz": "gzip", ".bz2": "bz2", ".xz": "lzma"}


@fuzz_settings(40)
@given(data=table_bytes(columns=("session", "timestamp", "item", "category")),
       suffix=st.sampled_from([*COMPRESSORS, ".zip", ".dat"]), packed_as=st.sampled_from([*COMPRESSORS, ".zip"]),
       cut=st.floats(0, 1), reader=st.sampled_from(["yoochoose", "table"]))
def test_fuzz_compressed_files(data, suffix, packed_as, cut, reader):
    """Compressed bytes, cut anywhere, under the right suffix or another one:
    a frame or a one-line DataError, never a decompressor's traceback."""
    import importlib
    import io
    import zipfile

    if packed_as == ".zip":
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("events", data)
        packed = buffer.getvalue()
    else:
        packed = importlib.import_module(COMPRESSORS[packed_as]).compress(data)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"events{suffix}"
        path.write_bytes(packed[: max(1, int(len(packed) * cut))])
        read = readers.read_yoochoose if reader == "yoochoose" else readers.read_table
        read_or_error(read, path)


@st.composite
def parquet_frames(draw) -> pd.DataFrame:
    n = draw(st.integers(0, 12))
    kind = draw(st.sampled_from(["int", "float", "datetime", "datetime-tz", "string", "bool"]))
    if kind == "int":
        time = draw(st.lists(epoch.filter(lambda v: isinstance(v, int) and abs(v) < 2**63), min_size=n, max_size=n))
    elif kind == "float":
        time = draw(st.lists(st.floats(), min_size=n, max_size=n))
    elif kind.startswith("datetime"):
        time = pd.to_datetime(draw(st.lists(st.integers(-(2**62), 2**62), min_size=n, max_size=n)), unit="ns",
                              utc=kind.endswith("tz"))
    elif kind == "string":
        time = draw(st.lists(times, min_size=n, max_size=n))
    else:
        time = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    sessions = draw(st.lists(st.one_of(st.integers(-(2**63), 2**63 - 1), st.integers(0, 5)), min_size=n, max_size=n))
    if draw(st.booleans()):
        sessions = [str(s) for s in sessions]
    items = draw(st.lists(ids, min_size=n, max_size=n))
    return pd.DataFrame({"session": sessions, "item": items, "time": time})


@fuzz_settings(30)
@given(frame=parquet_frames(), time_format=st.sampled_from([*readers.TIME_FORMATS, "%Y-%m-%d"]))
def test_fuzz_read_parquet(frame, time_format):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "events.parquet"
        frame.to_parquet(path)
        read_or_error(readers.read_table, path, readers.TableLayout(time_format=time_format))


@fuzz_settings(25)
@given(
    data=table_bytes(columns=("SessionId", "ItemId", "Time")),
    support=st.integers(1, 3),
    days=st.sampled_from(["1", "0.01", "1e-9", "1e308", "100000000000"]),
    iterations=st.sampled_from([1, 2, 100000000]),
)
def test_fuzz_prepare_from_raw(data, support, days, iterations):
    """The whole preparation: a dataset comes out or a one-line error, and only the cache is written."""
    before = tree(*WATCHED)
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        (base / "clicks.tsv").write_bytes(data)
        spec = base / "spec.yaml"
        spec.write_text(
            "name: fuzz\ndescription: d\nsource: s\nformat: session-rec\nfiles: {events: clicks.tsv}\n"
            f"preprocess: {{method: standard, min_item_support: {support}, test_days: {days}, valid_days: {days}, "
            f"filter_iterations: {iterations}}}\n"
        )
        with no_hang(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # empty validation splits are warnings, expected on random data
            try:
                dataset = specs.load_dataset(spec, cache_dir=base / "cache")
            except SessionbenchError as err:
                assert_one_line_error(str(err))
                dataset = None
        if dataset is not None:
            assert dataset.n_items >= 1 and dataset.train.n_sessions >= 1 and dataset.test.n_sessions >= 1
        outside = {p for p in base.rglob("*") if p.is_file()} - {base / "clicks.tsv", spec}
        assert all(base / "cache" in p.parents for p in outside), outside
    assert tree(*WATCHED) == before

