"""Raw readers: formats, header spellings, dtypes and times."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest
from data_paths import DIGINETICA_RAW_SAMPLE, DIGINETICA_SAMPLE, YOOCHOOSE_100K, YOOCHOOSE_RAW_SAMPLE

from harness.data import readers
from harness.errors import DataError
from harness.data.readers import TableLayout

DIGI_ROWS = [
    ("1", "NA", "81766", "526309", "2016-05-09"),
    ("1", "NA", "31331", "1031018", "2016-05-09"),
    ("2", "5", "9654", "75848", "2016-05-10"),
    ("2", "5", "81766", "0", "2016-05-10"),
]


def _write(path, header, rows, sep=";"):
    path.write_text("\n".join([sep.join(header), *(sep.join(r) for r in rows)]) + "\n")
    return path


@pytest.mark.data("diginetica-sample")
def test_diginetica_sample_reads_all_rows():
    events = readers.read_diginetica(DIGINETICA_SAMPLE)
    # counts stated in the data README
    assert len(events) == 12_391
    assert events["session"].nunique() == 2_986
    assert events["item"].nunique() == 7_139
    assert events["session"].dtype == np.int64
    assert pd.api.types.is_string_dtype(events["item"])
    assert events["time"].dtype == np.float64
    assert events["timeframe"].dtype == np.int64
    first = events.iloc[0]
    assert (first["session"], first["item"], first["timeframe"]) == (1, "81766", 526309)
    assert first["eventdate"] == pd.Timestamp("2016-05-09", tz="UTC").timestamp()
    assert first["time"] == pytest.approx(first["eventdate"] + 526.309)


def test_camel_case_header_reads_like_snake_case(tmp_path):
    snake = _write(tmp_path / "snake.csv", ["session_id", "user_id", "item_id", "timeframe", "eventdate"], DIGI_ROWS)
    camel = _write(tmp_path / "camel.csv", ["sessionId", "userId", "itemId", "timeframe", "eventdate"], DIGI_ROWS)
    pdt.assert_frame_equal(readers.read_diginetica(snake), readers.read_diginetica(camel))


@pytest.mark.data("diginetica-sample", "raw-samples")
def test_raw_camel_case_sample_equals_head_of_snake_case_sample():
    camel = readers.read_diginetica(DIGINETICA_RAW_SAMPLE)
    snake = readers.read_diginetica(DIGINETICA_SAMPLE).head(len(camel))
    assert len(camel) == 500
    pdt.assert_frame_equal(camel, snake)


def test_diginetica_time_is_eventdate_plus_timeframe(tmp_path):
    path = _write(tmp_path / "d.csv", ["session_id", "user_id", "item_id", "timeframe", "eventdate"], DIGI_ROWS)
    events = readers.read_diginetica(path)
    midnight = pd.Timestamp("2016-05-10", tz="UTC").timestamp()
    assert events["time"].iloc[2] == midnight + 75.848
    assert events["item"].tolist() == ["81766", "31331", "9654", "81766"]


def test_blank_lines_are_skipped_but_counted(tmp_path):
    path = tmp_path / "blank.csv"
    path.write_text("session_id;user_id;item_id;timeframe;eventdate\n1;NA;5;10;2016-01-01\n\n2;NA;6;xx;2016-01-01\n")
    with pytest.raises(DataError, match="line 4"):
        readers.read_diginetica(path)
    path.write_text("session_id;user_id;item_id;timeframe;eventdate\n1;NA;5;10;2016-01-01\n\n2;NA;6;7;2016-01-01\n\n")
    assert readers.read_diginetica(path)["session"].tolist() == [1, 2]


@pytest.mark.data("raw-samples")
def test_yoochoose_reader_on_raw_sample():
    events = readers.read_yoochoose(YOOCHOOSE_RAW_SAMPLE)
    assert len(events) == 500
    assert list(events.columns) == ["session", "item", "time"]
    assert events["session"].dtype == np.int64
    assert pd.api.types.is_string_dtype(events["item"])
    first = events.iloc[0]
    assert (first["session"], first["item"]) == (1, "214536502")
    assert first["time"] == pytest.approx(pd.Timestamp("2014-04-07T10:51:09.277Z").timestamp(), abs=1e-6)
    assert events["time"].iloc[0] == 1396867869.277


@pytest.mark.data("raw-samples")
def test_yoochoose_header_line_is_recognised_and_skipped(tmp_path):
    # the SR-GNN script reads the file with csv.DictReader, so copies often carry a header
    path = tmp_path / "with-header.dat"
    path.write_text("session_id,timestamp,item_id,category\n" + YOOCHOOSE_RAW_SAMPLE.read_text())
    pdt.assert_frame_equal(readers.read_yoochoose(path), readers.read_yoochoose(YOOCHOOSE_RAW_SAMPLE))


def test_yoochoose_reader_chunks_and_category_s(tmp_path):
    category = lambda s: "S" if s % 2 else "0"  # noqa: E731
    rows = [f"{s},2014-04-0{1 + s % 5}T10:00:0{s % 10}.{s:03d}Z,{1000 + s},{category(s)}" for s in range(1, 40)]
    path = tmp_path / "yoochoose-clicks.dat"
    path.write_text("\n".join(rows) + "\n")
    whole = readers.read_yoochoose(path)
    chunked = readers.read_yoochoose(path, chunksize=7)
    pdt.assert_frame_equal(whole, chunked)
    path.write_text("\n".join(rows[:5]) + "\n\n" + "\n".join(rows[5:]) + "\n")  # a blank line is skipped
    pdt.assert_frame_equal(readers.read_yoochoose(path, chunksize=7), whole)
    assert len(whole) == 39 and whole["item"].iloc[0] == "1001"


@pytest.mark.data("yoochoose-100k")
def test_session_rec_reader():
    events = readers.read_session_rec(YOOCHOOSE_100K / "yoochoose-clicks-100k_train_full.txt")
    assert len(events) == 70_278
    assert events["session"].nunique() == 17_794
    assert events["item"].nunique() == 2_933
    assert events["time"].iloc[0] == 1396437466.94


@pytest.mark.parametrize(
    ("time_format", "values", "expected"),
    [
        ("epoch_s", ["1700000000.5", "1700000001"], [1700000000.5, 1700000001.0]),
        ("epoch_ms", ["1700000000500", "1700000001000"], [1700000000.5, 1700000001.0]),
        ("iso", ["2023-11-14T22:13:20.5Z", "2023-11-14T22:13:21"], [1700000000.5, 1700000001.0]),
        ("%d/%m/%Y %H:%M:%S", ["14/11/2023 22:13:20", "14/11/2023 22:13:21"], [1700000000.0, 1700000001.0]),
    ],
)
def test_generic_table_time_formats(tmp_path, time_format, values, expected):
    path = tmp_path / "events.tsv"
    path.write_text("sid\tpid\tts\n" + "".join(f"a\tx{k}\t{v}\n" for k, v in enumerate(values)))
    layout = TableLayout(sep="\t", session="sid", item="pid", time="ts", time_format=time_format)
    events = readers.read_table(path, layout)
    assert events["time"].tolist() == expected
    assert events["session"].tolist() == ["a", "a"]  # non-integer ids stay strings


def test_generic_parquet(tmp_path):
    path = tmp_path / "events.parquet"
    pd.DataFrame({"s": [3, 3, 4], "i": [10, 11, 10], "t": [1.0, 2.0, 3.0], "extra": ["u", "v", "w"]}).to_parquet(path)
    events = readers.read_table(path, TableLayout(session="s", item="i", time="t"))
    assert events["session"].tolist() == [3, 3, 4]
    assert events["item"].tolist() == ["10", "11", "10"]
    assert events["time"].tolist() == [1.0, 2.0, 3.0]


def test_integer_like_session_ids_with_leading_zeros_stay_strings(tmp_path):
    path = tmp_path / "e.csv"
    path.write_text("session,item,time\n01,a,1\n1,b,2\n")
    assert readers.read_table(path)["session"].tolist() == ["01", "1"]


def test_bad_layout_values():
    with pytest.raises(ValueError, match="time_format"):
        TableLayout(time_format="seconds")
    with pytest.raises(ValueError, match="sep"):
        TableLayout(sep="::")
